"""API shapes of measurement points and captures (metadata only: samples go in, never out, except
through the spectrum endpoint's derived data)."""

from __future__ import annotations

from rest_framework import serializers

from phm.assets.models import Equipment, MeasurementPoint
from phm.condition.models import WaveformCapture


class MeasurementPointSerializer(serializers.ModelSerializer):
    equipment = serializers.SlugRelatedField(slug_field="tag", queryset=Equipment.objects.all())
    has_bearing_geometry = serializers.BooleanField(read_only=True)

    class Meta:
        model = MeasurementPoint
        fields = ["id", "equipment", "name", "description", "axis", "bearing_designation", "pitch_diameter_mm", "ball_diameter_mm",
                  "rolling_elements", "contact_angle_deg", "has_bearing_geometry"]
        extra_kwargs = {
            "pitch_diameter_mm": {"min_value": 0.1, "max_value": 10_000},
            "ball_diameter_mm": {"min_value": 0.01, "max_value": 5_000},
            "rolling_elements": {"min_value": 1, "max_value": 200},
            "contact_angle_deg": {"min_value": 0, "max_value": 89.9},
        }

    def validate(self, attrs):
        pitch = attrs.get("pitch_diameter_mm", getattr(self.instance, "pitch_diameter_mm", None))
        ball = attrs.get("ball_diameter_mm", getattr(self.instance, "ball_diameter_mm", None))
        if pitch is not None and ball is not None and ball >= pitch:
            raise serializers.ValidationError({"ball_diameter_mm": "must be smaller than pitch_diameter_mm"})
        return attrs


class WaveformCaptureSerializer(serializers.ModelSerializer):
    equipment = serializers.CharField(source="equipment.tag", read_only=True)
    point = serializers.CharField(source="point.name", read_only=True)
    duration_s = serializers.FloatField(read_only=True)

    class Meta:
        model = WaveformCapture
        fields = ["id", "equipment", "point", "captured_at", "sample_rate_hz", "unit", "n_samples", "duration_s", "speed_rpm", "label",
                  "source", "origin", "velocity_rms_mm_s", "created_at"]
        read_only_fields = fields


class CaptureQuerySerializer(serializers.Serializer):
    equipment = serializers.CharField(required=False, max_length=64)
    point = serializers.CharField(required=False, max_length=64)
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)
