"""Telemetry store: readings, log events, inspection images, quarantine, ingestion jobs.

Readings are keyed by (sensor, ts) — the composite primary key is also the idempotency key, so
a replayed batch can never create a second copy of a value.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from phm.assets.models import Equipment, Sensor
from phm.telemetry.fields import EpochMicrosecondsField


class Quality(models.IntegerChoices):
    BAD = 0, "bad"
    UNCERTAIN = 64, "uncertain"
    GOOD = 192, "good"


class Reading(models.Model):
    pk = models.CompositePrimaryKey("sensor", "ts")
    # No database-level FK constraint: ingestion validates the sensor itself, and PostgreSQL's
    # per-row referential-integrity trigger would cost a large share of bulk-insert speed.
    # Deleting a sensor still removes its readings (Django issues one bulk DELETE). No separate
    # index either: the primary key (sensor, ts) already serves every lookup by sensor.
    sensor = models.ForeignKey(Sensor, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="readings")
    ts = EpochMicrosecondsField()
    value = models.FloatField()
    quality = models.SmallIntegerField(choices=Quality.choices, default=Quality.GOOD)

    def __str__(self) -> str:
        return f"{self.sensor_id}@{self.ts.isoformat()}={self.value}"


class ReadingRollup(models.Model):
    """Per-minute aggregates of one sensor's readings, kept by ingestion in the same transaction.

    Charts over long ranges read these instead of the raw rows: a month of 1 Hz data is 43,200
    roll-up rows instead of 2.6 million readings. Each row is recomputed from the raw readings of
    its minute (never incremented), so replays, duplicates and repairs cannot make it drift.
    """

    pk = models.CompositePrimaryKey("sensor", "minute")
    sensor = models.ForeignKey(Sensor, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="rollups")
    minute = models.BigIntegerField(help_text="floor(ts / 60 s): minutes since the Unix epoch.")
    samples = models.IntegerField()
    total = models.FloatField(help_text="Sum of the values; mean = total / samples.")
    minimum = models.FloatField()
    maximum = models.FloatField()

    def __str__(self) -> str:
        return f"{self.sensor_id}@minute {self.minute}: n={self.samples}"


class ReadingRollupHour(models.Model):
    """Per-hour aggregates, summed from the minute roll-ups by ingestion: charts over months and
    years read 8,760 rows per sensor-year. Kept after the raw rows and the minute tier are dropped
    by retention (``PHM_RETENTION_RAW_DAYS`` and ``PHM_RETENTION_ROLLUP_DAYS`` apply to the finer tiers)."""

    pk = models.CompositePrimaryKey("sensor", "hour")
    sensor = models.ForeignKey(Sensor, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="hour_rollups")
    hour = models.BigIntegerField(help_text="floor(ts / 1 h): hours since the Unix epoch.")
    samples = models.IntegerField()
    total = models.FloatField(help_text="Sum of the values; mean = total / samples.")
    minimum = models.FloatField()
    maximum = models.FloatField()

    def __str__(self) -> str:
        return f"{self.sensor_id}@hour {self.hour}: n={self.samples}"


class LatestReading(models.Model):
    """Last value per sensor, kept by ingestion: the dashboard and staleness checks read this
    instead of scanning the readings table."""

    sensor = models.OneToOneField(Sensor, on_delete=models.CASCADE, primary_key=True, related_name="latest")
    ts = EpochMicrosecondsField()
    value = models.FloatField()
    quality = models.SmallIntegerField(choices=Quality.choices, default=Quality.GOOD)
    received_at = models.DateTimeField(auto_now=True)


class LogTemplate(models.Model):
    """A log template mined by the log connector (e.g. 'Bearing temp <NUM> C above limit <NUM>');
    ``template_id`` is ``<connector name>:<n>`` for log-file connectors."""

    template_id = models.CharField(max_length=64, unique=True)
    template = models.TextField()
    first_seen = models.DateTimeField(auto_now_add=True)
    # Lineage, copied from the connector's miner state at each checkpoint: an id merged into
    # another keeps meaning the lines it was given, which now count with ``merged_into``; a
    # template split out of another names it in ``split_from`` (that one keeps its id and lines).
    merged_into = models.CharField(max_length=64, blank=True, default="", db_index=True, help_text="The template this id was merged into (empty: live).")
    split_from = models.CharField(max_length=64, blank=True, default="", help_text="The template this one was split out of.")

    def __str__(self) -> str:
        return f"{self.template_id}: {self.template}" + (f" (merged into {self.merged_into})" if self.merged_into else "")

    @property
    def current_id(self) -> str:
        """The id whose template now holds this id's lines."""
        return self.merged_into or self.template_id


