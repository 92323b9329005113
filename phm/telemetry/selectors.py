"""Read queries over telemetry, including server-side downsampling for charts."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from phm.assets.models import Sensor
from phm.telemetry.fields import datetime_to_us, us_to_datetime
from phm.telemetry.store import DAY_US, HOUR_US, MINUTE_US, LatestValue, get_store

MAX_POINTS_LIMIT = 20_000


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    ts: datetime
    value: float  # the mean over the bucket when downsampled
    min: float
    max: float
    count: int


@dataclass(frozen=True, slots=True)
class Series:
    sensor: str
    unit: str
    start: datetime
    end: datetime
    downsampled: bool
    bucket_seconds: float | None
    points: list[SeriesPoint]


def sensor_series(
    *, sensor: Sensor, start: datetime, end: datetime, max_points: int = 1000, using: str = "default"
) -> Series:
    """Readings of ``sensor`` in [start, end): raw when they fit in ``max_points``, otherwise
    aggregated by the store into at most ``max_points`` equal buckets (min / max / mean / count),
    so a month of 1 Hz data leaves the server as a thousand rows, not 2.6 million."""
    if not 1 <= max_points <= MAX_POINTS_LIMIT:
        raise ValueError(f"max_points must be between 1 and {MAX_POINTS_LIMIT}")
    if end <= start:
        raise ValueError("end must be after start")
    store = get_store(using)
    start_us, end_us = datetime_to_us(start), datetime_to_us(end)
    # The hour tier's count of the whole hours in the range settles a long range at once (a month:
    # 720 roll-up rows; ClickHouse would otherwise deduplicate a month of raw rows to find the
    # first 601); otherwise reading at most max_points + 1 rows tells whether the raw data fits.
    fits = store.hour_samples(sensor.id, start_us, end_us) <= max_points and start_us >= raw_retention_cutoff_us()
    raw = store.raw_points(sensor.id, start_us, end_us, limit=max_points + 1) if fits else []
    if fits and len(raw) <= max_points:
        points = [SeriesPoint(us_to_datetime(ts), value, value, value, 1) for ts, value in raw]
        return Series(sensor.tag, sensor.unit, start, end, False, None, points)
    origin_us, bucket_us = bucket_grid(start_us, end_us, max_points)
    sums = store.bucket_sums(sensor.id, start_us, end_us, bucket_us, origin_us)
    points = [
        SeriesPoint(us_to_datetime(max(start_us, origin_us + bucket * bucket_us)), total / count, low, high, count)
        for bucket, (total, low, high, count) in sorted(sums.items())
    ]
    return Series(sensor.tag, sensor.unit, start, end, True, bucket_us / 1e6, points)


def raw_retention_cutoff_us(now_us: int | None = None) -> int:
    """Raw readings before this were dropped by retention (``PHM_RETENTION_RAW_DAYS``; the
    earliest int64 when raw rows are kept forever): a chart reaching before it is drawn from the
    roll-ups, which are kept longer, even when the few raw rows left would fit."""
    days = settings.PHM_RETENTION_RAW_DAYS
    if days <= 0:
        return -(2**63)
    now_us = time.time_ns() // 1000 if now_us is None else now_us
    return (now_us // DAY_US - days) * DAY_US


def bucket_grid(start_us: int, end_us: int, max_points: int) -> tuple[int, int]:
    """(origin, bucket width) of at most ``max_points`` buckets over [start, end). Buckets of a
    minute or more are whole minutes starting on a minute, and of an hour or more whole hours
    starting on an hour, so the store sums them from its roll-up tiers (a month: 43,200 minute
    rows instead of 2.6 million readings). The first bucket may then begin before ``start``; it
    holds only data from ``start`` on."""
    bucket_us = max(1, math.ceil((end_us - start_us) / max_points))
    origin_us = start_us
    for unit in (HOUR_US, MINUTE_US):
        if bucket_us >= unit:
            origin_us = start_us // unit * unit
            bucket_us = math.ceil((end_us - origin_us) / max_points / unit) * unit
            break
    return origin_us, bucket_us


def readings_frame(*, sensors: list[Sensor], start: datetime, end: datetime, using: str = "default"):
    """Readings of several sensors as a wide DataFrame (DatetimeIndex, one column per tag): the
    input shape of ``models`` detectors."""
    import pandas as pd

    if not sensors:
        return pd.DataFrame()
    by_id = {s.id: s.tag for s in sensors}
    rows = get_store(using).raw_rows(list(by_id), datetime_to_us(start), datetime_to_us(end))
    if not rows:
        return pd.DataFrame(columns=[s.tag for s in sensors], index=pd.DatetimeIndex([], tz="UTC"))
    frame = pd.DataFrame(rows, columns=["sensor_id", "ts", "value"])
    frame["ts"] = pd.to_datetime(frame["ts"], unit="us", utc=True)
    wide = frame.pivot_table(index="ts", columns="sensor_id", values="value", aggfunc="mean").sort_index()
    wide.columns = [by_id[c] for c in wide.columns]
    return wide.reindex(columns=[s.tag for s in sensors])


def latest_values(*, sensors: list[Sensor], using: str = "default") -> dict[int, LatestValue]:
    """The latest value of each sensor that has one, by sensor id."""
    return get_store(using).latest([s.id for s in sensors])


def newest_ts(*, sensors: list[Sensor], using: str = "default") -> datetime | None:
    """The newest latest-value timestamp over ``sensors`` (None when none has a value)."""
    latest = latest_values(sensors=sensors, using=using)
    return us_to_datetime(max(v.ts_us for v in latest.values())) if latest else None


def first_reading_between(*, sensors: list[Sensor], start: datetime, end: datetime, using: str = "default") -> datetime | None:
    """The oldest reading of any of ``sensors`` in [start, end], or None."""
    first = get_store(using).first_ts([s.id for s in sensors], datetime_to_us(start), datetime_to_us(end))
    return None if first is None else us_to_datetime(first)


def is_stale(*, sensor: Sensor, latest, now: datetime, factor: float = 5.0) -> bool:
    """True when ``sensor`` has no value (``latest`` is its LatestReading or None) or its last value
    is older than ``factor`` sampling periods; periods under a second count as one second, since
    sources push in batches of about a second or more."""
    return latest is None or now - latest.ts > timedelta(seconds=factor * max(sensor.sampling_period_s, 1))
