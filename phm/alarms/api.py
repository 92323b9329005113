"""REST API for alarms (pull, ack, shelve), alarm points, and webhook endpoints (push to SCADA).
Views validate the request and call services; service errors become 4xx with ``{"error": ...}``."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.http import Http404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from phm.alarms import selectors, services
from phm.alarms import serializers as s
from phm.alarms.models import Alarm, AlarmPoint, EventType, WebhookDelivery, WebhookEndpoint


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "the request conflicts with the current state"


def _call(service, **kwargs):
    """Run an alarm service and translate its errors into API errors (nothing changed on error)."""
    try:
        return service(**kwargs)
    except Alarm.DoesNotExist as exc:
        raise Http404(str(exc)) from None
    except services.IllegalTransition as exc:
        raise Conflict(str(exc)) from None
    except services.InvalidRequest as exc:
        raise ValidationError(str(exc)) from None


class AlarmViewSet(viewsets.ReadOnlyModelViewSet):
    """Alarms for SCADA pull clients and the dashboard: ``?state=&severity_min=&since=&equipment=&open=``."""

    queryset = Alarm.objects.none()

    def get_serializer_class(self):
        return s.AlarmDetailSerializer if self.action != "list" else s.AlarmSerializer

    def get_queryset(self):
        if self.action != "list":
            return selectors.alarms().prefetch_related("transitions")
        query = s.AlarmQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        v = query.validated_data
        return selectors.alarms(
            states=v.get("state"), severity_min=v.get("severity_min"), since=v.get("since"),
            equipment_tag=v.get("equipment"), open_only=v.get("open", False),
        )

    @extend_schema(parameters=[
        OpenApiParameter("state", str), OpenApiParameter("severity_min", int), OpenApiParameter("since", str, description="ISO 8601 with zone"),
        OpenApiParameter("equipment", str), OpenApiParameter("open", bool),
    ])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def _respond(self, alarm: Alarm) -> Response:
        alarm = selectors.alarms().prefetch_related("transitions").get(pk=alarm.pk)
        return Response(s.AlarmDetailSerializer(alarm).data)

    @extend_schema(request=s.AckSerializer, responses=s.AlarmDetailSerializer)
    @action(detail=True, methods=["post"])
    def ack(self, request: Request, pk: str | None = None) -> Response:
        body = s.AckSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        alarm = _call(services.acknowledge, alarm_id=_int_pk(pk), user=request.user, comment=body.validated_data["comment"])
        return self._respond(alarm)

    @extend_schema(request=s.ShelveSerializer, responses=s.AlarmDetailSerializer)
    @action(detail=True, methods=["post"])
    def shelve(self, request: Request, pk: str | None = None) -> Response:
        body = s.ShelveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            duration = services.shelve_duration(body.validated_data["duration_s"])
        except services.InvalidRequest as exc:
            raise ValidationError({"duration_s": str(exc)}) from None
        alarm = _call(services.shelve, alarm_id=_int_pk(pk), user=request.user, duration=duration, comment=body.validated_data["comment"])
        return self._respond(alarm)

    @extend_schema(request=s.AckSerializer, responses=s.AlarmDetailSerializer)
    @action(detail=True, methods=["post"])
    def unshelve(self, request: Request, pk: str | None = None) -> Response:
        body = s.AckSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        alarm = _call(services.unshelve, alarm_id=_int_pk(pk), user=request.user, comment=body.validated_data["comment"])
        return self._respond(alarm)

    @extend_schema(
        parameters=[OpenApiParameter("start", OpenApiTypes.DATETIME), OpenApiParameter("end", OpenApiTypes.DATETIME)],
        responses=inline_serializer("AlarmStatistics", {
            "start": serializers.DateTimeField(), "end": serializers.DateTimeField(), "windows": serializers.IntegerField(),
            "window_minutes": serializers.IntegerField(), "flood_limit": serializers.IntegerField(),
            # per operator position ("site/area"): a map from position to number
            "average_per_10min": serializers.DictField(child=serializers.FloatField()),
            "peak_per_10min": serializers.DictField(child=serializers.IntegerField()),
            "percent_time_in_flood": serializers.DictField(child=serializers.FloatField()),
            "top_sources": serializers.ListField(child=serializers.DictField()),
        }),
    )
    @action(detail=False, methods=["get"])
    def statistics(self, request: Request) -> Response:
        """Alarm flood statistics: annunciations per operator position (site/area) per 10 minutes."""
        query = _StatisticsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        end = query.validated_data.get("end") or timezone.now()
        start = query.validated_data.get("start") or end - timedelta(hours=24)
        if end <= start:
            raise ValidationError({"end": "must be after start"})
        stats = selectors.flood_statistics(start=start, end=end)
        return Response({
            "start": stats.start, "end": stats.end, "windows": stats.windows, "window_minutes": 10, "flood_limit": selectors.FLOOD_LIMIT,
            "average_per_10min": stats.average_per_10min, "peak_per_10min": stats.peak_per_10min,
            "percent_time_in_flood": stats.percent_time_in_flood,
            "top_sources": [{"source": k, "count": v} for k, v in stats.top_sources],
        })


class _StatisticsQuery(serializers.Serializer):
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)


def _int_pk(pk: str | None) -> int:
    try:
        return int(pk)
    except (TypeError, ValueError):
        raise Http404(f"alarm {pk!r} does not exist") from None


class AlarmPointViewSet(viewsets.ReadOnlyModelViewSet):
    """Alarm points (equipment, source): suppress by design, take out of service, and back."""

    queryset = AlarmPoint.objects.select_related("equipment")
    serializer_class = s.AlarmPointSerializer

    def _flag(self, request: Request, **flags) -> Response:
        point = self.get_object()
        body = s.PointFlagSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        point = services.set_point_flags(equipment=point.equipment, source=point.source, user=request.user, comment=body.validated_data["comment"], **flags)
        return Response(s.AlarmPointSerializer(point).data)

    @extend_schema(request=s.PointFlagSerializer, responses=s.AlarmPointSerializer)
    @action(detail=True, methods=["post"])
    def suppress(self, request: Request, pk=None) -> Response:
        return self._flag(request, suppressed_by_design=True)

    @extend_schema(request=s.PointFlagSerializer, responses=s.AlarmPointSerializer)
    @action(detail=True, methods=["post"])
    def unsuppress(self, request: Request, pk=None) -> Response:
        return self._flag(request, suppressed_by_design=False)

    @extend_schema(request=s.PointFlagSerializer, responses=s.AlarmPointSerializer)
    @action(detail=True, methods=["post"], url_path="out-of-service")
    def out_of_service(self, request: Request, pk=None) -> Response:
        return self._flag(request, out_of_service=True)

    @extend_schema(request=s.PointFlagSerializer, responses=s.AlarmPointSerializer)
    @action(detail=True, methods=["post"], url_path="in-service")
    def in_service(self, request: Request, pk=None) -> Response:
        return self._flag(request, out_of_service=False)


class WebhookEndpointViewSet(viewsets.ModelViewSet):
    """SCADA webhook endpoints. ``POST {"url", "secret", "events"}``; the secret is write-only:
    shown once in the create response only when the server generated it."""

    queryset = WebhookEndpoint.objects.all()
    serializer_class = s.WebhookEndpointSerializer

    @extend_schema(responses={201: s.WebhookEndpointCreatedSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = serializer.save()
        generated = "secret" not in serializer.validated_data
        answer = s.WebhookEndpointCreatedSerializer if generated else s.WebhookEndpointSerializer
        return Response(answer(endpoint).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk=None) -> Response:
        """Queue a signed ``test`` event for this endpoint only."""
        endpoint = self.get_object()
        if not endpoint.enabled:
            raise Conflict(f"endpoint {endpoint.pk} is disabled ({endpoint.disabled_reason or 'by an operator'}); enable it first")
        now = timezone.now()
        payload = {
            "type": EventType.TEST.value,
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "data": {"endpoint_id": endpoint.pk, "requested_by": request.user.get_username(), "message": "test event from the PHM platform"},
        }
        with transaction.atomic():
            message = services.enqueue_event(event_type=EventType.TEST, payload=payload, endpoints=[endpoint])
            transaction.on_commit(services.kick_delivery)
        return Response({"message_id": message.message_id, "event_type": "test", "status": "queued"}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=s.WebhookDeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk=None) -> Response:
        endpoint = self.get_object()
        query = WebhookDelivery.objects.filter(endpoint=endpoint).select_related("message").prefetch_related("attempt_log").order_by("-id")
        page = self.paginate_queryset(query)
        return self.get_paginated_response(s.WebhookDeliverySerializer(page, many=True).data)
