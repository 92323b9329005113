"""Daily partitions of the PostgreSQL readings table: converting a populated table, writing
around and across partitions, retention by dropping whole days, and the command's reports."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connections

from connectors.records import Reading
from phm.telemetry.fields import datetime_to_us
from phm.telemetry.models import ReadingRollup, ReadingRollupHour
from phm.telemetry.selectors import sensor_series
from phm.telemetry.services import ingest_readings
from phm.telemetry.store import DAY_US, MINUTE_US, forget_stores, get_store, partitions
from tests.conftest import ALL_DATABASES, make_plant

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)
PG = "postgres"


@pytest.fixture(autouse=True)
def postgresql():
    if PG not in settings.DATABASES:
        pytest.skip(settings.POSTGRES_UNAVAILABLE_REASON or "no PostgreSQL alias configured")
    # The test's transaction rolls the partitions back: no process cache may outlive it.
    forget_stores()
    partitions.forget_known_days()
    yield
    forget_stores()
    partitions.forget_known_days()


def _count(table: str) -> int:
    with connections[PG].cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        return cursor.fetchone()[0]


def _partition(*flags: str, **kwargs) -> str:
    out = StringIO()
    call_command("phm_readings", "partition", "--database", PG, *flags, stdout=out, **kwargs)
    return out.getvalue()


def _partman_available() -> bool:
    return partitions.partman_available(PG)


@pytest.fixture(params=["app", "pg_partman"])
def manager(request) -> str:
    """Who creates the partitions: the app alone, or pg_partman (where the server has it)."""
    if request.param == "pg_partman" and not _partman_available():
        pytest.skip("pg_partman is not installed on this PostgreSQL server")
    return request.param


def _flag(manager: str) -> str:
    return "--partman" if manager == "pg_partman" else "--no-partman"


def _days() -> set[int]:
    return {p.start_us // DAY_US for p in partitions.partitions(PG)}


def test_partition_command_converts_a_populated_table_and_keeps_everything(t0, manager):
    _, sensors = make_plant(using=PG)
    tags = [s.tag for s in sensors.values()]
    ingest_readings(readings=[Reading(tag, t0 + timedelta(seconds=30 * i), float(i % 97)) for tag in tags for i in range(3 * 2880)], using=PG)
    before = sensor_series(sensor=sensors["vibration"], start=t0, end=t0 + timedelta(days=3), max_points=200, using=PG)
    rows = _count("telemetry_reading")

    output = _partition(_flag(manager), ahead_days=2)

    assert partitions.is_partitioned(PG)
    found = partitions.partitions(PG)
    today = time.time_ns() // 1000 // DAY_US
    assert found[0].start_us == datetime_to_us(t0) and found[-1].start_us // DAY_US == today + 2
    assert [p.end_us for p in found[:-1]] == [p.start_us for p in found[1:]]  # contiguous days
    assert f"{rows} rows into {len(found)} daily partitions" in output
    assert ("registered with pg_partman" in output) == (manager == "pg_partman")
    assert (partitions.partman_schema(PG) is not None) == (manager == "pg_partman")
    assert _count("telemetry_reading") == rows == 3 * 3 * 2880
    after = sensor_series(sensor=sensors["vibration"], start=t0, end=t0 + timedelta(days=3), max_points=200, using=PG)
    assert after.points == before.points
    # The primary key is still the idempotency key, on every partition.
    replay = ingest_readings(readings=[Reading(tags[0], t0 + timedelta(days=1, seconds=30 * i), 1.0) for i in range(10)], using=PG)
    assert (replay.accepted, replay.duplicate) == (0, 10)


def test_writes_outside_the_partitions_create_their_day(t0, manager):
    _, sensors = make_plant(using=PG)
    _partition(_flag(manager), ahead_days=0)
    far_back = datetime(2019, 6, 1, 12, tzinfo=UTC)
    result = ingest_readings(readings=[Reading(sensors["pressure"].tag, far_back, 3.0), Reading(sensors["pressure"].tag, t0, 4.0)], using=PG)
    assert result.accepted == 2
    found = {p.start_us // DAY_US: p.name for p in partitions.partitions(PG)}
    far_day, t0_day = datetime_to_us(far_back) // DAY_US, datetime_to_us(t0) // DAY_US
    assert {far_day, t0_day} <= set(found)
    assert found[far_day] == partitions.partition_name(far_day, partman=manager == "pg_partman")
    if manager == "pg_partman":  # partman's own upkeep runs beside the app's without a clash
        out = StringIO()
        call_command("phm_readings", "maintain", "--database", PG, "--ahead-days", "2", stdout=out)
        assert "(pg_partman)" in _status()


def test_retention_drops_old_days_whole_and_keeps_rollups_longer(settings, t0, manager):
    _, sensors = make_plant(using=PG)
    sensor = sensors["temperature"]
    _partition(_flag(manager), ahead_days=1)
    now = datetime.now(tz=UTC).replace(microsecond=0)
    ages = [40, 10, 0]  # days
    ingest_readings(readings=[Reading(sensor.tag, now - timedelta(days=age, minutes=m), 20.0 + m) for age in ages for m in range(120)], using=PG)
    settings.PHM_RETENTION_RAW_DAYS, settings.PHM_RETENTION_ROLLUP_DAYS = 5, 30
    out = StringIO()

    started = time.perf_counter()
    call_command("phm_readings", "maintain", "--database", PG, stdout=out)
    elapsed = time.perf_counter() - started

    assert "dropped" in out.getvalue() and elapsed < 5
    remaining = _days()
    assert min(remaining) >= datetime_to_us(now) // DAY_US - 5
    assert max(remaining) >= datetime_to_us(now) // DAY_US + settings.PHM_PARTITION_AHEAD_DAYS  # created ahead
    assert _count("telemetry_reading") == 120  # only today's rows
    minutes = set(ReadingRollup.objects.using(PG).filter(sensor=sensor).values_list("minute", flat=True))
    ten_days_ago = datetime_to_us(now - timedelta(days=10)) // MINUTE_US
    assert ten_days_ago in minutes  # minute roll-ups outlive the raw rows (30 d)
    assert not any(m < ten_days_ago - 20 * 1440 for m in minutes)  # but not the 40-day-old ones
    hours = ReadingRollupHour.objects.using(PG).filter(sensor=sensor)
    assert sum(h.samples for h in hours) == 360  # the hour tier keeps all three
    # A chart over the dropped days still draws, from the roll-ups.
    old = sensor_series(sensor=sensor, start=now - timedelta(days=11), end=now - timedelta(days=9), max_points=50, using=PG)
    assert sum(p.count for p in old.points) == 120


def test_status_lists_partitions_and_refuses_to_partition_twice(t0):
    _, sensors = make_plant(using=PG)
    ingest_readings(readings=[Reading(sensors["pressure"].tag, t0, 1.0)], using=PG)
    _partition("--no-partman", ahead_days=0)
    status = _status()
    assert "store: sql" in status and f"{partitions.partition_name(datetime_to_us(t0) // DAY_US)}  {t0:%Y-%m-%d}" in status
    with pytest.raises(CommandError, match="partitioned already"):
        _partition(ahead_days=0)


def _status() -> str:
    out = StringIO()
    call_command("phm_readings", "status", "--database", PG, stdout=out)
    return out.getvalue()


def test_partman_requested_but_missing_is_refused(monkeypatch):
    monkeypatch.setattr(partitions, "partman_available", lambda using="default": False)
    with pytest.raises(CommandError, match="pg_partman is not installed"):
        _partition("--partman", ahead_days=0)


def test_partitioning_sqlite_is_refused_with_the_reason():
    with pytest.raises(CommandError, match="need PostgreSQL; database 'default' is sqlite"):
        call_command("phm_readings", "partition", "--database", "default")


def test_delete_range_on_partitions_recomputes_both_tiers(t0):
    _, sensors = make_plant(using=PG)
    sensor = sensors["vibration"]
    _partition("--no-partman", ahead_days=0)
    ingest_readings(readings=[Reading(sensor.tag, t0 + timedelta(seconds=s), 1.0) for s in range(0, 600, 2)], using=PG)
    store = get_store(PG)
    deleted = store.delete_range(sensor_ids=[sensor.id], start_us=datetime_to_us(t0 + timedelta(seconds=90)), end_us=datetime_to_us(t0 + timedelta(minutes=5)))
    assert deleted == 105
    minute = datetime_to_us(t0) // MINUTE_US
    kept = dict(ReadingRollup.objects.using(PG).filter(sensor=sensor).values_list("minute", "samples"))
    assert {m - minute: n for m, n in kept.items()} == {0: 30, 1: 15, 5: 30, 6: 30, 7: 30, 8: 30, 9: 30}
    assert ReadingRollupHour.objects.using(PG).get(sensor=sensor).samples == 195
