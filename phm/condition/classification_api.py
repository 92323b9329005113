"""REST API for fault classification of vibration captures: classifiers (create + train, versions,
activate / roll back), their training jobs with progress, stored classifications, capture labels,
and upload of a labelled recording (cut into labelled captures)."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from phm.alarms.api import Conflict
from phm.assets.models import MeasurementPoint
from phm.condition import classification as services
from phm.condition import classification_serializers as s
from phm.condition.models import CaptureClassification, CaptureClassifier, ClassifierTrainingJob, ClassifierVersion
from phm.uploads import UploadTooLarge, check_upload_size


def _invalid(exc: Exception) -> ValidationError:
    return ValidationError(str(exc))


class CaptureClassifierViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """``POST`` creates a classifier and (``train``, default true) queues its first training job."""

    queryset = CaptureClassifier.objects.prefetch_related("equipment", "versions")
    serializer_class = s.CaptureClassifierSerializer

    @extend_schema(request=s.CreateClassifierSerializer, responses={201: s.CaptureClassifierSerializer})
    def create(self, request: Request) -> Response:
        body = s.CreateClassifierSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            with transaction.atomic():
                classifier = services.create_classifier(
                    name=data["name"], equipment=data["equipment"], params=data["params"], alarm_probability=data["alarm_probability"],
                    normal_label=data["normal_label"], queue=data["queue"],
                )
                job = services.start_training(classifier=classifier, user=request.user) if data["train"] else None
        except services.ClassificationError as exc:
            raise _invalid(exc) from None
        payload = s.CaptureClassifierSerializer(classifier).data
        payload["job"] = s.ClassifierJobSerializer(job).data if job else None
        return Response(payload, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.UpdateClassifierSerializer, responses=s.CaptureClassifierSerializer)
    def partial_update(self, request: Request, pk=None) -> Response:
        classifier = self.get_object()
        body = s.UpdateClassifierSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if "params" in data:
            try:
                services.check_params(data["params"])
            except services.ClassificationError as exc:
                raise _invalid(exc) from None
        with transaction.atomic():
            for field in ("alarm_probability", "enabled", "params"):
                if field in data:
                    setattr(classifier, field, data[field])
            if data.get("alarm_probability") == 0:
                raise ValidationError({"alarm_probability": "must be above 0"})
            classifier.save()
            if "equipment" in data:
                if not data["equipment"]:
                    raise ValidationError({"equipment": "give at least one equipment"})
                classifier.equipment.set(data["equipment"])
        return Response(s.CaptureClassifierSerializer(self.get_queryset().get(pk=classifier.pk)).data)

    @extend_schema(request=s.TrainClassifierSerializer, responses={202: s.ClassifierJobSerializer})
    @action(detail=True, methods=["post"])
    def train(self, request: Request, pk=None) -> Response:
        """Queue a training job on the labelled captures of the classifier's equipment."""
        classifier = self.get_object()
        body = s.TrainClassifierSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            job = services.start_training(classifier=classifier, activate=body.validated_data["activate"], user=request.user)
        except services.ClassificationError as exc:
            raise _invalid(exc) from None
        return Response(s.ClassifierJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=s.ClassifierVersionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def versions(self, request: Request, pk=None) -> Response:
        return Response(s.ClassifierVersionSerializer(self.get_object().versions.order_by("-version"), many=True).data)

    @extend_schema(request=s.ActivateClassifierSerializer, responses=s.ClassifierVersionSerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk=None) -> Response:
        classifier = self.get_object()
        body = s.ActivateClassifierSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = ClassifierVersion.objects.filter(classifier=classifier, version=body.validated_data["version"]).first()
        if version is None:
            raise NotFound(f"classifier {classifier.name} has no version {body.validated_data['version']}")
        return Response(s.ClassifierVersionSerializer(services.activate_version(version=version)).data)

    @extend_schema(request=None, responses=s.ClassifierVersionSerializer)
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk=None) -> Response:
        try:
            version = services.rollback(classifier=self.get_object())
        except services.ClassificationError as exc:
            raise Conflict(str(exc)) from None
        return Response(s.ClassifierVersionSerializer(version).data)


class ClassifierJobViewSet(viewsets.ReadOnlyModelViewSet):
    """Classifier training jobs with their progress rows (percent, epoch, loss, ETA)."""

    queryset = ClassifierTrainingJob.objects.select_related("classifier", "result").prefetch_related("progress")
    serializer_class = s.ClassifierJobSerializer


class CaptureClassificationViewSet(viewsets.ReadOnlyModelViewSet):
    """Stored classifications, newest capture first; filter with ``?capture=``, ``?equipment=<tag>``, ``?classifier=<name>``."""

    serializer_class = s.CaptureClassificationSerializer

    def get_queryset(self):
        rows = CaptureClassification.objects.select_related("capture__equipment", "capture__point", "classifier", "version")
        if self.action != "list":
            return rows
        query = s.ClassificationQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        if "capture" in data:
            rows = rows.filter(capture_id=data["capture"])
        if "equipment" in data:
            rows = rows.filter(capture__equipment__tag=data["equipment"])
        if "classifier" in data:
            rows = rows.filter(classifier__name=data["classifier"])
        return rows


class CaptureLabelsView(APIView):
    """``POST {"labels": {"<capture id>": "<fault class>", ...}}``: set captures' labels (engineer)."""

    @extend_schema(request=s.CaptureLabelsSerializer, responses={200: dict})
    def post(self, request: Request) -> Response:
        body = s.CaptureLabelsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            count = services.set_capture_labels(labels=body.validated_data["labels"])
        except services.ClassificationError as exc:
            raise _invalid(exc) from None
        return Response({"labelled": count})


class LabelledRecordingUploadView(APIView):
    """Upload one labelled ``.npz`` recording: cut into captures of ``capture_seconds``, stored with
    the label at the named measurement point (training data; not classified, never alarms)."""

    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(request={"multipart/form-data": s.LabelledRecordingSerializer}, responses={201: dict})
    def post(self, request: Request) -> Response:
        body = s.LabelledRecordingSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        upload = data["file"]
        try:
            check_upload_size(kind="historian", name=upload.name, size=upload.size)
        except UploadTooLarge as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        point = MeasurementPoint.objects.filter(equipment=data["equipment"], name=data["point"]).first()
        if point is None:
            raise ValidationError({"point": f"{data['equipment'].tag} has no measurement point {data['point']!r}"})
        try:
            signal = services.read_npz_channel(upload.read(), channel=data["channel"], name=upload.name)
            captures = services.import_labelled_recording(
                point=point, signal=signal, sample_rate_hz=data["sample_rate_hz"], label=data["label"], start=data["start"],
                capture_seconds=data["capture_seconds"], speed_rpm=data["speed_rpm"], unit=data["unit"], origin=upload.name,
            )
        except services.ClassificationError as exc:
            raise _invalid(exc) from None
        return Response({"captures": [c.pk for c in captures], "label": data["label"], "point": str(point)}, status=status.HTTP_201_CREATED)
