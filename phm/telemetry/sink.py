"""The database implementation of ``connectors.Sink``: connectors push here."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import close_old_connections, connections

from connectors.records import ImageRecord, IngestResult, LogRecord, Reading
from phm.telemetry import services


class DatabaseSink:
    """Writes through the ingestion services. ``channel`` labels quarantined records
    (e.g. ``mqtt:plant/north`` or ``file:export.csv``)."""

    def __init__(self, *, channel: str, using: str = "default") -> None:
        self.channel = channel
        self.using = using

    def _refresh_connection(self) -> None:
        # Connector threads outlive connections the server dropped; but never close a
        # connection in the middle of a caller's transaction.
        if not connections[self.using].in_atomic_block:
            close_old_connections()

    def write_readings(self, readings: Sequence[Reading]) -> IngestResult:
        self._refresh_connection()
        return services.ingest_readings(readings=readings, channel=self.channel, using=self.using)

    def write_logs(self, records: Sequence[LogRecord]) -> IngestResult:
        self._refresh_connection()
        return services.ingest_logs(records=records, channel=self.channel, using=self.using)

    def write_images(self, records: Sequence[ImageRecord]) -> IngestResult:
        self._refresh_connection()
        return services.ingest_images(records=records, channel=self.channel, using=self.using)
