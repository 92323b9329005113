"""REST API v1 for assets and telemetry. Views validate the request shape and call services."""

from __future__ import annotations

import json

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from phm.api import serializers as api_serializers
from phm.assets.models import Area, Equipment, Line, Sensor, Site
from phm.telemetry import jobs, log_templates, selectors, services
from phm.telemetry.models import FileIngestJob, LogEvent, LogTemplate
from phm.uploads import UploadTooLarge


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "batch too large"


class SiteViewSet(viewsets.ModelViewSet):
    queryset = Site.objects.all()
    serializer_class = api_serializers.SiteSerializer


class AreaViewSet(viewsets.ModelViewSet):
    queryset = Area.objects.select_related("site")
    serializer_class = api_serializers.AreaSerializer


class LineViewSet(viewsets.ModelViewSet):
    queryset = Line.objects.select_related("area__site")
    serializer_class = api_serializers.LineSerializer


class EquipmentViewSet(viewsets.ModelViewSet):
    queryset = Equipment.objects.select_related("line__area__site")
    serializer_class = api_serializers.EquipmentSerializer
    lookup_field = "tag"


class SensorViewSet(viewsets.ModelViewSet):
    queryset = Sensor.objects.select_related("equipment")
    serializer_class = api_serializers.SensorSerializer
    lookup_field = "tag"
    lookup_value_regex = "[^/]+"  # tags contain dots, e.g. P-101.VIB_DE

    @extend_schema(
        parameters=[
            OpenApiParameter("start", str, required=True, description="ISO 8601 with zone"),
            OpenApiParameter("end", str, required=True, description="ISO 8601 with zone"),
            OpenApiParameter("max_points", int, description="At most this many points; more data is aggregated per bucket (min/max/mean)."),
        ],
        responses=inline_serializer(
            "SensorSeries",
            {
                "sensor": serializers.CharField(),
                "unit": serializers.CharField(),
                "downsampled": serializers.BooleanField(),
                "bucket_seconds": serializers.FloatField(allow_null=True),
                "points": serializers.ListField(child=serializers.DictField()),
            },
        ),
    )
    @action(detail=True, methods=["get"])
    def readings(self, request: Request, tag: str | None = None) -> Response:
        sensor = self.get_object()
        query = api_serializers.SeriesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        series = selectors.sensor_series(sensor=sensor, **query.validated_data)
        if series.downsampled:
            points = [{"ts": p.ts, "mean": p.value, "min": p.min, "max": p.max, "count": p.count} for p in series.points]
        else:
            points = [{"ts": p.ts, "value": p.value} for p in series.points]
        return Response(
            {
                "sensor": series.sensor,
                "unit": series.unit,
                "start": series.start,
                "end": series.end,
                "downsampled": series.downsampled,
                "bucket_seconds": series.bucket_seconds,
                "points": points,
            }
        )


def _batch_from(request: Request, key: str) -> list:
    body = request.data  # parsing happens here: malformed JSON raises ParseError (400)
    if not isinstance(body, dict) or key not in body:
        raise ParseError(f'expected a JSON object {{"{key}": [...]}}')
    batch = body[key]
    if not isinstance(batch, list):
        raise ParseError(f"'{key}' must be a list, got {type(batch).__name__}")
    limit = settings.PHM_API_MAX_BATCH
    if len(batch) > limit:
        raise PayloadTooLarge(f"batch has {len(batch)} {key}; the limit is {limit} (PHM_API_MAX_BATCH): split it")
    return batch


def _batch_response(result) -> Response:
    return Response(
        {
            "accepted": result.accepted,
            "duplicate": result.duplicate,
            "rejected_count": result.rejected,
            "rejected": [{"index": r.index, "error": r.error} for r in result.rejections],
        }
    )


BATCH_RESPONSE = inline_serializer(
    "BatchResult",
    {
        "accepted": serializers.IntegerField(),
        "duplicate": serializers.IntegerField(),
        "rejected_count": serializers.IntegerField(),
        "rejected": serializers.ListField(child=serializers.DictField()),
    },
)


