"""REST API of root-cause diagnosis: diagnoses (by alarm or equipment), engineer feedback on them,
a diagnosis requested again, and the diagnoser's versions and training jobs."""

from __future__ import annotations

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from phm.alarms.api import Conflict
from phm.alarms.models import Alarm
from phm.analytics import diagnoser_training, diagnosis
from phm.analytics import serializers as s
from phm.analytics.models import DiagnoserTrainingJob, DiagnoserVersion, Diagnosis, DiagnosisTrigger


class DiagnosisViewSet(viewsets.ReadOnlyModelViewSet):
    """Stored diagnoses, newest first: ``?alarm=<id>``, ``?equipment=<tag>``, ``?status=``."""

    serializer_class = s.DiagnosisSerializer

    def get_queryset(self):
        rows = Diagnosis.objects.select_related("equipment", "model_version").prefetch_related("feedback__user")
        params = self.request.query_params
        if params.get("alarm", "").isdigit():
            rows = rows.filter(alarm_id=int(params["alarm"]))
        if params.get("equipment"):
            rows = rows.filter(equipment__tag=params["equipment"])
        if params.get("status"):
            rows = rows.filter(status=params["status"])
        return rows.order_by("-created_at", "-id")

    @extend_schema(parameters=[OpenApiParameter("alarm", int), OpenApiParameter("equipment", str), OpenApiParameter("status", str)])
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=s.FeedbackRequestSerializer, responses={201: s.DiagnosisFeedbackSerializer})
    @action(detail=True, methods=["post"])
    def feedback(self, request: Request, pk=None) -> Response:
        """Confirm or correct a diagnosis (engineer): ``{"verdict": "confirm"}`` or
        ``{"verdict": "correct", "fault": "<class of that equipment type>", "comment": "..."}``."""
        target = self.get_object()
        body = s.FeedbackRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            row = diagnosis.submit_feedback(diagnosis=target, user=request.user, **body.validated_data)
        except diagnosis.FeedbackError as exc:
            detail = {exc.field or "non_field_errors": [str(exc)]}
            if exc.allowed:
                detail["allowed"] = exc.allowed
            raise ValidationError({"error": str(exc), "detail": detail}) from None
        return Response(s.DiagnosisFeedbackSerializer(row).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.DiagnoseRequestSerializer, responses={202: s.DiagnoseRequestSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        """Diagnose an alarm again (engineer), e.g. after a new diagnoser version; the result is a new
        diagnosis row with trigger 'manual'; poll ``?alarm=<id>``."""
        body = s.DiagnoseRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        alarm = get_object_or_404(Alarm, pk=body.validated_data["alarm"])
        transaction.on_commit(lambda: diagnosis.enqueue_diagnosis(alarm_id=alarm.pk, trigger=DiagnosisTrigger.MANUAL))
        return Response({"alarm": alarm.pk, "status": "queued"}, status=status.HTTP_202_ACCEPTED)


class DiagnoserVersionViewSet(viewsets.ReadOnlyModelViewSet):
    """Versions of the diagnoser (one active) and ``POST /diagnoser/train`` to train or update it."""

    queryset = DiagnoserVersion.objects.all()
    serializer_class = s.DiagnoserVersionSerializer

    @extend_schema(request=s.DiagnoserTrainRequestSerializer, responses={202: s.DiagnoserJobSerializer})
    @action(detail=False, methods=["post"])
    def train(self, request: Request) -> Response:
        """Queue a diagnoser job (engineer): ``retrain`` updates the active version from unused
        feedback with a replay set; ``demo`` trains one from simulated incidents."""
        body = s.DiagnoserTrainRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            job = diagnoser_training.start_job(kind=body.validated_data["kind"], user=request.user)
        except diagnoser_training.DiagnoserTrainingError as exc:
            raise Conflict(str(exc)) from None
        return Response(s.DiagnoserJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class DiagnoserJobViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = DiagnoserTrainingJob.objects.select_related("result")
    serializer_class = s.DiagnoserJobSerializer
