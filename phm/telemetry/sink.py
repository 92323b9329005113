"""The database implementation of ``connectors.Sink``: connectors push here."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import close_old_connections, connections

from connectors.records import ImageRecord, IngestResult, LogRecord, Reading
from phm.telemetry import services


def close_stale_connection(using: str = "default") -> None:
    """Drop a connection the server closed (connector threads outlive them), but never inside an
    atomic block, where Django would close the very connection the block is using."""
    if not connections[using].in_atomic_block:
        close_old_connections()


class DatabaseSink:
    """Writes through the ingestion services. ``channel`` labels quarantined records
    (e.g. ``mqtt:plant/north`` or ``file:export.csv``)."""

    def __init__(self, *, channel: str, using: str = "default") -> None:
        self.channel = channel
        self.using = using

    def write_readings(self, readings: Sequence[Reading]) -> IngestResult:
        close_stale_connection(self.using)
        return services.ingest_readings(readings=readings, channel=self.channel, using=self.using)

    def write_logs(self, records: Sequence[LogRecord]) -> IngestResult:
        close_stale_connection(self.using)
        return services.ingest_logs(records=records, channel=self.channel, using=self.using)

    def write_images(self, records: Sequence[ImageRecord]) -> IngestResult:
        close_stale_connection(self.using)
        return services.ingest_images(records=records, channel=self.channel, using=self.using)

    def write_captures(self, records: Sequence) -> IngestResult:
        from phm.condition.captures import ingest_captures
        from phm.condition.models import CaptureSource

        close_stale_connection(self.using)
        # The watched-folder connector's channel is "file_folder:<name>"; any other connector is "connector".
        source = CaptureSource.FOLDER if self.channel.startswith("file_folder:") else CaptureSource.CONNECTOR
        return ingest_captures(records=records, source=source, channel=self.channel, using=self.using)