class ReadingsIngestView(APIView):
    """``POST {"readings": [{"sensor": tag, "ts": ISO-8601 with zone, "value": number, "quality": 192}]}``.
    Good records are stored, bad ones reported by index (and quarantined); re-sent ones count as duplicates."""

    @extend_schema(request=inline_serializer("ReadingBatch", {"readings": serializers.ListField(child=serializers.DictField())}), responses=BATCH_RESPONSE)
    def post(self, request: Request) -> Response:
        batch = _batch_from(request, "readings")
        return _batch_response(services.ingest_readings(readings=batch, channel="api"))


class LogsIngestView(APIView):
    """``POST {"logs": [{"source": tag, "ts": ISO-8601 with zone, "level": "WARN", "message": "..."}]}``."""

    @extend_schema(request=inline_serializer("LogBatch", {"logs": serializers.ListField(child=serializers.DictField())}), responses=BATCH_RESPONSE)
    def post(self, request: Request) -> Response:
        batch = _batch_from(request, "logs")
        return _batch_response(services.ingest_logs(records=batch, channel="api"))


class FileIngestJobViewSet(viewsets.ReadOnlyModelViewSet):
    """Upload a historian file (multipart ``file`` + ``spec`` JSON); a worker ingests it in the
    background and the job row shows progress."""

    queryset = FileIngestJob.objects.all()
    serializer_class = api_serializers.FileIngestJobSerializer
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": inline_serializer("FileUpload", {"file": serializers.FileField(), "spec": serializers.CharField(required=False)})},
        responses=api_serializers.FileIngestJobSerializer,
    )
    def create(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            raise ParseError("multipart field 'file' is missing")
        try:
            spec = json.loads(request.data.get("spec") or "{}")
        except json.JSONDecodeError as exc:
            raise ParseError(f"'spec' is not valid JSON: {exc}") from None
        try:
            with transaction.atomic():
                job = jobs.create_file_job(uploaded_file=upload, spec=spec, user=request.user)
                jobs.enqueue_file_job(job)
        except UploadTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise ParseError(f"invalid spec: {exc}") from None
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED)




class LogTemplateViewSet(viewsets.ReadOnlyModelViewSet):
    """Mined log templates. An id merged into another shows ``merged_into`` (its lines count with
    that template); one split out of another shows ``split_from``. ``?live=true``: live ones only."""

    queryset = LogTemplate.objects.order_by("id")
    serializer_class = api_serializers.LogTemplateSerializer
    lookup_field = "template_id"
    lookup_value_regex = "[^/]+"  # "<connector>:<n>"

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "list" and self.request.query_params.get("live", "").lower() in ("1", "true", "yes"):
            queryset = queryset.filter(merged_into="")
        return queryset

    def get_serializer(self, *args, **kwargs):
        if args:
            rows = args[0] if kwargs.get("many") else [args[0]]
            kwargs["context"] = {**self.get_serializer_context(), **log_templates.template_context(rows)}
        return super().get_serializer(*args, **kwargs)

    @extend_schema(parameters=[OpenApiParameter("live", bool, description="Only templates not merged into another.")])
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)


class LogEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Stored log lines, newest first, each with the template id it was given and where that id's
    lines count now (``merged_into``, ``current_template_id``, ``template``)."""

    queryset = LogEvent.objects.select_related("equipment").order_by("-ts", "-id")
    serializer_class = api_serializers.LogEventSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        query = api_serializers.LogEventQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data
        if "source" in wanted:
            queryset = queryset.filter(source=wanted["source"])
        if "equipment" in wanted:
            queryset = queryset.filter(Q(equipment__tag=wanted["equipment"]) | Q(source=wanted["equipment"]))
        if "level" in wanted:
            queryset = queryset.filter(level=wanted["level"].upper())
        if "template_id" in wanted:
            queryset = queryset.filter(template_id__in=log_templates.ids_meaning(wanted["template_id"]))
        if "start" in wanted:
            queryset = queryset.filter(ts__gte=wanted["start"])
        if "end" in wanted:
            queryset = queryset.filter(ts__lt=wanted["end"])
        return queryset

    def get_serializer(self, *args, **kwargs):
        if args:
            rows = args[0] if kwargs.get("many") else [args[0]]
            kwargs["context"] = {**self.get_serializer_context(), **log_templates.event_context(rows)}
        return super().get_serializer(*args, **kwargs)

    @extend_schema(parameters=[api_serializers.LogEventQuerySerializer])
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)
