"""REST API for vibration: measurement points, captures (ingest, list, metadata) and a capture's
spectra. Views parse the request and call ``phm.condition.captures`` / ``phm.condition.spectra``."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from phm.assets.models import MeasurementPoint
from phm.condition import captures, spectra
from phm.condition.models import CaptureSource, WaveformCapture
from phm.condition.serializers import CaptureQuerySerializer, MeasurementPointSerializer, WaveformCaptureSerializer
from phm.uploads import UploadTooLarge


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "capture too large"


def _envelope_band(request: Request, capture: WaveformCapture) -> tuple[float, float] | None:
    """``?envelope_low_hz=&envelope_high_hz=`` (both or neither), checked against the capture's rate."""
    raw = {name: request.query_params.get(name) for name in ("envelope_low_hz", "envelope_high_hz")}
    if not any(raw.values()):
        return None
    values = {}
    for name, text in raw.items():
        try:
            values[name] = float(text or "")
        except ValueError:
            raise ValidationError({name: f"must be a number of Hz (give both edges), got {str(text)[:20]!r}"}) from None
    low, high = values["envelope_low_hz"], values["envelope_high_hz"]
    nyquist = capture.sample_rate_hz / 2
    if not 0 < low < high < nyquist:
        raise ValidationError({"envelope_high_hz": f"the band must satisfy 0 < low < high < {nyquist:g} Hz (Nyquist of this capture)"})
    return low, high


def _refused(exc: captures.CaptureRejected) -> Response:
    # The API's error shape ({"error": ...}) plus the field, so a client can point at it.
    return Response({"error": str(exc), "field": exc.field}, status=status.HTTP_400_BAD_REQUEST)


class MeasurementPointViewSet(viewsets.ModelViewSet):
    """Measurement points with their bearing geometry; ``?equipment=<tag>`` filters. No DELETE: a
    point owns its captures (history), which must not vanish with a mistyped call."""

    http_method_names = ["get", "post", "put", "patch", "head", "options"]
    queryset = MeasurementPoint.objects.select_related("equipment").order_by("equipment__tag", "name")
    serializer_class = MeasurementPointSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        tag = self.request.query_params.get("equipment")
        return queryset.filter(equipment__tag=tag) if tag else queryset

    @extend_schema(parameters=[OpenApiParameter("equipment", str, description="Equipment tag")])
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)


CAPTURE_FIELDS = ("equipment", "point", "captured_at", "sample_rate_hz", "unit", "speed_rpm", "label", "array")


class WaveformCaptureViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Vibration captures. ``POST`` a JSON body ``{equipment, point, captured_at, sample_rate_hz,
    unit, speed_rpm, label, samples: [...] | samples_b64: "<base64 float32 LE>"}`` or a multipart
    ``file`` (``.npz`` / CSV) with the same fields as form fields (``array``: the npz array's name).
    201 when stored, 200 when the same point and time was already stored, 400 naming the field
    (the capture is quarantined)."""

    queryset = WaveformCapture.objects.select_related("equipment", "point").defer("samples").order_by("-captured_at", "-id")
    serializer_class = WaveformCaptureSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        query = CaptureQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data
        if "equipment" in wanted:
            queryset = queryset.filter(equipment__tag=wanted["equipment"])
        if "point" in wanted:
            queryset = queryset.filter(point__name=wanted["point"])
        if "start" in wanted:
            queryset = queryset.filter(captured_at__gte=wanted["start"])
        if "end" in wanted:
            queryset = queryset.filter(captured_at__lt=wanted["end"])
        return queryset

    @extend_schema(parameters=[CaptureQuerySerializer])
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request={
            "application/json": inline_serializer("CaptureBody", {
                "equipment": serializers.CharField(), "point": serializers.CharField(), "captured_at": serializers.DateTimeField(),
                "sample_rate_hz": serializers.FloatField(), "unit": serializers.CharField(required=False),
                "speed_rpm": serializers.FloatField(required=False), "label": serializers.CharField(required=False),
                "samples": serializers.ListField(child=serializers.FloatField(), required=False),
                "samples_b64": serializers.CharField(required=False),
            }),
            "multipart/form-data": inline_serializer("CaptureUpload", {"file": serializers.FileField(), **{
                name: serializers.CharField(required=False) for name in CAPTURE_FIELDS}}),
        },
        responses=WaveformCaptureSerializer,
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        upload = request.FILES.get("file")
        try:
            if upload is not None:
                fields = {name: request.data.get(name) for name in CAPTURE_FIELDS if request.data.get(name) not in (None, "")}
                record = captures.record_from_file(name=upload.name[:200], content=upload.read(), fields=fields)
            else:
                record = captures.record_from_json(request.data)
        except UploadTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from None
        except captures.CaptureRejected as exc:
            captures.reject_unparsed(error=exc, channel="api", metadata={"file": upload.name if upload else ""})
            return _refused(exc)
        try:
            outcome = captures.ingest_capture(record=record, source=CaptureSource.API, channel="api")
        except captures.CaptureRejected as exc:  # quarantined by the service
            return _refused(exc)
        body = self.get_serializer(outcome.capture).data
        return Response({**body, "duplicate": not outcome.created}, status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK)

    @extend_schema(parameters=[
        OpenApiParameter("envelope_low_hz", float, description="Envelope band-pass low edge (with envelope_high_hz); default 10 % of the rate"),
        OpenApiParameter("envelope_high_hz", float, description="Envelope band-pass high edge; default 40 % of the rate, below Nyquist"),
    ], responses=inline_serializer("CaptureSpectra", {
        "capture": serializers.IntegerField(), "waveform": serializers.DictField(), "spectrum": serializers.DictField(),
        "envelope": serializers.DictField(), "markers": serializers.DictField(), "severity": serializers.DictField(),
        "cached": serializers.BooleanField(),
    }))
    @action(detail=True, methods=["get"])
    def spectrum(self, request: Request, pk: str | None = None) -> Response:
        """Amplitude spectrum (up to rate/2.56), envelope spectrum (to 1 kHz) with its band, a waveform
        preview, defect frequencies and running-speed harmonics, velocity RMS and its ISO zone."""
        capture = WaveformCapture.objects.select_related("equipment", "point").get(pk=self.get_object().pk)
        return Response(spectra.capture_analysis(capture, envelope_band_hz=_envelope_band(request, capture)))
