"""REST API of backtests: start one (engineer role), list, detail with progress, report, alarms."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from phm.alarms.api import Conflict
from phm.backtests import serializers as s
from phm.backtests import services
from phm.backtests.models import BacktestRun


class BacktestViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    queryset = BacktestRun.objects.select_related("diagnoser", "created_by").prefetch_related("equipment", "versions")
    # The project's RolePermission (the default): reading needs a role (operator and up), starting
    # a backtest (hours of CPU) the engineer role; a user in no role group gets nothing.

    def get_serializer_class(self):
        if self.action == "create":
            return s.BacktestCreateSerializer
        return s.BacktestRunDetailSerializer if self.action == "retrieve" else s.BacktestRunSerializer

    @extend_schema(request=s.BacktestCreateSerializer, responses={202: s.BacktestRunDetailSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        """Queue a backtest (queue ``cpu``); poll ``/backtests/<id>/`` for progress, then ``/report/``."""
        body = s.BacktestCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            run = services.create_backtest(
                start=data["start"], end=data["end"], equipment=data["equipment"], versions=data["versions"], diagnoser=data["diagnoser"],
                diagnose=data["diagnose"], rediagnose_after_s=data["rediagnose_after_s"], uncertain_below=data["uncertain_below"],
                clear_grace_s=data["clear_grace_s"], ground_truth=data["ground_truth"], name=data["name"], user=request.user,
            )
        except services.BacktestError as exc:
            raise ValidationError(str(exc)) from None
        return Response(s.BacktestRunDetailSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def report(self, request: Request, pk=None) -> Response:
        """The scored report (409 until the run succeeded)."""
        run = self.get_object()
        if run.status != "succeeded":
            raise Conflict(f"backtest {run.pk} is {run.status}{': ' + run.error if run.error else ''}; the report exists once it succeeded")
        return Response(run.report)

    @extend_schema(responses=s.BacktestAlarmSerializer(many=True))
    @action(detail=True, methods=["get"])
    def alarms(self, request: Request, pk=None) -> Response:
        run = self.get_object()
        rows = run.alarms.select_related("equipment", "config", "version", "fault", "work_order").prefetch_related("diagnoses")
        page = self.paginate_queryset(rows)
        if page is not None:
            return self.get_paginated_response(s.BacktestAlarmSerializer(page, many=True).data)
        return Response(s.BacktestAlarmSerializer(rows, many=True).data)
