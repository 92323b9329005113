from __future__ import annotations

from rest_framework import serializers

from phm.analytics.models import DiagnoserVersion, ModelVersion
from phm.assets.models import Equipment
from phm.backtests.models import BacktestAlarm, BacktestDiagnosis, BacktestProgress, BacktestRun, GroundTruth


class BacktestCreateSerializer(serializers.Serializer):
    """What to replay. Defaults: every equipment with a detector, their active versions, the active
    diagnoser, diagnoses at the raise and +5 / +15 min while the alarm is active."""

    name = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    equipment = serializers.SlugRelatedField(slug_field="tag", queryset=Equipment.objects.all(), many=True, required=False, default=list)
    versions = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.select_related("config__equipment"), many=True, required=False,
                                                  default=list, help_text="ModelVersion ids (default: the active ones).")
    diagnoser = serializers.SlugRelatedField(slug_field="version", queryset=DiagnoserVersion.objects.all(), required=False, allow_null=True,
                                             default=None, help_text="Diagnoser version number (default: the active one).")
    diagnose = serializers.BooleanField(required=False, default=True)
    rediagnose_after_s = serializers.ListField(child=serializers.FloatField(min_value=0), required=False, default=[0.0, 300.0, 900.0],
                                               min_length=1, max_length=20)
    uncertain_below = serializers.FloatField(required=False, default=0.5, min_value=0, max_value=1)
    clear_grace_s = serializers.FloatField(required=False, default=1800.0, min_value=0)
    ground_truth = serializers.ChoiceField(choices=GroundTruth.choices, required=False, default=GroundTruth.INJECTIONS,
                                           help_text="Score against the recorded fault injections, the corrective work orders, or both.")

    def validate(self, attrs):
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": "must be after start"})
        return attrs


class BacktestProgressSerializer(serializers.ModelSerializer):
    class Meta:
        model = BacktestProgress
        fields = ["at", "stage", "percent"]


class BacktestRunSerializer(serializers.ModelSerializer):
    equipment = serializers.SlugRelatedField(slug_field="tag", many=True, read_only=True)
    versions = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    diagnoser = serializers.SlugRelatedField(slug_field="version", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    alarms = serializers.IntegerField(source="alarms.count", read_only=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = BacktestRun
        fields = [
            "id", "name", "status", "stage", "percent", "error", "start", "end", "equipment", "versions", "diagnoser", "diagnose",
            "rediagnose_after_s", "uncertain_below", "clear_grace_s", "ground_truth", "alarms", "created_by", "created_at", "started_at", "finished_at", "links",
        ]

    def get_links(self, run: BacktestRun) -> dict:
        return {"report": f"/api/v1/backtests/{run.pk}/report/", "alarms": f"/api/v1/backtests/{run.pk}/alarms/", "page": f"/backtests/{run.pk}/"}


class BacktestRunDetailSerializer(BacktestRunSerializer):
    progress = BacktestProgressSerializer(many=True, read_only=True)

    class Meta(BacktestRunSerializer.Meta):
        fields = [*BacktestRunSerializer.Meta.fields, "progress"]


class BacktestDiagnosisSerializer(serializers.ModelSerializer):
    class Meta:
        model = BacktestDiagnosis
        fields = ["offset_s", "at", "fault", "probability", "probabilities", "expected", "correct", "uncertain", "compute_ms", "error"]


class BacktestAlarmSerializer(serializers.ModelSerializer):
    equipment = serializers.SlugRelatedField(slug_field="tag", read_only=True)
    detector = serializers.CharField(source="config.name", read_only=True)
    version = serializers.IntegerField(source="version.version", read_only=True)
    fault_kind = serializers.SerializerMethodField()
    work_order = serializers.SlugRelatedField(slug_field="number", read_only=True)
    diagnoses = BacktestDiagnosisSerializer(many=True, read_only=True)

    class Meta:
        model = BacktestAlarm
        fields = ["id", "equipment", "detector", "version", "raised_at", "cleared_at", "raise_score", "peak_score", "threshold", "fault", "work_order",
                  "fault_kind", "diagnoses"]

    def get_fault_kind(self, alarm: BacktestAlarm) -> str | None:
        """The kind of the known fault the alarm belongs to, from the injection or the work order."""
        if alarm.fault_id:
            return alarm.fault.fault
        return alarm.work_order.fault if alarm.work_order_id else None
