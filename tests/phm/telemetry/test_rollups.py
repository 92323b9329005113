"""Per-minute roll-ups: kept exact by ingestion, and long-range charts built from them equal the
raw aggregate (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections

from connectors.records import Reading
from phm.telemetry.models import ReadingRollup
from phm.telemetry.rollups import MINUTE_US, floor_minute_sql, rebuild_rollups
from phm.telemetry.selectors import sensor_series
from phm.telemetry.services import ingest_readings
from phm.telemetry.store import get_store
from tests.conftest import ALL_DATABASES, make_plant

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _rollups(sensor, using):
    return {
        r.minute: (r.samples, round(r.total, 9), r.minimum, r.maximum)
        for r in ReadingRollup.objects.using(using).filter(sensor=sensor)
    }


def _expected_rollups(values_by_second: dict[int, float], origin: datetime) -> dict[int, tuple]:
    origin_minute = int(origin.timestamp()) // 60
    grouped: dict[int, list[float]] = {}
    for second, value in values_by_second.items():
        grouped.setdefault(origin_minute + second // 60, []).append(value)
    return {m: (len(v), round(sum(v), 9), min(v), max(v)) for m, v in grouped.items()}


def test_ingestion_keeps_rollups_exact_through_duplicates_and_late_data(db_alias):
    _, sensors = make_plant(using=db_alias)
    tag = sensors["vibration"].tag
    values = {s: 2.0 + math.sin(s / 7) for s in range(0, 300)}  # five minutes at 1 Hz
    batch = [Reading(tag, T0 + timedelta(seconds=s), v) for s, v in values.items() if s % 2 == 0]
    ingest_readings(readings=batch, using=db_alias)
    ingest_readings(readings=batch[:50], using=db_alias)  # an at-least-once replay
    late = [Reading(tag, T0 + timedelta(seconds=s), v) for s, v in values.items() if s % 2 == 1]
    ingest_readings(readings=late, using=db_alias)  # fills the same minutes later

    assert _rollups(sensors["vibration"], db_alias) == _expected_rollups(values, T0)


def test_sparse_readings_touch_only_their_own_minutes(db_alias):
    _, sensors = make_plant(using=db_alias)
    tag = sensors["pressure"].tag
    ingest_readings(readings=[Reading(tag, T0, 1.0), Reading(tag, T0 + timedelta(days=20, seconds=30), 3.0)], using=db_alias)
    minutes = sorted(_rollups(sensors["pressure"], db_alias))
    assert minutes == [int(T0.timestamp()) // 60, int(T0.timestamp()) // 60 + 20 * 24 * 60]


def test_long_range_series_from_rollups_equals_the_raw_aggregate(db_alias):
    """Start and end fall inside minutes on purpose: the partial edge minutes come from raw rows."""
    _, sensors = make_plant(using=db_alias)
    sensor = sensors["temperature"]
    rng = random.Random(3)
    readings = [Reading(sensor.tag, T0 + timedelta(seconds=5 * i), 40 + rng.gauss(0, 3)) for i in range(12 * 60 * 24 * 2)]
    ingest_readings(readings=readings, using=db_alias)
    start, end = T0 + timedelta(seconds=37), T0 + timedelta(days=2, seconds=-23)

    from_rollups = sensor_series(sensor=sensor, start=start, end=end, max_points=300, using=db_alias)
    bucket_us = int(from_rollups.bucket_seconds * 1e6)
    assert from_rollups.downsampled and bucket_us % MINUTE_US == 0
    start_us = int(start.timestamp() * 1e6)
    origin_us = start_us // MINUTE_US * MINUTE_US
    raw = get_store(db_alias).raw_bucket_sums(sensor.id, start_us, int(end.timestamp() * 1e6), bucket_us, origin_us)
    assert len(from_rollups.points) == len(raw) <= 300
    for point, (bucket, (total, low, high, count)) in zip(from_rollups.points, sorted(raw.items()), strict=True):
        assert point.count == count and point.min == low and point.max == high
        assert point.value == pytest.approx(total / count, rel=1e-12)
        assert point.ts == max(start, datetime.fromtimestamp((origin_us + bucket * bucket_us) / 1e6, tz=UTC))


def test_rebuild_matches_what_ingestion_kept(db_alias):
    _, sensors = make_plant(using=db_alias)
    tag = sensors["vibration"].tag
    ingest_readings(readings=[Reading(tag, T0 + timedelta(seconds=13 * i), float(i % 17)) for i in range(2_000)], using=db_alias)
    kept = _rollups(sensors["vibration"], db_alias)
    written = rebuild_rollups(sensor_ids=[sensors["vibration"].id], using=db_alias)
    assert written == len(kept) and _rollups(sensors["vibration"], db_alias) == kept


@pytest.mark.parametrize("ts_us", [-1, -59_999_999, -60_000_000, -60_000_001, 0, 59_999_999, 60_000_000, 1_772_000_000_123_456])
def test_floor_minute_sql_is_a_true_floor_on_both_engines(db_alias, ts_us):
    with connections[db_alias].cursor() as cursor:
        cursor.execute(f"SELECT {floor_minute_sql('x')} FROM (SELECT CAST(%s AS BIGINT) AS x) AS t", [ts_us])
        assert cursor.fetchone()[0] == ts_us // MINUTE_US


def test_phm_rollups_command_rebuilds_and_names_unknown_tags(db_alias):
    from io import StringIO

    from django.core.management import CommandError, call_command

    _, sensors = make_plant(using=db_alias)
    ingest_readings(readings=[Reading(sensors["vibration"].tag, T0 + timedelta(minutes=i), 1.0) for i in range(5)], using=db_alias)
    ReadingRollup.objects.using(db_alias).all().delete()
    out = StringIO()
    call_command("phm_rollups", "--sensor", "P-101.VIB", "--database", db_alias, stdout=out)
    assert "rebuilt 5 roll-up rows for 1 sensor(s)" in out.getvalue()
    assert ReadingRollup.objects.using(db_alias).count() == 5
    with pytest.raises(CommandError, match="unknown sensor tag\\(s\\): NOPE"):
        call_command("phm_rollups", "--sensor", "NOPE", "--database", db_alias)
