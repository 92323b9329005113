"""The ClickHouse readings store, run in-process on chdb-core: the same SQL a server runs."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from connectors.records import Reading
from phm.telemetry.fields import datetime_to_us
from phm.telemetry.models import LatestReading, Reading as ReadingRow
from phm.telemetry.selectors import sensor_series
from phm.telemetry.services import ingest_readings
from phm.telemetry.store import DAY_US, HOUR_US, MINUTE_US, Tier, get_store
from tests.conftest import make_plant
from tests.phm.telemetry.store_helpers import ch_store, clickhouse_settings  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _expected(rows: list[tuple[int, int, float]], unit_us: int) -> dict[tuple[int, int], tuple[int, float, float, float]]:
    """(sensor, unit) -> (samples, total, min, max) of distinct (sensor, ts) rows, first copy wins."""
    first: dict[tuple[int, int], float] = {}
    for sensor_id, ts, value in rows:
        first.setdefault((sensor_id, ts), value)
    grouped: dict[tuple[int, int], list[float]] = {}
    for (sensor_id, ts), value in first.items():
        grouped.setdefault((sensor_id, ts // unit_us), []).append(value)
    return {k: (len(v), round(sum(v), 6), min(v), max(v)) for k, v in grouped.items()}


def _stored(store, tier: Tier, sensor_ids, first_unit: int, end_unit: int) -> dict:
    return {
        (sensor_id, r.unit): (r.samples, round(r.total, 6), r.minimum, r.maximum)
        for sensor_id in sensor_ids for r in store.rollups(tier, sensor_id, first_unit, end_unit)
    }


def test_ingestion_writes_to_clickhouse_not_to_the_django_table(ch_store):
    _, sensors = make_plant()
    tag = sensors["vibration"].tag
    batch = [Reading(tag, T0 + timedelta(seconds=s), float(s)) for s in range(120)]
    first = ingest_readings(readings=batch)
    again = ingest_readings(readings=batch[:30] + batch[:5])  # a replay, with repeats inside it
    assert (first.accepted, first.duplicate) == (120, 0)
    assert (again.accepted, again.duplicate) == (0, 35)
    assert ReadingRow.objects.count() == 0  # readings live in ClickHouse only
    assert len(ch_store.raw_rows([sensors["vibration"].id], 0, 2**62)) == 120
    latest = LatestReading.objects.get(sensor=sensors["vibration"])  # metadata side: the latest value
    assert latest.ts == T0 + timedelta(seconds=119) and latest.value == 119.0


def test_replaying_five_percent_of_batches_twice_keeps_counts_and_rollups_exact(ch_store):
    """At-least-once delivery: 5 % of 200 batches arrive three times, some of them in between
    later batches. Row counts and both roll-up tiers equal a run without replays."""
    _, sensors = make_plant()
    rng = np.random.default_rng(5)
    ids = {s.tag: s.id for s in sensors.values()}
    batches = []
    for b in range(200):  # 200 batches of 30 s x 3 sensors = 5 h of 1 Hz data
        start = T0 + timedelta(seconds=30 * b)
        batches.append([Reading(tag, start + timedelta(seconds=i), float(np.round(rng.normal(5, 2), 3))) for tag in ids for i in range(30)])
    replayed = set(random.Random(1).sample(range(len(batches)), 10))  # 5 %
    accepted = duplicate = 0
    for index, batch in enumerate(batches):
        for _ in range(3 if index in replayed else 1):
            result = ingest_readings(readings=batch)
            accepted, duplicate = accepted + result.accepted, duplicate + result.duplicate
        if index in replayed and index > 0:  # and one replay arriving late, after a newer batch
            duplicate += ingest_readings(readings=batches[index - 1]).duplicate
    rows = [(ids[r.sensor], datetime_to_us(r.ts), r.value) for batch in batches for r in batch]
    assert accepted == len(rows) == 18_000
    assert duplicate == 2 * 30 * 3 * len(replayed) + 30 * 3 * len(replayed - {0})
    stored = ch_store.client.rows(f"SELECT count() FROM {ch_store.db}.readings FINAL")[0][0]
    assert stored == len(rows)
    first_minute, end_minute = datetime_to_us(T0) // MINUTE_US, datetime_to_us(T0) // MINUTE_US + 6 * 60
    assert _stored(ch_store, Tier.MINUTE, ids.values(), first_minute, end_minute) == _expected(rows, MINUTE_US)
    assert _stored(ch_store, Tier.HOUR, ids.values(), first_minute // 60, end_minute // 60 + 1) == _expected(rows, HOUR_US)


def test_racing_writers_that_both_insert_a_batch_still_count_it_once(ch_store):
    """Two writers that both found a batch new both insert it (different tokens: the server keeps
    both copies until a merge); FINAL reads and recomputed roll-ups still count each value once."""
    _, sensors = make_plant()
    sensor_id = sensors["pressure"].id
    ts = np.arange(600, dtype=np.int64) * 1_000_000 + datetime_to_us(T0)
    values = np.round(np.sin(np.arange(600) / 9), 4)
    for copy in range(2):
        columns = {"sensor_id": np.full(600, sensor_id, dtype=np.uint64), "ts": ts, "value": values, "quality": np.full(600, 192, dtype=np.uint8)}
        ch_store.client.insert("readings", columns, dedup_token=f"{copy:016x}")
    assert ch_store.client.rows(f"SELECT count() FROM {ch_store.db}.readings")[0][0] == 1200  # before a merge
    written = ch_store.rebuild_rollups(sensor_ids=[sensor_id])
    rows = [(sensor_id, int(t), float(v)) for t, v in zip(ts, values, strict=True)]
    minute = datetime_to_us(T0) // MINUTE_US
    assert written == 10
    assert _stored(ch_store, Tier.MINUTE, [sensor_id], minute, minute + 10) == _expected(rows, MINUTE_US)
    assert len(ch_store.raw_points(sensor_id, 0, 2**62, limit=10_000)) == 600


def test_long_range_series_from_both_tiers_equals_the_raw_aggregate(ch_store):
    _, sensors = make_plant()
    sensor = sensors["temperature"]
    rng = random.Random(3)
    ingest_readings(readings=[Reading(sensor.tag, T0 + timedelta(seconds=20 * i), round(40 + rng.gauss(0, 3), 3)) for i in range(3 * 24 * 180)])
    start, end = T0 + timedelta(seconds=37), T0 + timedelta(days=3, seconds=-23)
    for max_points, unit in ((300, MINUTE_US), (20, HOUR_US)):
        series = sensor_series(sensor=sensor, start=start, end=end, max_points=max_points)
        bucket_us = int(round(series.bucket_seconds * 1e6))
        assert series.downsampled and bucket_us % unit == 0
        origin_us = datetime_to_us(start) // unit * unit
        raw = ch_store.raw_bucket_sums(sensor.id, datetime_to_us(start), datetime_to_us(end), bucket_us, origin_us)
        assert len(series.points) == len(raw) <= max_points
        for point, (_, (total, low, high, count)) in zip(series.points, sorted(raw.items()), strict=True):
            assert (point.count, point.min, point.max) == (count, low, high)
            assert point.value == pytest.approx(total / count, rel=1e-12)


def test_delete_range_takes_the_rollups_of_its_minutes_down(ch_store):
    _, sensors = make_plant()
    sensor = sensors["vibration"]
    ingest_readings(readings=[Reading(sensor.tag, T0 + timedelta(seconds=s), 1.0) for s in range(0, 600, 2)])  # 10 minutes
    deleted = ch_store.delete_range(sensor_ids=[sensor.id], start_us=datetime_to_us(T0 + timedelta(seconds=90)), end_us=datetime_to_us(T0 + timedelta(minutes=5)))
    assert deleted == 105
    minute = datetime_to_us(T0) // MINUTE_US
    kept = {r.unit - minute: r.samples for r in ch_store.rollups(Tier.MINUTE, sensor.id, minute, minute + 10)}
    assert kept == {0: 30, 1: 15, 5: 30, 6: 30, 7: 30, 8: 30, 9: 30}  # minute 1 keeps 60-89 s; 2-4 are gone
    assert ch_store.rollups(Tier.HOUR, sensor.id, minute // 60, minute // 60 + 1)[0].samples == 195


def test_ttl_drops_raw_rows_past_retention_and_keeps_the_hour_tier(clickhouse_settings):
    _, sensors = make_plant()
    sensor = sensors["pressure"]
    now = datetime.now(tz=UTC).replace(microsecond=0)
    old, recent = now - timedelta(days=10), now - timedelta(hours=1)
    ingest_readings(readings=[Reading(sensor.tag, t + timedelta(seconds=s), 2.0) for t in (old, recent) for s in range(60)])
    store = get_store()
    assert len(store.raw_rows([sensor.id], 0, 2**62)) == 120  # no TTL yet
    clickhouse_settings.PHM_RETENTION_RAW_DAYS = 5  # a new store brings the tables' TTL to the settings
    clickhouse_settings.PHM_RETENTION_ROLLUP_DAYS = 7
    store = get_store()
    for table in ("readings", "rollup_minute"):
        store.client.command(f"OPTIMIZE TABLE {store.db}.{table} FINAL")
    remaining = store.raw_rows([sensor.id], 0, 2**62)
    assert {ts for _, ts, _ in remaining} == {datetime_to_us(recent) + s * 1_000_000 for s in range(60)}
    old_minute = datetime_to_us(old) // MINUTE_US
    assert store.rollups(Tier.MINUTE, sensor.id, old_minute - 1, old_minute + 2) == []
    assert store.rollups(Tier.HOUR, sensor.id, old_minute // 60, old_minute // 60 + 2)[0].samples == 60


def test_apply_retention_drops_whole_day_partitions(ch_store):
    _, sensors = make_plant()
    sensor = sensors["pressure"]
    days = [T0 + timedelta(days=d, hours=12) for d in range(5)]
    ingest_readings(readings=[Reading(sensor.tag, day, 1.0) for day in days])
    report = ch_store.apply_retention(now_us=datetime_to_us(T0 + timedelta(days=4, hours=1)), raw_days=2, rollup_days=0)
    assert len(report.dropped_partitions) == 2
    assert [ts for _, ts, _ in sorted(ch_store.raw_rows([sensor.id], 0, 2**62), key=lambda r: r[1])] == [datetime_to_us(d) for d in days[2:]]
    assert report.raw_cutoff_us == datetime_to_us(T0) + 2 * DAY_US


def test_an_unknown_url_scheme_is_refused_with_the_url(settings):
    from phm.telemetry.store.clickhouse import ClickHouseError, connect

    with pytest.raises(ClickHouseError, match="'tcp://x:9000'.*http, https or chdb"):
        connect("tcp://x:9000")
    with pytest.raises(ClickHouseError, match="database 'a-b' is not a plain identifier"):
        connect("http://localhost:8123/a-b")


def test_chdb_refuses_a_second_directory_in_one_process(ch_store, tmp_path):
    from phm.telemetry.store.clickhouse import ClickHouseError, connect

    with pytest.raises(ClickHouseError, match="already runs on"):
        connect(f"chdb://{tmp_path}?database=other")


def test_the_readings_table_uses_the_measured_codecs(ch_store):
    (query,) = ch_store.client.rows("SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = 'readings'", {"db": ch_store.db})[0]
    assert "`ts` Int64 CODEC(Delta(8), ZSTD(1))" in query and "`value` Float64 CODEC(ZSTD(1))" in query
    assert "ORDER BY (sensor_id, ts)" in query and f"PARTITION BY intDiv(ts, {DAY_US})" in query


def test_a_closed_chdb_engine_reopens_its_directory_with_the_readings_kept(ch_store, clickhouse_settings):
    """close() shuts the embedded engine down (the storage bench restarts it for cold charts):
    the same directory opens again, in this process or another, and nothing written is lost."""
    from phm.telemetry.store import forget_stores
    from phm.telemetry.store.clickhouse import ClickHouseError

    _, sensors = make_plant()
    sensor_id = sensors["vibration"].id
    rows = [(sensor_id, datetime_to_us(T0) + s * 1_000_000, float(s), 192) for s in range(90)]
    assert ch_store.write(rows) == 90
    ch_store.client.close()
    with pytest.raises(ClickHouseError, match="closed"):
        ch_store.client.rows("SELECT 1")
    forget_stores()
    reopened = get_store()
    assert reopened.client is not ch_store.client
    assert sorted(reopened.raw_rows([sensor_id], 0, 2**62)) == [(sensor_id, ts, value) for sensor_id, ts, value, _ in rows]
    assert [(r.samples, r.total) for r in reopened.rollups(Tier.MINUTE, sensor_id, 0, 2**40)] == [(60, float(sum(range(60)))), (30, float(sum(range(60, 90))))]
    assert reopened.write(rows) == 0  # still the idempotency key after the restart
