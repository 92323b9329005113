"""Read queries over telemetry, including server-side downsampling for charts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connections

from phm.assets.models import Sensor
from phm.telemetry.fields import datetime_to_us, us_to_datetime
from phm.telemetry.services import READING_TABLE

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
    points = _bucket_points(sensor.id, start_us, end_us, bucket_us, using=using)
    return Series(sensor.tag, sensor.unit, start, end, True, bucket_us / 1e6, points)


def _raw_points(sensor_id: int, start_us: int, end_us: int, *, limit: int, using: str) -> list[SeriesPoint]:
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT ts, value FROM {READING_TABLE} WHERE sensor_id = %s AND ts >= %s AND ts < %s ORDER BY ts LIMIT %s",
            [sensor_id, start_us, end_us, limit],
        )
        return [SeriesPoint(us_to_datetime(ts), value, value, value, 1) for ts, value in cursor.fetchall()]


def _bucket_points(sensor_id: int, start_us: int, end_us: int, bucket_us: int, *, using: str) -> list[SeriesPoint]:
    # Integer division of int64 microseconds is the same on SQLite and PostgreSQL.
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT (ts - %s) / %s AS bucket, AVG(value), MIN(value), MAX(value), COUNT(*) FROM {READING_TABLE} "
            "WHERE sensor_id = %s AND ts >= %s AND ts < %s GROUP BY bucket ORDER BY bucket",
            [start_us, bucket_us, sensor_id, start_us, end_us],
        )
        return [
            SeriesPoint(us_to_datetime(start_us + int(bucket) * bucket_us), float(mean), low, high, count)
            for bucket, mean, low, high, count in cursor.fetchall()
        ]


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
