"""Detector configuration per equipment, trained model versions, training jobs with progress
rows, and the anomaly scores the scoring service stores; root-cause diagnoses of alarms, the
diagnoser's versions and training jobs, and engineers' feedback on diagnoses."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from phm.assets.models import Equipment, Sensor
from phm.telemetry.fields import EpochMicrosecondsField


class ThresholdKind(models.TextChoices):
    DETECTOR = "detector", "The detector's own calibrated threshold (score 1.0)"
    FIXED = "fixed", "A fixed score value"
    QUANTILE = "quantile", "margin x quantile of the training scores"


class Queue(models.TextChoices):
    CPU = "cpu"
    GPU = "gpu"


class DetectorScope(models.TextChoices):
    UNIT = "unit", "Trained on this equipment's history only"
    FLEET = "fleet", "Trained on the pooled history of its fleet, calibrated on this equipment"


class DetectorConfig(models.Model):
    equipment = models.ForeignKey(Equipment, on_delete=models.CASCADE, related_name="detectors")
    name = models.SlugField(max_length=64, help_text="Unique per equipment; alarms come from 'detector:<name>'.")
    method = models.CharField(max_length=32, help_text="models.detectors method: pca, isolation_forest, reprogram, ...")
    params = models.JSONField(default=dict, blank=True, help_text="Keyword parameters of AnomalyDetector.")
    sensors = models.ManyToManyField(Sensor, related_name="detectors")
    stride_s = models.FloatField(default=1.0, help_text="Scores are computed on a grid of this period (readings averaged per step).")
    window_s = models.FloatField(default=300.0, help_text="History before the first new step given to the detector as context.")
    scoring_interval_s = models.FloatField(default=1.0, help_text="How often beat scores new data (seconds).")
    max_chunk_steps = models.PositiveIntegerField(default=20_000, help_text="A backlog is scored in chunks of this many steps, in order.")
    threshold_kind = models.CharField(max_length=16, choices=ThresholdKind.choices, default=ThresholdKind.DETECTOR)
    threshold_value = models.FloatField(null=True, blank=True, help_text="For 'fixed'.")
    threshold_quantile = models.FloatField(default=0.995, help_text="For 'quantile'.")
    threshold_margin = models.FloatField(default=1.2, help_text="For 'quantile'.")
    deadband = models.FloatField(default=0.2, help_text="Fraction of the threshold the score must fall below to clear.")
    on_delay_s = models.FloatField(default=0.0)
    off_delay_s = models.FloatField(default=0.0)
    queue = models.CharField(max_length=8, choices=Queue.choices, default=Queue.CPU, help_text="Celery queue for training.")
    scope = models.CharField(
        max_length=8, choices=DetectorScope.choices, default=DetectorScope.UNIT,
        help_text="'fleet': one model on the pooled history of every member of the fleet, with this unit's own normalisation and threshold.",
    )
    fleet_group = models.SlugField(
        max_length=64, blank=True,
        help_text="Fleet detectors with the same group train together; empty: the fleet detectors of this name on equipment of the same type.",
    )
    enabled = models.BooleanField(default=True)
    # Scoring cursor: the last grid step scored. Advanced with a conditional update, so two
    # workers scoring the same detector cannot both store the same steps.
    scored_until = EpochMicrosecondsField(null=True, blank=True)
    next_scoring_at = models.DateTimeField(null=True, blank=True, help_text="When beat should queue the next scoring run.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["equipment__tag", "name"]
        constraints = [
            models.UniqueConstraint(fields=["equipment", "name"], name="detector_name_unique_per_equipment"),
            models.CheckConstraint(condition=models.Q(stride_s__gt=0), name="detector_stride_positive"),
            models.CheckConstraint(condition=models.Q(window_s__gte=0), name="detector_window_not_negative"),
            models.CheckConstraint(condition=models.Q(deadband__gte=0, deadband__lt=1), name="detector_deadband_fraction"),
        ]

    def __str__(self) -> str:
        return f"{self.equipment.tag}/{self.name} ({self.method})"

    @property
    def alarm_source(self) -> str:
        return f"detector:{self.name}"


class ModelVersion(models.Model):
    config = models.ForeignKey(DetectorConfig, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    method = models.CharField(max_length=32)
    params = models.JSONField(default=dict)
    artifact = models.CharField(max_length=500, help_text="Folder written by AnomalyDetector.save, relative to PHM_DATA_ROOT.")
    threshold = models.FloatField(help_text="Alarm limit on the score scale, from the threshold policy.")
    metrics = models.JSONField(default=dict, help_text="Training-data statistics and fit time.")
    train_start = models.DateTimeField()
    train_end = models.DateTimeField()
    train_rows = models.PositiveIntegerField()
    excluded_faults = models.PositiveIntegerField(default=0, help_text="Injected-fault periods left out of training.")
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["config", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["config", "version"], name="model_version_unique"),
            models.UniqueConstraint(fields=["config"], condition=models.Q(is_active=True), name="one_active_version_per_detector"),
        ]

    def __str__(self) -> str:
        return f"{self.config} v{self.version}{' (active)' if self.is_active else ''}"


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TrainingJob(models.Model):
    config = models.ForeignKey(DetectorConfig, on_delete=models.CASCADE, related_name="training_jobs")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    queue = models.CharField(max_length=8, choices=Queue.choices, default=Queue.CPU)
    train_start = models.DateTimeField()
    train_end = models.DateTimeField()
    activate = models.BooleanField(default=True, help_text="Make the new version active when training succeeds.")
    member_ranges = models.JSONField(
        default=dict, blank=True,
        help_text="Fleet training: equipment tag -> [start, end] (ISO) of that member's training history; others use train_start/train_end.",
    )
    percent = models.FloatField(default=0.0)
    epoch = models.PositiveIntegerField(null=True, blank=True)
    epochs = models.PositiveIntegerField(null=True, blank=True)
    loss = models.FloatField(null=True, blank=True)
    eta_s = models.FloatField(null=True, blank=True)
    stage = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    result = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"training {self.config} ({self.status})"


class TrainingProgress(models.Model):
    """One row per progress report (stage change or epoch): the job's history as data."""

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="progress")
    at = models.DateTimeField(auto_now_add=True)
    stage = models.CharField(max_length=64)
    percent = models.FloatField()
    epoch = models.PositiveIntegerField(null=True, blank=True)
    epochs = models.PositiveIntegerField(null=True, blank=True)
    loss = models.FloatField(null=True, blank=True)
    val_loss = models.FloatField(null=True, blank=True)
    eta_s = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["id"]


