from __future__ import annotations

from urllib.parse import urlparse

from rest_framework import serializers

from phm.alarms import egress
from phm.alarms.models import (
    Alarm,
    AlarmPoint,
    AlarmState,
    AlarmTransition,
    DeliveryAttempt,
    EventType,
    WebhookDelivery,
    WebhookEndpoint,
)
from phm.alarms.signing import validate_secret
from phm.redaction import redact_url, restore_url_password


class AlarmTransitionSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlarmTransition
        fields = ["id", "from_state", "to_state", "at", "actor", "comment", "score", "severity", "recorded_at"]


class AlarmSerializer(serializers.ModelSerializer):
    equipment = serializers.SerializerMethodField()
    severity_band = serializers.CharField(source="band", read_only=True)
    acknowledged_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Alarm
        fields = [
            "id", "equipment", "source", "state", "process_active", "severity", "severity_band", "score", "peak_score", "threshold",
            "message", "raised_at", "cleared_at", "acknowledged_at", "acknowledged_by", "shelved_until", "closed_at", "updated_at",
        ]
        read_only_fields = fields

    def get_equipment(self, alarm: Alarm) -> dict:
        line = alarm.equipment.line
        return {"site": line.area.site.code, "area": line.area.code, "line": line.code, "equipment": alarm.equipment.tag, "path": alarm.equipment.path}


class AlarmDetailSerializer(AlarmSerializer):
    journal = AlarmTransitionSerializer(source="transitions", many=True, read_only=True)

    class Meta(AlarmSerializer.Meta):
        fields = [*AlarmSerializer.Meta.fields, "journal"]
        read_only_fields = fields


class AlarmQuerySerializer(serializers.Serializer):
    state = serializers.CharField(required=False, help_text="One state or several, comma-separated.")
    severity_min = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    since = serializers.DateTimeField(required=False)
    equipment = serializers.CharField(required=False)
    open = serializers.BooleanField(required=False, default=False)

    def validate_state(self, value: str) -> list[str]:
        states = [s.strip() for s in value.split(",") if s.strip()]
        unknown = sorted(set(states) - set(AlarmState.values))
        if unknown:
            raise serializers.ValidationError(f"unknown state(s) {', '.join(unknown)}; known: {', '.join(AlarmState.values)}")
        return states


class AckSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ShelveSerializer(serializers.Serializer):
    duration_s = serializers.FloatField(help_text="How long to shelve, in seconds.")
    comment = serializers.CharField(max_length=2000)


class PointFlagSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class AlarmPointSerializer(serializers.ModelSerializer):
    equipment = serializers.SlugRelatedField(slug_field="tag", read_only=True)

    class Meta:
        model = AlarmPoint
        fields = ["id", "equipment", "source", "suppressed_by_design", "out_of_service", "condition_active", "last_sample_at"]
        read_only_fields = fields


class WebhookEndpointSerializer(serializers.ModelSerializer):
    """The signing secret is write-only: never in a response (``has_secret`` says one is set),
    except once, in the create response, when the server generated it. An update without
    ``secret`` keeps the stored one."""

    secret = serializers.CharField(required=False, write_only=True, help_text="'whsec_' + base64; generated when left out.")
    has_secret = serializers.SerializerMethodField()
    events = serializers.ListField(child=serializers.CharField(), required=False, allow_empty=True)

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "secret", "has_secret", "events", "enabled", "disabled_reason", "description", "created_at", "updated_at"]
        read_only_fields = ["id", "disabled_reason", "created_at", "updated_at"]

    def get_has_secret(self, endpoint: WebhookEndpoint) -> bool:
        return bool(endpoint.secret)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["url"] = redact_url(data["url"])  # a password in the URL is write-only too
        return data

    def validate_url(self, value: str) -> str:
        if urlparse(value).scheme not in ("http", "https"):
            raise serializers.ValidationError("url must be http:// or https://")
        try:
            value = restore_url_password(value, getattr(self.instance, "url", None))
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        try:
            egress.check_url(value)  # checked again on every connect (phm.alarms.egress)
        except egress.EgressRefused as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def validate_secret(self, value: str) -> str:
        try:
            return validate_secret(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_events(self, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(EventType.values))
        if unknown:
            raise serializers.ValidationError(f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(EventType.values)}")
        return sorted(set(value))

    def update(self, instance, validated_data):
        if validated_data.get("enabled") and not instance.enabled:
            validated_data["disabled_reason"] = ""  # re-enabled by an operator: the old reason no longer applies
        return super().update(instance, validated_data)


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    """The create response of an endpoint whose secret the server generated shows it once, so the
    receiver can be configured with it; a secret the caller sent is not echoed."""

    secret = serializers.CharField(read_only=True)


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["number", "started_at", "duration_ms", "status_code", "outcome", "error", "next_attempt_at", "worker"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    message_id = serializers.CharField(source="message.message_id")
    event_type = serializers.CharField(source="message.event_type")
    alarm_id = serializers.IntegerField(source="message.alarm_id", allow_null=True)
    attempt_log = DeliveryAttemptSerializer(many=True, read_only=True)
    next_attempt_at = serializers.SerializerMethodField()

    class Meta:
        model = WebhookDelivery
        fields = [
            "id", "message_id", "event_type", "alarm_id", "status", "attempts", "last_status_code", "last_error",
            "next_attempt_at", "created_at", "delivered_at", "attempt_log",
        ]
        read_only_fields = fields

    def get_next_attempt_at(self, delivery: WebhookDelivery) -> str | None:
        return delivery.next_attempt_at.isoformat() if delivery.status == "pending" else None
