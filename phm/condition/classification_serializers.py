"""Serializers of the fault-classification API (phm.condition.classification_api)."""

from __future__ import annotations

from rest_framework import serializers

from phm.analytics.models import Queue
from phm.assets.models import Equipment
from phm.condition.models import (
    CaptureClassification,
    CaptureClassifier,
    ClassifierTrainingJob,
    ClassifierTrainingProgress,
    ClassifierVersion,
)


class ClassifierVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ClassifierVersion
        fields = ["id", "version", "params", "classes", "metrics", "train_captures", "is_active", "created_at", "activated_at"]
        read_only_fields = fields


class CaptureClassifierSerializer(serializers.ModelSerializer):
    equipment = serializers.SlugRelatedField(slug_field="tag", queryset=Equipment.objects.all(), many=True)
    active_version = serializers.SerializerMethodField()
    labelled_captures = serializers.SerializerMethodField()

    class Meta:
        model = CaptureClassifier
        fields = ["id", "name", "equipment", "params", "normal_label", "alarm_probability", "queue", "enabled", "active_version",
                  "labelled_captures", "created_at"]
        read_only_fields = ["id", "active_version", "labelled_captures", "created_at"]

    def get_active_version(self, classifier: CaptureClassifier) -> int | None:
        active = next((v for v in classifier.versions.all() if v.is_active), None)
        return active.version if active else None

    def get_labelled_captures(self, classifier: CaptureClassifier) -> int:
        from phm.condition.classification import labelled_captures

        return labelled_captures(classifier).count()


class CreateClassifierSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=64)
    equipment = serializers.SlugRelatedField(slug_field="tag", queryset=Equipment.objects.all(), many=True)
    params = serializers.JSONField(required=False, default=dict)
    normal_label = serializers.CharField(max_length=64, required=False, default="Normal")
    alarm_probability = serializers.FloatField(required=False, allow_null=True, default=None, min_value=0.0, max_value=1.0)
    queue = serializers.ChoiceField(choices=Queue.choices, default=Queue.CPU)
    train = serializers.BooleanField(default=True, help_text="Queue a training job on the labelled captures right away.")


class UpdateClassifierSerializer(serializers.Serializer):
    alarm_probability = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    enabled = serializers.BooleanField(required=False)
    params = serializers.JSONField(required=False)
    equipment = serializers.SlugRelatedField(slug_field="tag", queryset=Equipment.objects.all(), many=True, required=False)


class ClassifierProgressSerializer(serializers.ModelSerializer):
    class Meta:
        model = ClassifierTrainingProgress
        fields = ["at", "stage", "percent", "epoch", "epochs", "loss", "val_loss", "eta_s"]


class ClassifierJobSerializer(serializers.ModelSerializer):
    classifier = serializers.SlugRelatedField(slug_field="name", read_only=True)
    version = serializers.IntegerField(source="result.version", read_only=True, allow_null=True, default=None)
    progress = ClassifierProgressSerializer(many=True, read_only=True)

    class Meta:
        model = ClassifierTrainingJob
        fields = ["id", "classifier", "status", "queue", "activate", "stage", "percent", "epoch", "epochs", "loss", "eta_s", "error",
                  "version", "created_at", "started_at", "finished_at", "progress"]
        read_only_fields = fields


class TrainClassifierSerializer(serializers.Serializer):
    activate = serializers.BooleanField(default=True)


class ActivateClassifierSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)


class CaptureClassificationSerializer(serializers.ModelSerializer):
    classifier = serializers.SlugRelatedField(slug_field="name", read_only=True)
    version = serializers.IntegerField(source="version.version", read_only=True)
    equipment = serializers.CharField(source="capture.equipment.tag", read_only=True)
    point = serializers.CharField(source="capture.point.name", read_only=True)
    captured_at = serializers.DateTimeField(source="capture.captured_at", read_only=True)
    capture_label = serializers.CharField(source="capture.label", read_only=True)

    class Meta:
        model = CaptureClassification
        fields = ["id", "capture", "equipment", "point", "captured_at", "capture_label", "classifier", "version", "label", "probability",
                  "fault_probability", "probabilities", "created_at"]
        read_only_fields = fields


class ClassificationQuerySerializer(serializers.Serializer):
    capture = serializers.IntegerField(required=False, min_value=1)
    equipment = serializers.CharField(required=False, max_length=64)
    classifier = serializers.CharField(required=False, max_length=64)


class CaptureLabelsSerializer(serializers.Serializer):
    labels = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=64), allow_empty=False,
        help_text='Capture id -> fault class ("" clears the label), e.g. {"17": "IR_007"}.',
    )

    def validate_labels(self, value: dict) -> dict[int, str]:
        if len(value) > 10_000:
            raise serializers.ValidationError(f"{len(value)} captures in one request; at most 10000")
        out = {}
        for key, label in value.items():
            try:
                out[int(key)] = label
            except ValueError:
                raise serializers.ValidationError(f"capture id {key[:40]!r} is not a number") from None
        return out


class LabelledRecordingSerializer(serializers.Serializer):
    file = serializers.FileField(help_text=".npz recording (no pickle); one numeric column under the key 'channel'.")
    equipment = serializers.SlugRelatedField(slug_field="tag", queryset=Equipment.objects.all())
    point = serializers.SlugField(max_length=64, help_text="Measurement point name on that equipment (e.g. DE).")
    channel = serializers.CharField(max_length=64, default="DE")
    label = serializers.CharField(max_length=64)
    sample_rate_hz = serializers.FloatField(min_value=1.0, max_value=1_000_000.0)
    speed_rpm = serializers.FloatField(required=False, allow_null=True, default=None, min_value=1.0, max_value=1_000_000.0)
    capture_seconds = serializers.FloatField(default=1.0, min_value=0.01, max_value=600.0)
    start = serializers.DateTimeField(help_text="Time of the first capture; the next ones follow every capture_seconds.")
    unit = serializers.CharField(max_length=8, default="g")
