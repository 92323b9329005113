from __future__ import annotations

from rest_framework import serializers

from phm.assets.models import Area, Equipment, Line, Sensor, Site
from phm.telemetry.models import FileIngestJob


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
