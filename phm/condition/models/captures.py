"""Condition monitoring records: vibration waveform captures (one row per capture, the samples as one
compact blob, never one row per sample)."""

from __future__ import annotations

import numpy as np
from django.db import models

from phm.assets.models import Equipment, MeasurementPoint


class WaveformUnit(models.TextChoices):
    ACCELERATION_G = "g", "Acceleration, g"
    ACCELERATION_SI = "m/s2", "Acceleration, m/s²"
    VELOCITY = "mm/s", "Velocity, mm/s"
    DISPLACEMENT = "um", "Displacement, µm"


class CaptureSource(models.TextChoices):
    UPLOAD = "upload", "Upload"
    API = "api", "API"
    CONNECTOR = "connector", "Historian-file connector"
    FOLDER = "folder", "Watched folder"
    SIMULATOR = "simulator", "Simulator"


class WaveformCapture(models.Model):
    """One time waveform from one measurement point. `samples` holds float32 little-endian values
    (4 bytes a sample: a 1 s capture at 25.6 kHz is 100 kB)."""

    equipment = models.ForeignKey(Equipment, on_delete=models.CASCADE, related_name="waveform_captures")
    point = models.ForeignKey(MeasurementPoint, on_delete=models.CASCADE, related_name="captures")
    captured_at = models.DateTimeField()
    sample_rate_hz = models.FloatField()
    unit = models.CharField(max_length=8, choices=WaveformUnit.choices, default=WaveformUnit.ACCELERATION_G)
    n_samples = models.PositiveIntegerField()
    samples = models.BinaryField(help_text="float32 little-endian samples.")
    speed_rpm = models.FloatField(null=True, blank=True, help_text="Shaft speed at capture, where known.")
    label = models.CharField(max_length=64, blank=True, help_text="Fault class given by an engineer (training data).")
    source = models.CharField(max_length=16, choices=CaptureSource.choices, default=CaptureSource.API)
    origin = models.CharField(max_length=500, blank=True, help_text="File name or client reference it came from.")
    # Computed once at ingestion (captures never change), so the severity trend is one query.
    velocity_rms_mm_s = models.FloatField(null=True, blank=True, help_text="Overall velocity RMS, 10-1,000 Hz (ISO 10816-3).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-captured_at"]
        constraints = [
            # The idempotency key: a capture delivered twice is stored once.
            models.UniqueConstraint(fields=["point", "captured_at"], name="capture_unique_per_point_time"),
            models.CheckConstraint(condition=models.Q(sample_rate_hz__gt=0), name="capture_sample_rate_positive"),
        ]
        indexes = [models.Index(fields=["equipment", "captured_at"], name="capture_equipment_time")]

    def __str__(self) -> str:
        return f"{self.point} {self.captured_at:%Y-%m-%d %H:%M:%S}"

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate_hz

    def waveform(self) -> np.ndarray:
        return np.frombuffer(bytes(self.samples), dtype="<f4")

    @staticmethod
    def pack(values: np.ndarray) -> bytes:
        return np.ascontiguousarray(values, dtype="<f4").tobytes()
