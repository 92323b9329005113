"""REST API for detectors: configuration, training jobs and their progress, versions
(activate / rollback), stored scores, and scoring on demand."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from phm.alarms.api import Conflict
from phm.analytics import serializers as s
from phm.analytics import training
from phm.analytics.models import AnomalyScore, DetectorConfig, ModelVersion, TrainingJob


class DetectorConfigViewSet(viewsets.ModelViewSet):
    queryset = DetectorConfig.objects.select_related("equipment").prefetch_related("sensors", "versions")
    serializer_class = s.DetectorConfigSerializer

    @extend_schema(request=s.TrainRequestSerializer, responses={202: s.TrainingJobSerializer})
    @action(detail=True, methods=["post"])
    def train(self, request: Request, pk=None) -> Response:
        """Queue a training job on the detector's queue (cpu or gpu); poll /training-jobs/<id>."""
        config = self.get_object()
        body = s.TrainRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            job = training.start_training(
                config=config, train_start=body.validated_data["start"], train_end=body.validated_data["end"],
                activate=body.validated_data["activate"], user=request.user, member_ranges=body.validated_data["member_ranges"],
            )
        except training.TrainingError as exc:
            raise ValidationError(str(exc)) from None
        return Response(s.TrainingJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=s.ModelVersionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)  # a plain list, and the schema says so
    def versions(self, request: Request, pk=None) -> Response:
        config = self.get_object()
        return Response(s.ModelVersionSerializer(config.versions.order_by("-version"), many=True).data)

    @extend_schema(request=s.ActivateSerializer, responses=s.ModelVersionSerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk=None) -> Response:
        config = self.get_object()
        body = s.ActivateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = ModelVersion.objects.filter(config=config, version=body.validated_data["version"]).first()
        if version is None:
            raise NotFound(f"detector {config.pk} has no version {body.validated_data['version']}")
        return Response(s.ModelVersionSerializer(training.activate_version(version=version)).data)

    @extend_schema(request=None, responses=s.ModelVersionSerializer)
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk=None) -> Response:
        try:
            version = training.rollback(config=self.get_object())
        except training.TrainingError as exc:
            raise Conflict(str(exc)) from None
        return Response(s.ModelVersionSerializer(version).data)

    @extend_schema(parameters=[OpenApiParameter("start", str), OpenApiParameter("end", str), OpenApiParameter("limit", int)],
                   responses=s.AnomalyScoreSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)  # bounded by its own ?limit=
    def scores(self, request: Request, pk=None) -> Response:
        config = self.get_object()
        query = s.ScoreQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = AnomalyScore.objects.filter(config=config)
        if "start" in query.validated_data:
            rows = rows.filter(ts__gte=query.validated_data["start"])
        if "end" in query.validated_data:
            rows = rows.filter(ts__lt=query.validated_data["end"])
        newest = list(rows.order_by("-ts")[: query.validated_data["limit"]])
        return Response(s.AnomalyScoreSerializer(reversed(newest), many=True).data)

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def score(self, request: Request, pk=None) -> Response:
        """Queue a scoring run now (beat does this every ``scoring_interval_s``)."""
        from phm.analytics.tasks import score_detector

        config = self.get_object()
        transaction.on_commit(lambda: score_detector.delay(config.pk))
        return Response({"detector": config.pk, "status": "queued"}, status=status.HTTP_202_ACCEPTED)


class TrainingJobViewSet(viewsets.ReadOnlyModelViewSet):
    """Training jobs with their progress rows (percent, epoch, loss, ETA)."""

    queryset = TrainingJob.objects.select_related("result").prefetch_related("progress")
    serializer_class = s.TrainingJobSerializer
