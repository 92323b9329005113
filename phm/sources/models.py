"""Connector definitions (what to run), their live status (what they are doing) and the
log-file offsets that let the log connector resume without rereading or missing lines."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models


class ConnectorKind(models.TextChoices):
    MQTT_JSON = "mqtt_json", "MQTT (JSON topics)"
    SPARKPLUG_B = "sparkplug_b", "MQTT Sparkplug B"
    OPCUA = "opcua", "OPC UA"
    MODBUS = "modbus", "Modbus TCP"
    LOGFILE = "logfile", "Log file"
    IMAGE_FOLDER = "image_folder", "Image folder"
    FILE_FOLDER = "file_folder", "Historian file folder"


class ConnectorDefinition(models.Model):
    """One source to run. ``config`` holds the kind's settings (see ``phm.sources.registry``);
    it is validated on save so the supervisor never meets a definition it cannot build."""

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=ConnectorKind.choices)
    config = models.JSONField(default=dict)
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def clean(self) -> None:
        from phm.sources.registry import ConfigError, validate_config

        try:
            validate_config(self.kind, self.config)
        except ConfigError as exc:
            raise ValidationError({"config": str(exc)}) from exc


class ConnectorStatus(models.Model):
    """The latest status the supervisor reported for a connector (one row per connector)."""

    connector = models.OneToOneField(ConnectorDefinition, on_delete=models.CASCADE, related_name="status")
    state = models.CharField(max_length=20, default="idle")
    connected = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    messages = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)
    duplicate = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    reconnects = models.IntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    spooled_batches = models.IntegerField(default=0, help_text="Batches waiting on local disk for the database.")
    supervisor_pid = models.IntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "connector statuses"

    def __str__(self) -> str:
        return f"{self.connector.name}: {self.state}"


class LogFileOffset(models.Model):
    """Where the log connector stopped in a file (see ``connectors.logs.LogOffset``)."""

    key = models.CharField(max_length=1000, unique=True, help_text="Absolute path of the followed file.")
    inode = models.BigIntegerField()
    offset = models.BigIntegerField()
    fingerprint = models.CharField(max_length=64, blank=True)
    fingerprint_len = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.key} @ {self.offset}"


class LogMinerState(models.Model):
    """A log connector's template-miner state (``connectors.logtemplates.TemplateMiner.state``):
    kept so template ids keep their meaning across restarts. One row per connector."""

    key = models.CharField(max_length=200, unique=True, help_text="logfile:<connector name>")
    state = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.key
