"""``SpoolingSink``: keep data when the real sink (the database) is down, replay it in order later.

Each batch that the wrapped sink cannot take is appended as one JSON line to an append-only
segment file in the spool directory (``segment-000001.jsonl`` ...). While anything is spooled,
new batches are spooled behind it too, so the order of arrival is kept. Replay sends the lines
oldest first; a small cursor file remembers how far it got, and a fully replayed segment is
deleted. A crash between a write and its cursor update replays that one batch again, which the
idempotent ingestion absorbs as duplicates (at-least-once, never lost).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from connectors.records import ImageRecord, IngestResult, LogRecord, Reading
from connectors.sink import Sink

logger = logging.getLogger(__name__)

SEGMENT_MAX_BYTES = 64 * 1024 * 1024  # start a new segment file past this size
CURSOR_FILE = "cursor.json"


def _reading_to_json(r: Reading) -> list:
    return [r.sensor, r.ts.isoformat(), r.value, int(r.quality)]


def _reading_from_json(item: list) -> Reading:
    return Reading(item[0], datetime.fromisoformat(item[1]), float(item[2]), int(item[3]))


def _log_to_json(r: LogRecord) -> dict:
    return {
        "source": r.source,
        "ts": r.ts.isoformat(),
        "level": r.level,
        "message": r.message,
        "template_id": r.template_id,
        "parameters": r.parameters,
        "template": r.template,
    }


def _log_from_json(item: dict) -> LogRecord:
    return LogRecord(
        item["source"],
        datetime.fromisoformat(item["ts"]),
        item["level"],
        item["message"],
        item.get("template_id"),
        item.get("parameters"),
        item.get("template"),
    )


def _image_to_json(r: ImageRecord) -> dict:
    return {
        "source": r.source,
        "ts": r.ts.isoformat(),
        "content": base64.b64encode(r.content).decode("ascii"),
        "media_type": r.media_type,
        "metadata": r.metadata,
        "filename": r.filename,
    }


def _image_from_json(item: dict) -> ImageRecord:
    return ImageRecord(
        item["source"],
        datetime.fromisoformat(item["ts"]),
        base64.b64decode(item["content"]),
        item["media_type"],
        item.get("metadata") or {},
        item.get("filename"),
    )


_ENCODERS = {"readings": _reading_to_json, "logs": _log_to_json, "images": _image_to_json}
_DECODERS = {"readings": _reading_from_json, "logs": _log_from_json, "images": _image_from_json}
_WRITERS = {"readings": "write_readings", "logs": "write_logs", "images": "write_images"}


class SpoolingSink:
    """A :class:`~connectors.sink.Sink` that never raises for an outage of the wrapped sink.

    ``write_*`` returns the wrapped sink's result when it got through, or
    ``IngestResult(accepted=n)`` when the batch was spooled to disk (it is then stored, durably,
    here). ``replay()`` (called on every write after ``retry_interval`` s, or by a supervisor)
    drains the spool in order.
    """

    def __init__(self, wrapped: Sink, directory: str | Path, *, retry_interval: float = 1.0):
        self.wrapped = wrapped
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.retry_interval = retry_interval
        self._lock = threading.RLock()
        self._next_retry = 0.0
        self.spooled_batches = 0  # batches that went to disk since start
        self.replayed_batches = 0
        self.replay_rejected = 0  # records the wrapped sink refused on replay (logged)
        self.last_error: str | None = None

    # -- Sink protocol ----------------------------------------------------------------------

    def write_readings(self, readings: Sequence[Reading]) -> IngestResult:
        return self._write("readings", readings)

    def write_logs(self, records: Sequence[LogRecord]) -> IngestResult:
        return self._write("logs", records)

    def write_images(self, records: Sequence[ImageRecord]) -> IngestResult:
        return self._write("images", records)

    def write_captures(self, records: Sequence) -> IngestResult:
        """Straight to the wrapped sink, never spooled: a capture comes from a file, which stays in
        its folder when this raises and is read again on the next scan (idempotent)."""
        return self.wrapped.write_captures(records)

    # -- spool ------------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        return bool(self._segments())

    def pending_batches(self) -> int:
        with self._lock:
            cursor = self._read_cursor()
            count = 0
            for segment in self._segments():
                with segment.open("rb") as handle:
                    if segment.name == cursor.get("segment"):
                        handle.seek(cursor.get("offset", 0))
                    count += sum(1 for line in handle if line.endswith(b"\n"))
            return count

    def replay(self) -> bool:
        """Send spooled batches oldest first; True when the spool is empty afterwards, False
        (with ``last_error`` set) when the wrapped sink is still failing."""
        with self._lock:
            try:
                for segment in self._segments():
                    self._replay_segment(segment)
            except Exception as exc:  # still down: keep the rest for the next attempt
                self._failed(exc)
                return False
            return True

    def _write(self, kind: str, records: Sequence) -> IngestResult:
        if not records:
            return IngestResult()
        with self._lock:
            if self.pending and (time.monotonic() < self._next_retry or not self.replay()):
                # Older batches are still waiting: this one must queue behind them.
                self._append(kind, records)
                return IngestResult(accepted=len(records))
            try:
                return getattr(self.wrapped, _WRITERS[kind])(records)
            except Exception as exc:  # the outage can be any driver error: all of them spool
                self._failed(exc)
                self._append(kind, records)
                return IngestResult(accepted=len(records))

    def _failed(self, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._next_retry = time.monotonic() + self.retry_interval
        logger.warning("sink unavailable, spooling to %s: %s", self.directory, self.last_error)

    def _segments(self) -> list[Path]:
        return sorted(self.directory.glob("segment-*.jsonl"))

    def _append(self, kind: str, records: Sequence) -> None:
        segments = self._segments()
        if not segments or segments[-1].stat().st_size > SEGMENT_MAX_BYTES:
            number = int(segments[-1].stem.split("-")[1]) + 1 if segments else 1
            target = self.directory / f"segment-{number:06d}.jsonl"
        else:
            target = segments[-1]
        encode = _ENCODERS[kind]
        line = json.dumps({"kind": kind, "records": [encode(r) for r in records]}, separators=(",", ":")) + "\n"
        with target.open("ab") as handle:
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())  # spooling exists for outages: survive a crash too
        self.spooled_batches += 1

    def _read_cursor(self) -> dict:
        path = self.directory / CURSOR_FILE
        if not path.exists():
            return {}
        return json.loads(path.read_text())

    def _write_cursor(self, segment: str, offset: int) -> None:
        tmp = self.directory / (CURSOR_FILE + ".tmp")
        tmp.write_text(json.dumps({"segment": segment, "offset": offset}))
        os.replace(tmp, self.directory / CURSOR_FILE)

    def _replay_segment(self, segment: Path) -> None:
        cursor = self._read_cursor()
        offset = cursor.get("offset", 0) if cursor.get("segment") == segment.name else 0
        with segment.open("rb") as handle:
            handle.seek(offset)
            while True:
                line = handle.readline()
                if not line:
                    break
                if not line.endswith(b"\n"):
                    break  # a torn last line (crash while appending): it was never acknowledged
                batch = json.loads(line)
                decode = _DECODERS[batch["kind"]]
                records = [decode(item) for item in batch["records"]]
                result = getattr(self.wrapped, _WRITERS[batch["kind"]])(records)  # raises while still down
                self.replay_rejected += result.rejected
                for rejection in result.rejections:
                    logger.warning("replayed record refused: %s (%s)", rejection.error, records[rejection.index])
                offset = handle.tell()
                self._write_cursor(segment.name, offset)
                self.replayed_batches += 1
        segment.unlink()
        (self.directory / CURSOR_FILE).unlink(missing_ok=True)
