"""Read queries over telemetry, including server-side downsampling for charts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connections

from phm.assets.models import Sensor
from phm.telemetry.fields import datetime_to_us, us_to_datetime
from phm.telemetry.rollups import MINUTE_US, READING_TABLE, ROLLUP_TABLE

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
    aggregated in the database into at most ``max_points`` equal buckets (min / max / mean / count),
    so a month of 1 Hz data leaves the server as a thousand rows, not 2.6 million."""
    if not 1 <= max_points <= MAX_POINTS_LIMIT:
        raise ValueError(f"max_points must be between 1 and {MAX_POINTS_LIMIT}")
    if end <= start:
        raise ValueError("end must be after start")
    start_us, end_us = datetime_to_us(start), datetime_to_us(end)
    # Reading at most max_points + 1 rows tells cheaply whether the raw data fits.
    raw = _raw_points(sensor.id, start_us, end_us, limit=max_points + 1, using=using)
    if len(raw) <= max_points:
        return Series(sensor.tag, sensor.unit, start, end, False, None, raw)
    bucket_us = max(1, math.ceil((end_us - start_us) / max_points))
    origin_us = start_us
    if bucket_us >= MINUTE_US:
        # Buckets of whole minutes, starting on a minute, are sums of the per-minute roll-ups (a
        # month: 43,200 rows instead of 2.6 million). The first bucket may begin up to a minute
        # before ``start``; it holds only data from ``start`` on.
        origin_us = start_us // MINUTE_US * MINUTE_US
        bucket_us = math.ceil((end_us - origin_us) / max_points / MINUTE_US) * MINUTE_US
        sums = _rollup_bucket_sums(sensor.id, start_us, end_us, bucket_us, origin_us, using=using)
    else:
        sums = _raw_bucket_sums(sensor.id, start_us, end_us, bucket_us, origin_us, using=using)
    points = [
        SeriesPoint(us_to_datetime(max(start_us, origin_us + bucket * bucket_us)), total / count, low, high, count)
        for bucket, (total, low, high, count) in sorted(sums.items())
    ]
    return Series(sensor.tag, sensor.unit, start, end, True, bucket_us / 1e6, points)


_BucketSums = dict[int, tuple[float, float, float, int]]  # bucket -> (sum, min, max, count)


def _raw_points(sensor_id: int, start_us: int, end_us: int, *, limit: int, using: str) -> list[SeriesPoint]:
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT ts, value FROM {READING_TABLE} WHERE sensor_id = %s AND ts >= %s AND ts < %s ORDER BY ts LIMIT %s",
            [sensor_id, start_us, end_us, limit],
        )
        return [SeriesPoint(us_to_datetime(ts), value, value, value, 1) for ts, value in cursor.fetchall()]


def _raw_bucket_sums(sensor_id: int, start_us: int, end_us: int, bucket_us: int, origin_us: int, *, using: str) -> _BucketSums:
    """Raw readings in [start, end) summed per bucket; buckets are counted from ``origin_us``."""
    # Integer division of int64 microseconds is the same on SQLite and PostgreSQL.
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT (ts - %s) / %s AS bucket, SUM(value), MIN(value), MAX(value), COUNT(*) FROM {READING_TABLE} "
            "WHERE sensor_id = %s AND ts >= %s AND ts < %s GROUP BY bucket",
            [origin_us, bucket_us, sensor_id, start_us, end_us],
        )
        return {int(bucket): (float(total), low, high, count) for bucket, total, low, high, count in cursor.fetchall()}


def _rollup_bucket_sums(sensor_id: int, start_us: int, end_us: int, bucket_us: int, origin_us: int, *, using: str) -> _BucketSums:
    """Whole minutes inside [start, end) come from the roll-ups; the partial minutes at either
    edge (under a minute each) from the raw readings, so the result equals the raw aggregate.
    ``origin_us`` and ``bucket_us`` must be whole minutes, so no minute straddles two buckets."""
    first_minute = -(-start_us // MINUTE_US)  # ceil
    end_minute = end_us // MINUTE_US
    if first_minute >= end_minute:
        return _raw_bucket_sums(sensor_id, start_us, end_us, bucket_us, origin_us, using=using)
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT (minute * {MINUTE_US} - %s) / %s AS bucket, SUM(total), MIN(minimum), MAX(maximum), SUM(samples) "
            f"FROM {ROLLUP_TABLE} WHERE sensor_id = %s AND minute >= %s AND minute < %s GROUP BY bucket",
            [origin_us, bucket_us, sensor_id, first_minute, end_minute],
        )
        sums: _BucketSums = {int(b): (float(t), lo, hi, int(n)) for b, t, lo, hi, n in cursor.fetchall()}
    for edge_start, edge_end in ((start_us, first_minute * MINUTE_US), (end_minute * MINUTE_US, end_us)):
        if edge_start < edge_end:
            _merge_into(sums, _raw_bucket_sums(sensor_id, edge_start, edge_end, bucket_us, origin_us, using=using))
    return sums


def _merge_into(sums: _BucketSums, extra: _BucketSums) -> None:
    for bucket, (total, low, high, count) in extra.items():
        if bucket in sums:
            t, lo, hi, n = sums[bucket]
            sums[bucket] = (t + total, min(lo, low), max(hi, high), n + count)
        else:
            sums[bucket] = (total, low, high, count)


def readings_frame(*, sensors: list[Sensor], start: datetime, end: datetime, using: str = "default"):
    """Readings of several sensors as a wide DataFrame (DatetimeIndex, one column per tag): the
    input shape of ``models`` detectors."""
    import pandas as pd

    if not sensors:
        return pd.DataFrame()
    by_id = {s.id: s.tag for s in sensors}
    placeholders = ", ".join(["%s"] * len(by_id))
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT sensor_id, ts, value FROM {READING_TABLE} WHERE sensor_id IN ({placeholders}) AND ts >= %s AND ts < %s",
            [*by_id, datetime_to_us(start), datetime_to_us(end)],
        )
        rows = cursor.fetchall()
    if not rows:
        return pd.DataFrame(columns=[s.tag for s in sensors], index=pd.DatetimeIndex([], tz="UTC"))
    frame = pd.DataFrame(rows, columns=["sensor_id", "ts", "value"])
    frame["ts"] = pd.to_datetime(frame["ts"], unit="us", utc=True)
    wide = frame.pivot_table(index="ts", columns="sensor_id", values="value", aggfunc="mean").sort_index()
    wide.columns = [by_id[c] for c in wide.columns]
    return wide.reindex(columns=[s.tag for s in sensors])


def is_stale(*, sensor: Sensor, latest, now: datetime, factor: float = 5.0) -> bool:
    """True when ``sensor`` has no value (``latest`` is its LatestReading or None) or its last value
    is older than ``factor`` sampling periods; periods under a second count as one second, since
    sources push in batches of about a second or more."""
    return latest is None or now - latest.ts > timedelta(seconds=factor * max(sensor.sampling_period_s, 1))
