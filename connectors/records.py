"""Records that connectors produce and sinks consume (the contract in DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum


class Quality(IntEnum):
    """Historian quality codes (OPC DA convention: 192 good, 64 uncertain, 0 bad).

    OPC UA status codes and Sparkplug B qualities are mapped onto these three levels by the
    connectors so that every source speaks the same language in storage.
    """

    BAD = 0
    UNCERTAIN = 64
    GOOD = 192


@dataclass(frozen=True, slots=True)
class Reading:
    """One sensor value. ``sensor`` is the sensor tag, ``ts`` a time-zone-aware datetime."""

    sensor: str
    ts: datetime
    value: float
    quality: int = Quality.GOOD


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One controller/application log line. ``source`` names the emitter (equipment tag or host)."""

    source: str
    ts: datetime
    level: str
    message: str
    template_id: str | None = None
    parameters: list[str] | None = None
    template: str | None = None  # the template text of template_id when the record was mined


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One inspection image; ``source`` names the equipment (tag or path), ``content`` the file bytes."""

    source: str
    ts: datetime
    content: bytes
    media_type: str
    metadata: dict = field(default_factory=dict)
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one record of a batch was not stored. ``index`` is its position in the batch."""

    index: int
    error: str


@dataclass(slots=True)
class IngestResult:
    """Outcome of pushing one batch: every record is exactly one of accepted/duplicate/rejected."""

    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.accepted + self.duplicate + self.rejected

    def merge(self, other: IngestResult, *, index_offset: int = 0) -> None:
        """Add ``other`` (a later slice of the same stream) into this result."""
        self.accepted += other.accepted
        self.duplicate += other.duplicate
        self.rejected += other.rejected
        self.rejections.extend(
            Rejection(index=r.index + index_offset, error=r.error) for r in other.rejections
        )

    def as_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "rejections": [{"index": r.index, "error": r.error} for r in self.rejections],
        }