class LogEvent(models.Model):
    source = models.CharField(max_length=128, help_text="Emitter: equipment tag, controller or host name.")
    equipment = models.ForeignKey(Equipment, null=True, blank=True, on_delete=models.SET_NULL, related_name="log_events")
    ts = EpochMicrosecondsField()
    level = models.CharField(max_length=16)
    message = models.TextField()
    template_id = models.CharField(max_length=64, blank=True, db_index=True)
    parameters = models.JSONField(default=list, blank=True)
    # sha1 of (source, ts, message): at-least-once delivery of the same line collapses here.
    fingerprint = models.CharField(max_length=40, unique=True)

    class Meta:
        indexes = [
            models.Index(fields=["source", "ts"], name="logevent_source_ts"),
            models.Index(fields=["equipment", "ts"], name="logevent_equipment_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.level} {self.message[:60]}"


def image_upload_path(instance: InspectionImage, filename: str) -> str:
    return f"images/{instance.equipment.tag}/{instance.sha256[:2]}/{instance.sha256}{_extension(instance.media_type)}"


def thumbnail_upload_path(instance: InspectionImage, filename: str) -> str:
    return f"thumbnails/{instance.equipment.tag}/{instance.sha256}.jpg"


def _extension(media_type: str) -> str:
    return {"image/jpeg": ".jpg", "image/png": ".png"}.get(media_type, ".bin")


class InspectionImage(models.Model):
    equipment = models.ForeignKey(Equipment, on_delete=models.CASCADE, related_name="images")
    ts = EpochMicrosecondsField()
    file = models.FileField(upload_to=image_upload_path, max_length=300)
    thumbnail = models.FileField(upload_to=thumbnail_upload_path, max_length=300, blank=True)
    media_type = models.CharField(max_length=64)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict, blank=True, help_text="Camera, thermal range, inspector, ...")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["equipment", "sha256"], name="image_unique_per_equipment")]
        indexes = [models.Index(fields=["equipment", "ts"], name="image_equipment_ts")]

    def __str__(self) -> str:
        return f"{self.equipment.tag} image {self.ts.isoformat()}"


class RecordKind(models.TextChoices):
    READING = "reading"
    LOG = "log"
    IMAGE = "image"
    FILE_ROW = "file_row"
    CAPTURE = "capture"  # a vibration waveform capture (phm.condition.captures); payload = metadata, not samples


class QuarantinedRecord(models.Model):
    """A record that ingestion refused, kept with its raw payload and the reason."""

    kind = models.CharField(max_length=16, choices=RecordKind.choices)
    channel = models.CharField(max_length=200, help_text="Where it came from: api, mqtt:<topic>, file:<name>, ...")
    batch_index = models.IntegerField(null=True, blank=True, help_text="Position in its batch or row in its file.")
    payload = models.JSONField()
    error = models.TextField()
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} from {self.channel}: {self.error}"


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class FileIngestJob(models.Model):
    """Background ingestion of a historian file; the worker updates progress as it goes."""

    file = models.FileField(upload_to="uploads/%Y/%m/", max_length=300)
    original_name = models.CharField(max_length=255)
    spec = models.JSONField(default=dict, help_text="connectors.files.FileSpec fields")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    bytes_total = models.BigIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    rows_done = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)
    duplicate = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    @property
    def percent(self) -> float:
        return 100.0 * self.bytes_done / self.bytes_total if self.bytes_total else 0.0

    def __str__(self) -> str:
        return f"{self.original_name} ({self.status})"


class FaultInjection(models.Model):
    """Ground truth: a fault the simulator (or an engineer) injected, to score detectors against."""

    equipment = models.ForeignKey(Equipment, on_delete=models.CASCADE, related_name="fault_injections")
    fault = models.CharField(max_length=64)
    start = models.DateTimeField()
    end = models.DateTimeField()
    severity = models.FloatField(default=1.0)
    sensor = models.CharField(max_length=128, blank=True, help_text="Affected sensor tag, for sensor faults (drift, stuck).")
    source = models.CharField(max_length=32, default="simulator")
    ramp_s = models.FloatField(null=True, blank=True, help_text="Simulator: seconds to full severity (empty: 60 % of the duration).")
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["start"]
        indexes = [models.Index(fields=["equipment", "start"], name="fault_equipment_start")]

    def __str__(self) -> str:
        return f"{self.fault} on {self.equipment.tag} {self.start:%Y-%m-%d %H:%M}"
