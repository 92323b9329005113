"""Fault classification of vibration captures: a classifier (which equipment it learns from and
watches, its FaultClassifier parameters and alarm threshold), its trained versions (one active),
training jobs with progress rows, and one classification row per capture and version."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from phm.analytics.models import JobStatus, Queue
from phm.assets.models import Equipment
from phm.condition.models.captures import WaveformCapture


class CaptureClassifier(models.Model):
    name = models.SlugField(max_length=64, unique=True, help_text="Alarms come from 'classifier:<name>'.")
    equipment = models.ManyToManyField(
        Equipment, related_name="capture_classifiers",
        help_text="Trained on the labelled captures of these machines; classifies their new captures.",
    )
    params = models.JSONField(
        default=dict, blank=True,
        help_text="FaultClassifier keyword arguments over models.classification.VIBRATION_DEFAULTS.",
    )
    normal_label = models.CharField(max_length=64, default="Normal", help_text="The class that is not a fault (never alarms).")
    alarm_probability = models.FloatField(
        default=0.9, help_text="A fault class at or above this probability raises the alarm (from settings' default at creation).",
    )
    queue = models.CharField(max_length=8, choices=Queue.choices, default=Queue.CPU)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(alarm_probability__gt=0) & models.Q(alarm_probability__lte=1),
                name="capture_classifier_alarm_probability_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def alarm_source(self) -> str:
        return f"classifier:{self.name}"


class ClassifierVersion(models.Model):
    classifier = models.ForeignKey(CaptureClassifier, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    params = models.JSONField(default=dict, help_text="The FaultClassifier arguments it was trained with (defaults included).")
    artifact = models.CharField(max_length=500, help_text="Folder written by FaultClassifier.save, relative to PHM_DATA_ROOT.")
    classes = models.JSONField(default=list)
    metrics = models.JSONField(default=dict, help_text="Captures per class, fit time, epochs, calibration temperature.")
    train_captures = models.PositiveIntegerField()
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["classifier", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["classifier", "version"], name="classifier_version_unique"),
            models.UniqueConstraint(fields=["classifier"], condition=models.Q(is_active=True), name="one_active_version_per_classifier"),
        ]

    def __str__(self) -> str:
        return f"{self.classifier} v{self.version}{' (active)' if self.is_active else ''}"


class ClassifierTrainingJob(models.Model):
    classifier = models.ForeignKey(CaptureClassifier, on_delete=models.CASCADE, related_name="training_jobs")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    queue = models.CharField(max_length=8, choices=Queue.choices, default=Queue.CPU)
    activate = models.BooleanField(default=True, help_text="Make the new version active when training succeeds.")
    percent = models.FloatField(default=0.0)
    epoch = models.PositiveIntegerField(null=True, blank=True)
    epochs = models.PositiveIntegerField(null=True, blank=True)
    loss = models.FloatField(null=True, blank=True)
    eta_s = models.FloatField(null=True, blank=True)
    stage = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    result = models.ForeignKey(ClassifierVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"training {self.classifier} ({self.status})"


class ClassifierTrainingProgress(models.Model):
    """One row per progress report (stage change or epoch)."""

    job = models.ForeignKey(ClassifierTrainingJob, on_delete=models.CASCADE, related_name="progress")
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


class CaptureClassification(models.Model):
    """What one classifier version says about one capture: the top class and every class's probability."""

    capture = models.ForeignKey(WaveformCapture, on_delete=models.CASCADE, related_name="classifications")
    classifier = models.ForeignKey(CaptureClassifier, on_delete=models.CASCADE, related_name="classifications")
    version = models.ForeignKey(ClassifierVersion, on_delete=models.CASCADE, related_name="classifications")
    label = models.CharField(max_length=64)
    probability = models.FloatField()
    probabilities = models.JSONField(help_text="Class -> probability, every class of the version.")
    fault_probability = models.FloatField(help_text="Highest probability of a class other than the classifier's normal label.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-capture__captured_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["capture", "version"], name="capture_classification_unique_per_version")]
        indexes = [models.Index(fields=["classifier", "created_at"], name="capture_class_classifier_time")]

    def __str__(self) -> str:
        return f"{self.capture_id}: {self.label} ({self.probability:.2f})"
