"""REST API of health and remaining useful life: an equipment's RUL (every role), work orders (the
run-to-failure histories: read every role, write engineer), RUL model versions and training jobs
(engineer)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from phm.alarms.api import Conflict
from phm.assets.models import Equipment, EquipmentType, WorkOrder
from phm.condition import rul
from phm.condition.models import HealthPoint, RULEstimate, RULModelVersion, RULTrainingJob

MAX_PARAMS_KEYS = 20


class WorkOrderSerializer(serializers.ModelSerializer):
    equipment = serializers.SlugRelatedField(slug_field="tag", queryset=Equipment.objects.all())

    class Meta:
        model = WorkOrder
        fields = ["id", "equipment", "number", "kind", "opened_at", "closed_at", "fault", "fault_start", "failed_at", "ends_run", "description", "source"]

    def validate(self, attrs: dict) -> dict:
        merged = {**({f: getattr(self.instance, f) for f in self.Meta.fields if f != "id"} if self.instance else {}), **attrs}
        opened, closed, failed = merged.get("opened_at"), merged.get("closed_at"), merged.get("failed_at")
        if closed is not None and opened is not None and closed < opened:
            raise ValidationError({"closed_at": f"closed_at {closed.isoformat()} is before opened_at {opened.isoformat()}"})
        if failed is not None and closed is not None and failed > closed:
            raise ValidationError({"failed_at": f"failed_at {failed.isoformat()} is after closed_at {closed.isoformat()}: a machine fails before its repair ends"})
        fault_start = merged.get("fault_start")
        if fault_start is not None and failed is not None and fault_start > failed:
            raise ValidationError({"fault_start": "fault_start is after failed_at"})
        return attrs


class WorkOrderViewSet(viewsets.ModelViewSet):
    """Maintenance history. A work order with ``ends_run`` and ``failed_at`` closes one
    run-to-failure history of its machine (used by the RUL models of its equipment type)."""

    queryset = WorkOrder.objects.select_related("equipment").order_by("-opened_at", "-id")
    serializer_class = WorkOrderSerializer

    def get_queryset(self):
        rows = super().get_queryset()
        tag = self.request.query_params.get("equipment")
        return rows.filter(equipment__tag=tag) if tag else rows


class RULEstimateSerializer(serializers.ModelSerializer):
    model_version = serializers.IntegerField(source="version.version")
    at_cap = serializers.BooleanField(read_only=True)

    class Meta:
        model = RULEstimate
        fields = ["as_of", "rul_days", "lower_days", "upper_days", "level", "cap_days", "at_cap", "histories", "run_start", "steps", "model_version"]


class RULModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = RULModelVersion
        fields = ["id", "equipment_type", "version", "method", "params", "measurements", "step_s", "interval_level", "histories",
                  "history_work_orders", "metrics", "is_active", "created_at", "activated_at"]


class RULTrainingJobSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = RULTrainingJob
        fields = ["id", "equipment_type", "method", "params", "step_s", "activate", "status", "stage", "percent", "error", "result",
                  "created_at", "started_at", "finished_at", "progress"]

    def get_progress(self, job: RULTrainingJob) -> list[dict]:
        return [{"at": p.at, "stage": p.stage, "percent": p.percent} for p in job.progress.all()]


class TrainRULSerializer(serializers.Serializer):
    equipment_type = serializers.ChoiceField(choices=EquipmentType.choices)
    method = serializers.ChoiceField(choices=rul.METHODS, default="lightgbm")
    params = serializers.DictField(required=False, default=dict)
    step_s = serializers.FloatField(default=rul.DAY_S, min_value=60, max_value=30 * rul.DAY_S)
    activate = serializers.BooleanField(default=True)

    def validate_params(self, value: dict) -> dict:
        if len(value) > MAX_PARAMS_KEYS:
            raise ValidationError(f"at most {MAX_PARAMS_KEYS} parameters")
        unknown = sorted(set(value) - rul.allowed_params())
        if unknown:
            raise ValidationError(f"unknown RULEstimator parameter(s) {unknown}; allowed: {sorted(rul.allowed_params())}")
        bad = [k for k, v in value.items() if not isinstance(v, (int, float, str, bool)) or isinstance(v, str) and len(v) > 100]
        if bad:
            raise ValidationError(f"parameters {bad} must be numbers, booleans or short strings")
        return value


class RollbackRULSerializer(serializers.Serializer):
    equipment_type = serializers.ChoiceField(choices=EquipmentType.choices)


class RULModelViewSet(viewsets.ReadOnlyModelViewSet):
    """RUL model versions (engineer): train, list, activate, roll back."""

    queryset = RULModelVersion.objects.all()
    serializer_class = RULModelVersionSerializer

    def get_queryset(self):
        rows = super().get_queryset()
        kind = self.request.query_params.get("equipment_type")
        return rows.filter(equipment_type=kind) if kind else rows

    @extend_schema(request=TrainRULSerializer, responses={202: RULTrainingJobSerializer})
    @action(detail=False, methods=["post"])
    def train(self, request: Request) -> Response:
        """Queue a training job on the run-to-failure histories of an equipment type; poll /rul-jobs/<id>."""
        body = TrainRULSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            job = rul.start_rul_training(user=request.user, **body.validated_data)
        except rul.RULError as exc:
            raise ValidationError(str(exc)) from None
        return Response(RULTrainingJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=RULModelVersionSerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk=None) -> Response:
        return Response(RULModelVersionSerializer(rul.activate_version(version=self.get_object())).data)

    @extend_schema(request=RollbackRULSerializer, responses=RULModelVersionSerializer)
    @action(detail=False, methods=["post"])
    def rollback(self, request: Request) -> Response:
        body = RollbackRULSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            version = rul.rollback(equipment_type=body.validated_data["equipment_type"])
        except rul.RULError as exc:
            raise Conflict(str(exc)) from None
        return Response(RULModelVersionSerializer(version).data)


class RULTrainingJobViewSet(viewsets.ReadOnlyModelViewSet):
    """RUL training jobs with their progress rows (engineer)."""

    queryset = RULTrainingJob.objects.prefetch_related("progress")
    serializer_class = RULTrainingJobSerializer


def rul_body(equipment: Equipment) -> dict:
    """What ``GET /equipment/<tag>/rul`` answers: the newest stored estimate (estimated now when
    the type has an active model and none is stored yet), or why there is none."""
    estimate = rul.latest_estimate(equipment=equipment)
    status_, message = "ok", ""
    if estimate is None:
        outcome = rul.estimate_rul(equipment=equipment)
        estimate, status_, message = outcome.estimate, outcome.status, outcome.message
    latest_health = HealthPoint.objects.filter(equipment=equipment).order_by("-ts").first()
    body = {
        "equipment": equipment.tag, "equipment_type": equipment.equipment_type, "planning_lead_time_days": equipment.planning_lead_time_days,
        "status": status_, "message": message, "estimate": None,
        "health": None if latest_health is None else {"ts": latest_health.ts, "health": latest_health.health},
    }
    if estimate is not None:
        body["estimate"] = RULEstimateSerializer(estimate).data
        body["message"] = estimate_sentence(estimate)
        body["below_lead_time"] = estimate.lower_days < equipment.planning_lead_time_days
    return body


def estimate_sentence(estimate: RULEstimate) -> str:
    """The honest one-line reading of an estimate: value, interval, and what it rests on."""
    at_least = "at least " if estimate.at_cap else ""
    few = " (few failures: treat the interval as rough)" if estimate.histories < 20 else ""
    return (f"RUL {at_least}{estimate.rul_days:.0f} days ({estimate.level:.0%} interval {estimate.lower_days:.0f}-{estimate.upper_days:.0f} days), "
            f"from {estimate.histories} run-to-failure histories{few}")


class EquipmentRULView(APIView):
    """``GET /api/v1/equipment/<tag>/rul``: RUL with its interval and the number of histories it
    rests on, or a 200 saying why there is none (no model, not enough history)."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, tag: str) -> Response:
        equipment = get_object_or_404(Equipment, tag=tag)
        return Response(rul_body(equipment))
