"""The Sink protocol: where connectors push batches of records.

The application implements it over the database (``phm.telemetry.sink.DatabaseSink``);
tests and offline tools use :class:`MemorySink`.

Vibration captures (:class:`connectors.waveforms.WaveformRecord`) go through an optional
``write_captures``: a sink without it cannot take them, and the connector leaves the capture file
where it is (it is its own spool: idempotent ingestion makes a later retry safe).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from connectors.records import ImageRecord, IngestResult, LogRecord, Reading, Rejection


@runtime_checkable
class Sink(Protocol):
    def write_readings(self, readings: Sequence[Reading]) -> IngestResult: ...

    def write_logs(self, records: Sequence[LogRecord]) -> IngestResult: ...

    def write_images(self, records: Sequence[ImageRecord]) -> IngestResult: ...


class MemorySink:
    """Thread-safe in-memory sink with the same idempotency rule as storage:
    readings are unique on (sensor, ts)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.readings: dict[tuple[str, object], Reading] = {}
        self.logs: list[LogRecord] = []
        self.images: list[ImageRecord] = []
        self.captures: dict[tuple[str, str, object], object] = {}

    def write_readings(self, readings: Sequence[Reading]) -> IngestResult:
        result = IngestResult()
        with self._lock:
            for index, reading in enumerate(readings):
                if reading.ts.tzinfo is None:
                    result.rejected += 1
                    result.rejections.append(Rejection(index, "timestamp has no time zone"))
                    continue
                if not math.isfinite(reading.value):
                    result.rejected += 1
                    result.rejections.append(Rejection(index, f"value {reading.value!r} is not finite"))
                    continue
                key = (reading.sensor, reading.ts)
                if key in self.readings:
                    result.duplicate += 1
                else:
                    self.readings[key] = reading
                    result.accepted += 1
        return result

    def write_logs(self, records: Sequence[LogRecord]) -> IngestResult:
        with self._lock:
            self.logs.extend(records)
        return IngestResult(accepted=len(records))

    def write_images(self, records: Sequence[ImageRecord]) -> IngestResult:
        with self._lock:
            self.images.extend(records)
        return IngestResult(accepted=len(records))

    def write_captures(self, records: Sequence) -> IngestResult:
        """Captures, unique on (equipment, point, captured_at) as in storage."""
        result = IngestResult()
        with self._lock:
            for record in records:
                key = (record.equipment, record.point, record.captured_at)
                if key in self.captures:
                    result.duplicate += 1
                else:
                    self.captures[key] = record
                    result.accepted += 1
        return result
