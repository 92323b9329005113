"""Timestamps in message payloads: ISO 8601 text or epoch numbers, always returned time-zone aware."""

from __future__ import annotations

import math
from datetime import datetime, timezone, tzinfo


def parse_timestamp(value: object, *, naive_zone: tzinfo = timezone.utc) -> datetime:
    """ISO 8601 text (``Z`` allowed) or an epoch number in s, ms, us or ns (told apart by
    magnitude, as devices use all four). Naive text is read in ``naive_zone``.
    Raises ValueError saying what was wrong."""
    if isinstance(value, bool):
        raise ValueError(f"timestamp {value!r} is a boolean")
    if isinstance(value, (int, float)):
        return _from_epoch(float(value))
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return _from_epoch(number)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"timestamp {value!r} is not ISO 8601 or an epoch number") from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=naive_zone)
    raise ValueError(f"timestamp {value!r} has type {type(value).__name__}, expected text or a number")


def _from_epoch(number: float) -> datetime:
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"epoch timestamp {number!r} is not a finite non-negative number")
    magnitude = abs(number)
    if magnitude < 1e11:  # seconds until the year 5138
        seconds = number
    elif magnitude < 1e14:
        seconds = number / 1e3
    elif magnitude < 1e17:
        seconds = number / 1e6
    else:
        seconds = number / 1e9
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def from_epoch_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)
