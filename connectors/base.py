"""What every long-running connector shares: status counters, quarantine of malformed input,
delivery to the sink, and reconnect backoff.

A connector's ``run(stop)`` blocks until ``stop`` is set; it reconnects on its own and never lets
one bad payload end the loop. The :class:`~connectors.supervisor.Supervisor` runs several of them
in threads and reads :meth:`Connector.status`.
"""

from __future__ import annotations

import logging
import random
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from connectors.records import ImageRecord, IngestResult, LogRecord, Reading
from connectors.sink import Sink

logger = logging.getLogger(__name__)

QUARANTINE_KEEP = 200  # how many recent quarantined payloads a connector keeps for inspection


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class QuarantinedPayload:
    """A payload (or part of one) that could not become a record, with the reason."""

    at: datetime
    origin: str  # topic, node id, register, file:line ... where it came from
    reason: str
    payload: str  # a printable excerpt of the raw input


@dataclass
class ConnectorStatus:
    """Counters and health of one connector; plain data so the app can store or serve it."""

    name: str
    kind: str
    state: str = "idle"  # idle | connecting | running | reconnecting | stopped | failed
    connected: bool = False
    started_at: datetime | None = None
    last_message_at: datetime | None = None
    messages: int = 0  # payloads received from the source
    accepted: int = 0  # records the sink stored
    duplicate: int = 0  # records the sink already had (at-least-once redelivery)
    rejected: int = 0  # records the sink refused, plus payloads quarantined here
    reconnects: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        return out


class Backoff:
    """Exponential reconnect delay with full jitter, capped; ``reset()`` after a success."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0):
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError(f"bad backoff parameters initial={initial} maximum={maximum} factor={factor}")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        # Jitter keeps many connectors from hammering a server that just came back all at once.
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0

    def wait(self, stop: threading.Event) -> bool:
        """Sleep the next delay; True when ``stop`` was set meanwhile."""
        return stop.wait(self.next_delay())


class Connector(ABC):
    """Base for connectors: subclasses implement :meth:`run` and call the ``deliver_*`` and
    ``quarantine`` helpers, which keep :attr:`status` up to date and are thread-safe."""

    kind: str = "connector"

    def __init__(self, name: str, sink: Sink, *, on_quarantine: Callable[[QuarantinedPayload], None] | None = None):
        self.name = name
        self.sink = sink
        self._lock = threading.Lock()
        self._status = ConnectorStatus(name=name, kind=self.kind)
        self.quarantined: deque[QuarantinedPayload] = deque(maxlen=QUARANTINE_KEEP)
        self._on_quarantine = on_quarantine

    @abstractmethod
    def run(self, stop: threading.Event) -> None:
        """Connect, receive and deliver until ``stop`` is set; reconnect with backoff meanwhile."""

    # -- status ---------------------------------------------------------------------------

    def status(self) -> ConnectorStatus:
        with self._lock:
            snapshot = ConnectorStatus(**{k: getattr(self._status, k) for k in self._status.__dataclass_fields__})
            snapshot.extra = dict(self._status.extra)
            return snapshot

    def set_state(self, state: str, *, connected: bool | None = None) -> None:
        with self._lock:
            self._status.state = state
            if connected is not None:
                self._status.connected = connected
            if state == "running" and self._status.started_at is None:
                self._status.started_at = utcnow()

    def note_reconnect(self, error: BaseException | str) -> None:
        with self._lock:
            self._status.reconnects += 1
        self.note_error(error)
        self.set_state("reconnecting", connected=False)

    def note_error(self, error: BaseException | str) -> None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        logger.warning("connector %s: %s", self.name, text)
        with self._lock:
            self._status.last_error = text
            self._status.last_error_at = utcnow()

    def note_messages(self, count: int = 1, at: datetime | None = None) -> None:
        with self._lock:
            self._status.messages += count
            self._status.last_message_at = at or utcnow()

    def set_extra(self, **values) -> None:
        with self._lock:
            self._status.extra.update(values)

    # -- quarantine and delivery -----------------------------------------------------------

    def quarantine(self, origin: str, reason: str, payload: bytes | str = b"") -> None:
        """Record a payload that could not become records: counted, kept, logged, never silent."""
        if isinstance(payload, bytes):
            excerpt = payload[:300].decode("utf-8", errors="backslashreplace")
        else:
            excerpt = payload[:300]
        item = QuarantinedPayload(at=utcnow(), origin=origin, reason=reason, payload=excerpt)
        with self._lock:
            self._status.rejected += 1
            self.quarantined.append(item)
        logger.info("connector %s quarantined a payload from %s: %s", self.name, origin, reason)
        if self._on_quarantine is not None:
            self._on_quarantine(item)

    def deliver_readings(self, readings: Sequence[Reading], *, origin: str = "") -> IngestResult:
        if not readings:
            return IngestResult()
        return self._account(self.sink.write_readings(readings), readings, origin)

    def deliver_logs(self, records: Sequence[LogRecord], *, origin: str = "") -> IngestResult:
        if not records:
            return IngestResult()
        return self._account(self.sink.write_logs(records), records, origin)

    def deliver_images(self, records: Sequence[ImageRecord], *, origin: str = "") -> IngestResult:
        if not records:
            return IngestResult()
        return self._account(self.sink.write_images(records), records, origin)

    def deliver_captures(self, records: Sequence, *, origin: str = "") -> IngestResult:
        """Vibration captures (``WaveformRecord``); TypeError when the sink cannot take them."""
        if not records:
            return IngestResult()
        writer = getattr(self.sink, "write_captures", None)
        if writer is None:
            raise TypeError(f"sink {type(self.sink).__name__} cannot store vibration captures")
        return self._account(writer(records), records, origin)

    def _account(self, result: IngestResult, records: Sequence, origin: str) -> IngestResult:
        with self._lock:
            self._status.accepted += result.accepted
            self._status.duplicate += result.duplicate
            self._status.rejected += result.rejected
        for rejection in result.rejections:
            record = records[rejection.index] if 0 <= rejection.index < len(records) else None
            item = QuarantinedPayload(utcnow(), origin, f"sink refused: {rejection.error}", repr(record)[:300])
            with self._lock:
                self.quarantined.append(item)
            if self._on_quarantine is not None:
                self._on_quarantine(item)
        return result