class AnomalyScore(models.Model):
    pk = models.CompositePrimaryKey("config", "ts")
    config = models.ForeignKey(DetectorConfig, on_delete=models.CASCADE, related_name="scores")
    ts = EpochMicrosecondsField()
    score = models.FloatField()
    threshold = models.FloatField()
    version = models.ForeignKey(ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return f"{self.config_id}@{self.ts.isoformat()}={self.score:.3g}"


# --- root-cause diagnosis ---------------------------------------------------------------------


class DiagnoserSource(models.TextChoices):
    DEMO = "demo", "Trained on simulated incidents of the demo plant"
    FEEDBACK = "feedback", "Updated from engineer feedback (with a replay set)"
    UPLOAD = "upload", "Registered from a folder trained elsewhere"


class DiagnoserVersion(models.Model):
    """A trained root-cause diagnoser (``models.diagnosis.FaultDiagnoser``), one model for every
    equipment type; exactly one version is active, the one the ``diagnose`` task uses."""

    version = models.PositiveIntegerField(unique=True)
    artifact = models.CharField(max_length=500, help_text="Folder written by FaultDiagnoser.save, relative to PHM_DATA_ROOT.")
    source = models.CharField(max_length=16, choices=DiagnoserSource.choices, default=DiagnoserSource.DEMO)
    backbone = models.CharField(max_length=300, blank=True, help_text="Backbone the diagnoser was built on ('' = the default model).")
    taxonomy = models.JSONField(default=dict, help_text="Fault classes per equipment type: feedback is checked against it.")
    metrics = models.JSONField(default=dict, blank=True)
    trained_on = models.JSONField(default=dict, blank=True, help_text="Incident counts: simulated, feedback, replay, per class.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["is_active"], condition=models.Q(is_active=True), name="one_active_diagnoser")]

    def __str__(self) -> str:
        return f"diagnoser v{self.version}{' (active)' if self.is_active else ''}"

    def classes(self, equipment_type: str) -> list[str]:
        return list(self.taxonomy.get(equipment_type, []))


class DiagnosisStatus(models.TextChoices):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    NO_MODEL = "no_model", "No diagnoser trained yet"


class DiagnosisTrigger(models.TextChoices):
    RAISE = "raise", "Alarm raised"
    MANUAL = "manual", "Requested again (command or API)"
    FOLLOW_UP = "follow_up", "Re-diagnosed as evidence grew (minutes after the raise)"
    ESCALATION = "escalation", "Re-diagnosed on a severity escalation"


class Diagnosis(models.Model):
    """The root-cause diagnosis of one alarm: the stored ``DiagnosisResult`` (fault, probabilities,
    evidence, explanation, actions with citations) and the incident embedding for similar-case
    search. One per alarm raise (a partial unique index: a twice-delivered task stores one)."""

    alarm = models.ForeignKey("alarms.Alarm", on_delete=models.CASCADE, related_name="diagnoses")
    equipment = models.ForeignKey(Equipment, on_delete=models.CASCADE, related_name="diagnoses")
    trigger = models.CharField(max_length=16, choices=DiagnosisTrigger.choices, default=DiagnosisTrigger.RAISE)
    status = models.CharField(max_length=16, choices=DiagnosisStatus.choices, default=DiagnosisStatus.RUNNING, db_index=True)
    fault = models.CharField(max_length=64, blank=True)
    probability = models.FloatField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="models.diagnosis.DiagnosisResult.to_dict()")
    embedding = models.BinaryField(null=True, blank=True, help_text="Incident embedding, float32 little-endian.")
    model_version = models.ForeignKey(DiagnoserVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="diagnoses")
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    image = models.ForeignKey("telemetry.InspectionImage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    latency_ms = models.FloatField(null=True, blank=True, help_text="From the alarm's raise (wall clock) to this diagnosis stored.")
    explanation_ms = models.FloatField(
        null=True, blank=True, help_text="From the alarm's raise to the language model's explanation stored (when it runs after the diagnosis)."
    )
    explained_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    stage = models.CharField(
        max_length=32, blank=True,
        help_text="Which re-diagnosis of the alarm: '+300s' (evidence up to 5 min after the raise), 'escalation:high'; empty for raise/manual.",
    )
    alarm_severity = models.PositiveSmallIntegerField(null=True, blank=True, help_text="The alarm's severity when this diagnosis ran.")
    announced = models.BooleanField(default=False, help_text="A 'diagnosis' webhook event was sent for it (the raise, or a change of fault or band).")
    claimed_at = models.DateTimeField(help_text="When a worker took it; a 'running' claim older than the lease is retaken.")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "diagnoses"
        constraints = [
            models.UniqueConstraint(fields=["alarm"], condition=models.Q(trigger="raise"), name="one_diagnosis_per_alarm_raise"),
            models.UniqueConstraint(fields=["alarm", "stage"], condition=~models.Q(stage=""), name="one_diagnosis_per_alarm_stage"),
        ]
        indexes = [models.Index(fields=["equipment", "created_at"], name="diagnosis_equipment_created")]

    def __str__(self) -> str:
        return f"diagnosis {self.pk} of alarm {self.alarm_id}: {self.fault or self.status}"


class FeedbackVerdict(models.TextChoices):
    CONFIRM = "confirm", "Confirmed"
    CORRECT = "correct", "Corrected"


class DiagnosisFeedback(models.Model):
    """An engineer's verdict on a diagnosis; ``label`` (the confirmed or corrected fault) is a
    training label for the next ``retrain_diagnoser`` run."""

    diagnosis = models.ForeignKey(Diagnosis, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    verdict = models.CharField(max_length=16, choices=FeedbackVerdict.choices)
    corrected_fault = models.CharField(max_length=64, blank=True, help_text="For 'correct': one of the equipment type's classes.")
    label = models.CharField(max_length=64, help_text="The fault this incident really was: the diagnosis's for 'confirm'.")
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    used_in_training_at = models.DateTimeField(null=True, blank=True, db_index=True)
    trained_version = models.ForeignKey(DiagnoserVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="feedback_used")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "diagnosis feedback"

    def __str__(self) -> str:
        return f"{self.verdict} {self.label} on diagnosis {self.diagnosis_id}"


class DiagnoserJobKind(models.TextChoices):
    DEMO = "demo", "Train the demo diagnoser from simulated incidents"
    RETRAIN = "retrain", "Update the active diagnoser from feedback"


class DiagnoserTrainingJob(models.Model):
    """One training run of the diagnoser (demo or retrain from feedback), with its progress; at
    most one queued or running job at a time (partial unique index), so two retrains never race."""

    kind = models.CharField(max_length=16, choices=DiagnoserJobKind.choices)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    lane = models.CharField(max_length=16, default="diagnoser", editable=False, help_text="Constant: the key of the one-open-job index.")
    stage = models.CharField(max_length=64, blank=True)
    percent = models.FloatField(default=0.0)
    epoch = models.PositiveIntegerField(null=True, blank=True)
    epochs = models.PositiveIntegerField(null=True, blank=True)
    loss = models.FloatField(null=True, blank=True)
    feedback_count = models.PositiveIntegerField(default=0)
    replay_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    result = models.ForeignKey(DiagnoserVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["lane"], condition=models.Q(status__in=["queued", "running"]), name="one_open_diagnoser_job"),
        ]

    def __str__(self) -> str:
        return f"diagnoser {self.kind} job {self.pk} ({self.status})"
