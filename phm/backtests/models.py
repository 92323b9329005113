"""Backtests: stored history replayed through the live scoring, alarm rules and diagnosis code,
with their own rows. A backtest never writes live alarms, their journal or the outbox: what it
would have raised lives here only, next to the report scored against the known faults."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from phm.analytics.models import DetectorConfig, DiagnoserVersion, JobStatus, ModelVersion
from phm.assets.models import Equipment, WorkOrder
from phm.telemetry.models import FaultInjection


class GroundTruth(models.TextChoices):
    INJECTIONS = "injections", "Recorded fault injections"
    WORK_ORDERS = "work_orders", "Corrective work orders"
    BOTH = "both", "Fault injections and corrective work orders"


def default_rediagnose_after_s() -> list[float]:
    return [0.0, 300.0, 900.0]


class BacktestRun(models.Model):
    """One backtest: what to replay (equipment, range, detector versions, diagnoser) and the job's
    state; ``report`` holds the scored summary once it succeeded."""

    name = models.CharField(max_length=120, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    start = models.DateTimeField()
    end = models.DateTimeField()
    equipment = models.ManyToManyField(Equipment, blank=True, related_name="+", help_text="Empty: every equipment with a detector.")
    versions = models.ManyToManyField(ModelVersion, blank=True, related_name="+", help_text="Detector versions replayed (default: the active ones).")
    diagnoser = models.ForeignKey(DiagnoserVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                  help_text="Diagnoser version (default: the active one; none: alarms only).")
    diagnose = models.BooleanField(default=True, help_text="Diagnose each raise (and re-diagnose while the alarm is open).")
    rediagnose_after_s = models.JSONField(default=default_rediagnose_after_s, help_text="Seconds after the raise at which to diagnose, while the alarm is open.")
    uncertain_below = models.FloatField(default=0.5, help_text="A diagnosis whose top probability is below this counts as uncertain.")
    clear_grace_s = models.FloatField(default=1800.0, help_text="An alarm raised this long after a fault ended still belongs to it (thermal lags).")
    ground_truth = models.CharField(max_length=16, choices=GroundTruth.choices, default=GroundTruth.INJECTIONS,
                                    help_text="The known faults the report scores against (see phm.backtests.truth).")
    stage = models.CharField(max_length=64, blank=True)
    percent = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    report = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=models.Q(end__gt=models.F("start")), name="backtest_end_after_start")]

    def __str__(self) -> str:
        return f"backtest {self.pk} {self.start:%Y-%m-%d %H:%M}..{self.end:%Y-%m-%d %H:%M} ({self.status})"


class BacktestProgress(models.Model):
    """One row per progress report: the job's history as data."""

    run = models.ForeignKey(BacktestRun, on_delete=models.CASCADE, related_name="progress")
    at = models.DateTimeField(auto_now_add=True)
    stage = models.CharField(max_length=64)
    percent = models.FloatField()

    class Meta:
        ordering = ["id"]


class BacktestSeries(models.Model):
    """The replayed score of one detector, reduced for plots (the largest score per bucket, so a
    short excursion stays visible), with its threshold."""

    run = models.ForeignKey(BacktestRun, on_delete=models.CASCADE, related_name="series")
    config = models.ForeignKey(DetectorConfig, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    equipment = models.ForeignKey(Equipment, on_delete=models.CASCADE, related_name="+")
    threshold = models.FloatField()
    steps = models.PositiveIntegerField(help_text="Grid steps scored.")
    times = models.JSONField(default=list, help_text="Bucket start times, epoch seconds.")
    scores = models.JSONField(default=list, help_text="Largest score per bucket.")
    score_seconds = models.FloatField(default=0.0, help_text="CPU time reading and scoring.")

    class Meta:
        ordering = ["equipment__tag", "config__name"]


class BacktestAlarm(models.Model):
    """An alarm the replay would have raised (never a live ``Alarm``)."""

    run = models.ForeignKey(BacktestRun, on_delete=models.CASCADE, related_name="alarms")
    config = models.ForeignKey(DetectorConfig, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    equipment = models.ForeignKey(Equipment, on_delete=models.CASCADE, related_name="+")
    raised_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True, help_text="Empty: still active at the end of the range.")
    raise_score = models.FloatField()
    peak_score = models.FloatField()
    threshold = models.FloatField()
    fault = models.ForeignKey(FaultInjection, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              help_text="The recorded fault this alarm was raised in (empty: a false alarm, or a work order's fault).")
    work_order = models.ForeignKey(WorkOrder, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   help_text="The corrective work order whose fault this alarm was raised in (ground truth from work orders).")

    class Meta:
        ordering = ["raised_at", "id"]
        indexes = [models.Index(fields=["run", "raised_at"], name="backtest_alarm_run_raised")]


class BacktestDiagnosis(models.Model):
    """One diagnosis of a backtest alarm, at the raise or a later re-diagnosis."""

    alarm = models.ForeignKey(BacktestAlarm, on_delete=models.CASCADE, related_name="diagnoses")
    offset_s = models.FloatField(help_text="Seconds after the raise (0 = at the raise).")
    at = models.DateTimeField(help_text="End of the sensor window diagnosed.")
    fault = models.CharField(max_length=64, blank=True)
    probability = models.FloatField(null=True, blank=True)
    probabilities = models.JSONField(default=dict, blank=True)
    expected = models.CharField(max_length=64, blank=True, help_text="The known fault's kind (empty for a false alarm).")
    correct = models.BooleanField(null=True, help_text="Top-1 equals the known fault (empty for a false alarm).")
    uncertain = models.BooleanField(default=False)
    compute_ms = models.FloatField(help_text="Reading the incident from storage and diagnosing it: the raise -> stored diagnosis time without a queue.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["alarm", "offset_s"]
