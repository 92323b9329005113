from __future__ import annotations

from rest_framework import serializers

from phm.analytics.models import (
    AnomalyScore,
    DetectorConfig,
    DiagnoserJobKind,
    DiagnoserTrainingJob,
    DiagnoserVersion,
    Diagnosis,
    DiagnosisFeedback,
    FeedbackVerdict,
    ModelVersion,
    TrainingJob,
    TrainingProgress,
)
from phm.assets.models import Equipment, Sensor


class DetectorConfigSerializer(serializers.ModelSerializer):
    equipment = serializers.SlugRelatedField(slug_field="tag", queryset=Equipment.objects.all())
    sensors = serializers.SlugRelatedField(slug_field="tag", queryset=Sensor.objects.all(), many=True)
    active_version = serializers.SerializerMethodField()

    class Meta:
        model = DetectorConfig
        fields = [
            "id", "equipment", "name", "method", "params", "sensors", "stride_s", "window_s", "scoring_interval_s", "max_chunk_steps",
            "threshold_kind", "threshold_value", "threshold_quantile", "threshold_margin", "deadband", "on_delay_s", "off_delay_s",
            "queue", "scope", "fleet_group", "enabled", "scored_until", "active_version", "created_at", "updated_at",
        ]
        read_only_fields = ["id", "scored_until", "active_version", "created_at", "updated_at"]

    def get_active_version(self, config: DetectorConfig) -> int | None:
        active = next((v for v in config.versions.all() if v.is_active), None)
        return active.version if active else None

    def validate(self, attrs):
        from models.detectors import METHODS, DetectorParams

        method = attrs.get("method", getattr(self.instance, "method", None))
        if method not in METHODS:
            raise serializers.ValidationError({"method": f"unknown method {method!r}; choose one of {', '.join(METHODS)}"})
        params = attrs.get("params", getattr(self.instance, "params", {}))
        if not isinstance(params, dict):
            raise serializers.ValidationError({"params": "must be a JSON object"})
        try:
            DetectorParams.for_method(method, **params)
        except TypeError as exc:
            raise serializers.ValidationError({"params": str(exc)}) from None
        equipment = attrs.get("equipment", getattr(self.instance, "equipment", None))
        sensors = attrs.get("sensors")
        if sensors is not None:
            if not sensors:
                raise serializers.ValidationError({"sensors": "give at least one sensor"})
            foreign = [s.tag for s in sensors if s.equipment_id != equipment.pk]
            if foreign:
                raise serializers.ValidationError({"sensors": f"not on {equipment.tag}: {', '.join(foreign)}"})
        for name in ("stride_s", "scoring_interval_s"):
            if name in attrs and attrs[name] <= 0:
                raise serializers.ValidationError({name: "must be positive"})
        if "deadband" in attrs and not 0 <= attrs["deadband"] < 1:
            raise serializers.ValidationError({"deadband": "must be in [0, 1)"})
        kind = attrs.get("threshold_kind", getattr(self.instance, "threshold_kind", "detector"))
        if kind == "fixed" and attrs.get("threshold_value", getattr(self.instance, "threshold_value", None)) is None:
            raise serializers.ValidationError({"threshold_value": "required when threshold_kind is 'fixed'"})
        return attrs


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["id", "version", "method", "params", "threshold", "metrics", "train_start", "train_end", "train_rows", "excluded_faults",
                  "is_active", "created_at", "activated_at"]
        read_only_fields = fields


class TrainingProgressSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrainingProgress
        fields = ["at", "stage", "percent", "epoch", "epochs", "loss", "val_loss", "eta_s"]


class TrainingJobSerializer(serializers.ModelSerializer):
    detector = serializers.IntegerField(source="config_id", read_only=True)
    version = serializers.IntegerField(source="result.version", read_only=True, allow_null=True, default=None)
    progress = TrainingProgressSerializer(many=True, read_only=True)

    class Meta:
        model = TrainingJob
        fields = ["id", "detector", "status", "queue", "train_start", "train_end", "member_ranges", "activate", "stage", "percent", "epoch", "epochs",
                  "loss", "eta_s", "error", "version", "created_at", "started_at", "finished_at", "progress"]
        read_only_fields = fields


class TrainRequestSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    activate = serializers.BooleanField(default=True)
    member_ranges = serializers.DictField(
        child=serializers.ListField(child=serializers.DateTimeField(), min_length=2, max_length=2), required=False, default=dict,
        help_text="Fleet detectors: equipment tag -> [start, end] of that member's training history (others use start/end).",
    )

    def validate(self, attrs):
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": "must be after start"})
        for tag, (start, end) in attrs.get("member_ranges", {}).items():
            if end <= start:
                raise serializers.ValidationError({"member_ranges": f"{tag}: end must be after start"})
        attrs["member_ranges"] = {tag: [start.isoformat(), end.isoformat()] for tag, (start, end) in attrs.get("member_ranges", {}).items()}
        return attrs


class ActivateSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)


class ScoreQuerySerializer(serializers.Serializer):
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=20_000, default=1000)


class AnomalyScoreSerializer(serializers.ModelSerializer):
    class Meta:
        model = AnomalyScore
        fields = ["ts", "score", "threshold"]


# --- diagnosis --------------------------------------------------------------------------------


class DiagnosisSerializer(serializers.ModelSerializer):
    equipment = serializers.SlugRelatedField(slug_field="tag", read_only=True)
    model_version = serializers.IntegerField(source="model_version.version", read_only=True, allow_null=True, default=None)
    image = serializers.IntegerField(source="image_id", read_only=True, allow_null=True)
    feedback = serializers.SerializerMethodField()
    log_template_ids = serializers.SerializerMethodField()

    class Meta:
        model = Diagnosis
        fields = ["id", "alarm", "equipment", "trigger", "stage", "announced", "alarm_severity", "status", "fault", "probability", "result", "model_version", "window_start", "window_end",
                  "image", "latency_ms", "error", "created_at", "finished_at", "feedback", "log_template_ids"]
        read_only_fields = fields

    def get_log_template_ids(self, diagnosis: Diagnosis) -> list[dict]:
        """Per log template of the evidence: the connector template ids stored with the diagnosis
        and the ids holding those lines now (a merged id resolves to its surviving template)."""
        from phm.telemetry.log_templates import current_ids

        stored = (diagnosis.result or {}).get("log_template_ids") or {}
        now = current_ids([tid for ids in stored.values() for tid in ids])
        return [
            {"template": text, "template_ids": ids, "current_template_ids": sorted({now.get(tid, tid) for tid in ids})}
            for text, ids in stored.items()
        ]

    def get_feedback(self, diagnosis: Diagnosis) -> list[dict]:
        return DiagnosisFeedbackSerializer(diagnosis.feedback.all(), many=True).data


class DiagnosisFeedbackSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True, default=None)

    class Meta:
        model = DiagnosisFeedback
        fields = ["id", "diagnosis", "user", "verdict", "corrected_fault", "label", "comment", "created_at", "used_in_training_at", "trained_version"]
        read_only_fields = fields


class FeedbackRequestSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=FeedbackVerdict.choices)
    fault = serializers.CharField(required=False, allow_blank=True, default="", help_text="The right fault, for verdict 'correct'.")
    comment = serializers.CharField(required=False, allow_blank=True, default="")


class DiagnoseRequestSerializer(serializers.Serializer):
    alarm = serializers.IntegerField(min_value=1)


class DiagnoserVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = DiagnoserVersion
        fields = ["id", "version", "source", "backbone", "taxonomy", "metrics", "trained_on", "parent", "is_active", "created_at", "activated_at"]
        read_only_fields = fields


class DiagnoserJobSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="result.version", read_only=True, allow_null=True, default=None)

    class Meta:
        model = DiagnoserTrainingJob
        fields = ["id", "kind", "status", "stage", "percent", "epoch", "epochs", "loss", "feedback_count", "replay_count", "error", "version",
                  "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class DiagnoserTrainRequestSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=DiagnoserJobKind.choices, default=DiagnoserJobKind.RETRAIN)
