from __future__ import annotations

from rest_framework import serializers

from phm.assets.models import Area, Equipment, Line, Sensor, Site
from phm.telemetry.fields import us_to_datetime
from phm.telemetry.models import FileIngestJob, LogEvent, LogTemplate


class SiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["id", "code", "name", "time_zone", "description"]


class AreaSerializer(serializers.ModelSerializer):
    path = serializers.CharField(read_only=True)

    class Meta:
        model = Area
        fields = ["id", "site", "code", "name", "description", "path"]


class LineSerializer(serializers.ModelSerializer):
    path = serializers.CharField(read_only=True)

    class Meta:
        model = Line
        fields = ["id", "area", "code", "name", "description", "path"]


class EquipmentSerializer(serializers.ModelSerializer):
    path = serializers.CharField(read_only=True)

    class Meta:
        model = Equipment
        fields = ["id", "line", "tag", "name", "equipment_type", "criticality", "manufacturer", "model_number", "description", "attributes", "path"]


class SensorSerializer(serializers.ModelSerializer):
    equipment = serializers.SlugRelatedField(slug_field="tag", queryset=Equipment.objects.all())

    class Meta:
        model = Sensor
        fields = ["id", "equipment", "tag", "name", "measurement", "unit", "range_low", "range_high", "sampling_period_s", "enabled"]

    def validate(self, attrs):
        low = attrs.get("range_low", getattr(self.instance, "range_low", None))
        high = attrs.get("range_high", getattr(self.instance, "range_high", None))
        if low is not None and high is not None and low >= high:
            raise serializers.ValidationError({"range_high": "must be greater than range_low"})
        return attrs


class SeriesQuerySerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    max_points = serializers.IntegerField(min_value=1, max_value=20_000, default=1000)

    def validate(self, attrs):
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": "must be after start"})
        return attrs


class FileIngestJobSerializer(serializers.ModelSerializer):
    percent = serializers.FloatField(read_only=True)

    class Meta:
        model = FileIngestJob
        fields = ["id", "original_name", "spec", "status", "percent", "bytes_total", "bytes_done", "rows_done", "accepted", "duplicate", "rejected", "error", "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class LogTemplateSerializer(serializers.ModelSerializer):
    """A mined template. ``merged_into``: the template this id merged into (null when live);
    ``current_template``: the text its lines count under now. An id never changes meaning."""

    merged_into = serializers.SerializerMethodField()
    split_from = serializers.SerializerMethodField()
    current_template = serializers.SerializerMethodField()

    class Meta:
        model = LogTemplate
        fields = ["template_id", "template", "first_seen", "merged_into", "split_from", "current_template"]

    def get_merged_into(self, row: LogTemplate) -> str | None:
        return row.merged_into or None

    def get_split_from(self, row: LogTemplate) -> str | None:
        return row.split_from or None

    def get_current_template(self, row: LogTemplate) -> str:
        return self.context.get("texts", {}).get(row.current_id, row.template)


class LogEventSerializer(serializers.ModelSerializer):
    """A stored log line. ``template_id`` is the id it was given (never rewritten);
    ``merged_into``/``current_template_id``/``template``: where that id's lines count now."""

    equipment = serializers.SlugRelatedField(slug_field="tag", read_only=True)
    ts = serializers.SerializerMethodField()
    merged_into = serializers.SerializerMethodField()
    current_template_id = serializers.SerializerMethodField()
    template = serializers.SerializerMethodField()

    class Meta:
        model = LogEvent
        fields = ["id", "source", "equipment", "ts", "level", "message", "template_id", "parameters", "merged_into", "current_template_id", "template"]

    def _current(self, row: LogEvent) -> str:
        return self.context.get("current", {}).get(row.template_id, row.template_id)

    def get_ts(self, row: LogEvent) -> str:
        ts = row.ts
        return (ts if not isinstance(ts, int) else us_to_datetime(ts)).isoformat()

    def get_merged_into(self, row: LogEvent) -> str | None:
        current = self._current(row)
        return current if current != row.template_id else None

    def get_current_template_id(self, row: LogEvent) -> str:
        return self._current(row)

    def get_template(self, row: LogEvent) -> str | None:
        return self.context.get("texts", {}).get(self._current(row)) if row.template_id else None


class LogEventQuerySerializer(serializers.Serializer):
    source = serializers.CharField(required=False, max_length=128)
    equipment = serializers.CharField(required=False, max_length=64, help_text="Equipment tag (its events and events whose source is the tag).")
    level = serializers.CharField(required=False, max_length=16)
    template_id = serializers.CharField(required=False, max_length=64, help_text="Lines of this template, with the ids merged into it.")
    start = serializers.DateTimeField(required=False, help_text="ISO 8601 with zone (inclusive)")
    end = serializers.DateTimeField(required=False, help_text="ISO 8601 with zone (exclusive)")

    def validate(self, attrs):
        if "start" in attrs and "end" in attrs and attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": "must be after start"})
        return attrs
