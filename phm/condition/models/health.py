"""Health and remaining useful life: the health indicator trended per equipment, RUL model versions
(one ``RULEstimator`` per equipment type, trained on the run-to-failure histories of machines of
that type), their training jobs with progress rows, and the RUL estimates with their interval."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from phm.analytics.models import JobStatus
from phm.assets.models import Equipment


class HealthPoint(models.Model):
    """One step of an equipment's health indicator (``models.health.HealthIndicator``): 1 is like
    the start of the current run, lower is further from it."""

    equipment = models.ForeignKey(Equipment, on_delete=models.CASCADE, related_name="health_points")
    ts = models.DateTimeField(help_text="Start of the step the readings were averaged over.")
    health = models.FloatField(help_text="0..1, 1 = healthy (like the run's baseline).")
    distance = models.FloatField(help_text="Smoothed distance from the healthy baseline, in units of its healthy limit.")
    run_start = models.DateTimeField(help_text="Start of the run (after the last repair) the baseline comes from.")

    class Meta:
        ordering = ["equipment", "ts"]
        constraints = [models.UniqueConstraint(fields=["equipment", "ts"], name="health_point_unique_per_step")]

    def __str__(self) -> str:
        return f"{self.equipment_id}@{self.ts.isoformat()}={self.health:.3f}"


class RULModelVersion(models.Model):
    """A trained ``RULEstimator`` for one equipment type. Its columns are sensor *measurements*
    (vibration_rms, ...), so every machine of the type that has those sensors can be estimated."""

    equipment_type = models.CharField(max_length=32, db_index=True)
    version = models.PositiveIntegerField()
    method = models.CharField(max_length=32)
    params = models.JSONField(default=dict, blank=True)
    measurements = models.JSONField(default=list, help_text="Sensor measurements the model reads, in column order.")
    step_s = models.FloatField(help_text="Readings are averaged over steps of this length; one step is one 'cycle' of the model.")
    interval_level = models.FloatField(default=0.8)
    histories = models.PositiveIntegerField(help_text="Run-to-failure histories it was trained on.")
    history_work_orders = models.JSONField(default=list, help_text="Numbers of the work orders that closed those histories.")
    artifact = models.CharField(max_length=500, help_text="Folder written by RULEstimator.save, relative to PHM_DATA_ROOT.")
    metrics = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["equipment_type", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["equipment_type", "version"], name="rul_version_unique_per_type"),
            models.UniqueConstraint(fields=["equipment_type"], condition=models.Q(is_active=True), name="one_active_rul_version_per_type"),
        ]

    def __str__(self) -> str:
        return f"RUL {self.equipment_type} v{self.version}{' (active)' if self.is_active else ''}"


#: The job states every training job shares (``phm.training_jobs`` moves them).
RULJobStatus = JobStatus


class RULTrainingJob(models.Model):
    equipment_type = models.CharField(max_length=32)
    method = models.CharField(max_length=32, default="lightgbm")
    params = models.JSONField(default=dict, blank=True)
    step_s = models.FloatField(default=86400.0)
    activate = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=RULJobStatus.choices, default=RULJobStatus.QUEUED, db_index=True)
    stage = models.CharField(max_length=64, blank=True)
    percent = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    result = models.ForeignKey(RULModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"RUL training {self.equipment_type} ({self.status})"


class RULTrainingProgress(models.Model):
    """One row per progress report of a RUL training job."""

    job = models.ForeignKey(RULTrainingJob, on_delete=models.CASCADE, related_name="progress")
    at = models.DateTimeField(auto_now_add=True)
    stage = models.CharField(max_length=64)
    percent = models.FloatField()

    class Meta:
        ordering = ["id"]


class RULEstimate(models.Model):
    """Remaining useful life of one equipment at ``as_of`` (the end of the last step of readings),
    in days, with the model's prediction interval and the number of histories it rests on."""

    equipment = models.ForeignKey(Equipment, on_delete=models.CASCADE, related_name="rul_estimates")
    version = models.ForeignKey(RULModelVersion, on_delete=models.CASCADE, related_name="estimates")
    as_of = models.DateTimeField()
    rul_days = models.FloatField()
    lower_days = models.FloatField()
    upper_days = models.FloatField()
    level = models.FloatField(help_text="Nominal coverage of [lower, upper], e.g. 0.8.")
    cap_days = models.FloatField(help_text="The model's RUL cap: an estimate at the cap means 'at least this long'.")
    histories = models.PositiveIntegerField(help_text="Run-to-failure histories the model rests on.")
    run_start = models.DateTimeField(help_text="Start of the current run (after the last repair).")
    steps = models.PositiveIntegerField(help_text="Steps of this run the estimate saw.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["equipment", "-as_of"]
        constraints = [models.UniqueConstraint(fields=["equipment", "version", "as_of"], name="one_rul_estimate_per_version_and_time")]
        indexes = [models.Index(fields=["equipment", "as_of"], name="rul_estimate_equipment_asof")]

    def __str__(self) -> str:
        return f"RUL {self.equipment_id} {self.rul_days:.1f} d [{self.lower_days:.1f}, {self.upper_days:.1f}]"

    @property
    def at_cap(self) -> bool:
        return self.upper_days >= self.cap_days - 1e-9
