"""Readings storage at plant scale: PostgreSQL plain, PostgreSQL partitioned by day, ClickHouse.

    python bench/storage.py [--tags 10] [--days 30] [--readings N] [--batch-seconds 600]
                            [--skip-postgres] [--skip-clickhouse] [--repeat 3]
    python bench/storage.py --chart-tags 100 --chart-days 30 --generate-server-side
                            [--postgres-restart CMD] [--skip-postgres] [--skip-clickhouse]

Plant-like synthetic data at 1 Hz (``--readings`` overrides ``--days``: days = readings / tags /
86,400): noisy analog transmitters (3-decimal values with noise), slow temperatures, flat-lined
tags and step tags (set-points, valve positions), in the ratio 3 : 3 : 2 : 2. Every backend gets
the same batches through the readings store boundary (``ReadingStore.write``: roll-ups and latest
values maintained, as ingestion does), and is measured the same way:

* **bytes/reading**: on-disk size of the raw readings + their indexes + both roll-up tiers,
  divided by the readings (PostgreSQL after VACUUM; ClickHouse after OPTIMIZE FINAL);
* **ingest rows/s**: sustained, roll-ups maintained, over the whole load;
* **chart**: the whole stored range (a month at the default size) into at most 600 buckets with
  ``sensor_series`` (a month gives 2-hour buckets, 360 points, summed from the hour tier), for 1
  tag and for every tag: the first query after the load and the best of ``--repeat`` warm ones;
* **replay**: 5 % of the batches written twice more; row counts and roll-up sums must not move;
* **drop a day**: retention of the oldest day (DELETE on the plain table, DROP of a partition on
  the partitioned one, DROP PARTITION on ClickHouse);
* **codecs** (ClickHouse): compressed bytes per value of each data kind under ZSTD(1), ZSTD(3),
  Gorilla and Gorilla+ZSTD(1), which chose the readings table's value codec.

Prints a summary table; writes ``bench/results/storage.json``. The ClickHouse numbers come from
chdb-core, the same engine and storage format as a server, in this process.

**Month charts at plant scale** (``--chart-tags 100 --chart-days 30 --generate-server-side``: 259 M
readings, hours through the Python writer on this machine): each backend gets the month generated
*on the server* with the same value shapes (PostgreSQL ``INSERT … SELECT`` from
``generate_series``, one statement per day, the primary key dropped during the load and built
after it; ClickHouse ``INSERT … SELECT`` from ``numbers()``, one part per day), then the roll-up
tiers from the store's own ``rebuild_rollups``. It measures the month → 600-bucket chart for 1 tag
and for every tag through ``sensor_series``, *cold* and warm: before each cold run the engine is
restarted (PostgreSQL: ``--postgres-restart``, e.g. a private cluster's ``pg_ctl restart``;
chdb: the session is closed and a new process opens the directory) and the page cache of its data
files is evicted (``posix_fadvise(DONTNEED)``; ``fincore`` reports what stayed cached); the chart
then runs in a fresh Python process, first query timed, then the best of ``--repeat`` warm ones.
It also records the load, roll-up rebuild and size on disk, and drop-a-day at that size. Ingest
rate, replay and bytes per reading of the writer path come from the default run, not from this
one. Writes ``bench/results/storage_chart.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _django import make_sensors, open_databases  # noqa: E402

PG_BENCH_DB = "phm_bench_storage"
BUCKETS = 600
DAY_S = 86_400
KIND_PATTERN = ["analog", "analog", "analog", "temperature", "temperature", "temperature", "flat", "flat", "step", "step"]
START = datetime(2026, 1, 1, tzinfo=UTC)
VALUE_CODECS = ["ZSTD(1)", "ZSTD(3)", "Gorilla", "Gorilla, ZSTD(1)"]


# --- data ----------------------------------------------------------------------------------------


class PlantData:
    """Deterministic plant-like values: batch ``b`` is the same rows every time it is made, so a
    replay is an exact re-send."""

    def __init__(self, *, sensor_ids: list[int], days: int, batch_seconds: int, seed: int = 11) -> None:
        self.sensor_ids = sensor_ids
        self.kinds = [KIND_PATTERN[i % len(KIND_PATTERN)] for i in range(len(sensor_ids))]
        self.seconds = days * DAY_S
        self.batch_seconds = batch_seconds
        self.batches = -(-self.seconds // batch_seconds)
        self.start_s = int(START.timestamp())
        rng = np.random.default_rng(seed)
        self.phase = rng.uniform(0, 2 * np.pi, size=(len(sensor_ids), 3))
        self.level = rng.uniform(5, 80, size=len(sensor_ids))
        # Step tags hold one of five positions for half an hour at a time.
        self.steps = rng.integers(0, 5, size=(len(sensor_ids), self.seconds // 1800 + 2)) * 25.0
        self.seed = seed

    def values(self, index: int, t: np.ndarray, batch: int) -> np.ndarray:
        kind, phase, level = self.kinds[index], self.phase[index], self.level[index]
        rng = np.random.default_rng((self.seed, index, batch))
        if kind == "analog":  # flow / pressure / vibration: load cycle plus transmitter noise
            load = np.sin(2 * np.pi * t / DAY_S + phase[0]) + 0.3 * np.sin(2 * np.pi * t / 3_700 + phase[1])
            return np.round(level + 0.1 * level * load + rng.normal(0, 0.01 * level + 0.05, t.size), 3)
        if kind == "temperature":  # slow thermal mass: daily swing, 0.01 degC resolution
            return np.round(level + 4 * np.sin(2 * np.pi * t / DAY_S + phase[0]) + 0.5 * np.sin(2 * np.pi * t / 5_400 + phase[2])
                            + rng.normal(0, 0.02, t.size), 2)
        if kind == "flat":  # a stuck or idle signal
            return np.full(t.size, round(level, 1))
        return self.steps[index][(t - self.start_s) // 1800]

    def batch(self, b: int) -> list[tuple[int, int, float, int]]:
        first = b * self.batch_seconds
        t = np.arange(first, min(first + self.batch_seconds, self.seconds), dtype=np.int64) + self.start_s
        ts_us = (t * 1_000_000).tolist()
        rows: list[tuple[int, int, float, int]] = []
        for index, sensor_id in enumerate(self.sensor_ids):
            rows.extend(zip([sensor_id] * t.size, ts_us, self.values(index, t, b).tolist(), [192] * t.size, strict=True))
        return rows


# --- per-backend measurements ----------------------------------------------------------------------


def ingest(store, data: PlantData) -> tuple[int, float]:
    started = time.perf_counter()
    stored = 0
    for b in range(data.batches):
        stored += store.write(data.batch(b))
        if b % max(1, data.batches // 10) == 0:
            print(f"  {store.name}: batch {b}/{data.batches}, {stored:,} rows, {time.perf_counter() - started:.0f} s", flush=True)
    return stored, time.perf_counter() - started


def sql_totals(alias: str) -> dict:
    from django.db import connections

    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM telemetry_reading")
        (rows,) = cursor.fetchone()
        cursor.execute("SELECT COUNT(*), SUM(samples), SUM(total), MIN(minimum), MAX(maximum) FROM telemetry_readingrollup")
        minute = cursor.fetchone()
        cursor.execute("SELECT COUNT(*), SUM(samples), SUM(total) FROM telemetry_readingrolluphour")
        hour = cursor.fetchone()
    return {"rows": rows, "minute": [minute[0], minute[1], round(minute[2], 3), minute[3], minute[4]], "hour": [hour[0], hour[1], round(hour[2], 3)]}


def clickhouse_totals(store) -> dict:
    db = store.db
    (rows,) = store.client.rows(f"SELECT count() FROM {db}.readings FINAL")[0]
    minute = store.client.rows(f"SELECT count(), sum(samples), sum(total), min(minimum), max(maximum) FROM {db}.rollup_minute FINAL")[0]
    hour = store.client.rows(f"SELECT count(), sum(samples), sum(total) FROM {db}.rollup_hour FINAL")[0]
    return {"rows": rows, "minute": [minute[0], minute[1], round(minute[2], 3), minute[3], minute[4]], "hour": [hour[0], hour[1], round(hour[2], 3)]}


def postgres_bytes(alias: str) -> dict:
    from django.db import connections

    with connections[alias].cursor() as cursor:
        cursor.execute("VACUUM ANALYZE telemetry_reading")
        cursor.execute("VACUUM ANALYZE telemetry_readingrollup")
        cursor.execute("VACUUM ANALYZE telemetry_readingrolluphour")
        # The partitions of a partitioned table, or the table itself.
        cursor.execute("SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0), COALESCE(SUM(pg_indexes_size(c.oid)), 0) FROM pg_class c "
                       "WHERE c.oid = 'telemetry_reading'::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'telemetry_reading'::regclass)")
        raw, raw_indexes = cursor.fetchone()
        cursor.execute("SELECT pg_total_relation_size('telemetry_readingrollup'), pg_total_relation_size('telemetry_readingrolluphour')")
        minute, hour = cursor.fetchone()
    return {"raw": int(raw), "raw_indexes": int(raw_indexes), "rollup_minute": int(minute), "rollup_hour": int(hour)}


def clickhouse_bytes(store) -> dict:
    for table in ("readings", "rollup_minute", "rollup_hour"):
        store.client.command(f"OPTIMIZE TABLE {store.db}.{table} FINAL")
    sizes = dict(store.client.rows(
        "SELECT table, sum(bytes_on_disk) FROM system.parts WHERE database = {db:String} AND active GROUP BY table", {"db": store.db}))
    return {"raw": int(sizes.get("readings", 0)), "rollup_minute": int(sizes.get("rollup_minute", 0)), "rollup_hour": int(sizes.get("rollup_hour", 0))}


def charts(sensors, *, using: str, repeat: int, seconds: int) -> dict:
    from datetime import timedelta

    from phm.telemetry.selectors import sensor_series

    end = START + timedelta(seconds=seconds)

    def one(sensor):
        series = sensor_series(sensor=sensor, start=START, end=end, max_points=BUCKETS, using=using)
        assert series.downsampled and sum(p.count for p in series.points) > 0
        return series

    result = {}
    for label, group in (("1 tag", sensors[:1]), (f"{len(sensors)} tags", sensors)):
        started = time.perf_counter()
        for sensor in group:
            one(sensor)
        first = time.perf_counter() - started
        warm = []
        for _ in range(repeat):
            started = time.perf_counter()
            for sensor in group:
                one(sensor)
            warm.append(time.perf_counter() - started)
        result[label] = {"first_s": round(first, 4), "warm_s": round(min(warm), 4)}
    result["points"] = len(one(sensors[0]).points)
    return result


def replay(store, data: PlantData, totals) -> dict:
    before = totals()
    chosen = random.Random(5).sample(range(data.batches), max(1, data.batches // 20))
    accepted = 0
    started = time.perf_counter()
    for b in chosen:
        for _ in range(2):
            accepted += store.write(data.batch(b))
    seconds = time.perf_counter() - started
    after = totals()
    return {"batches_replayed": len(chosen), "times_each": 2, "accepted_on_replay": accepted, "before": before, "after": after,
            "exact": accepted == 0 and before == after, "seconds": round(seconds, 2)}


def drop_day(store, data: PlantData, days: int, count_rows) -> dict:
    """Retention of the oldest day: raw_days chosen so exactly one day is past it."""
    before = count_rows()
    now_us = (int(START.timestamp()) + days * DAY_S) * 1_000_000
    started = time.perf_counter()
    report = store.apply_retention(now_us=now_us, raw_days=days - 1, rollup_days=0)
    seconds = time.perf_counter() - started
    removed = before - count_rows()
    return {"seconds": round(seconds, 4), "rows_removed": removed, "expected": len(data.sensor_ids) * DAY_S,
            "dropped_partitions": report.dropped_partitions, "deleted_raw_rows": report.deleted_raw_rows}


def codec_table(store, data: PlantData) -> dict:
    """Compressed bytes per value of each kind under each candidate value codec."""
    db, out = store.db, {}
    for kind in dict.fromkeys(data.kinds):
        ids = [sid for sid, k in zip(data.sensor_ids, data.kinds, strict=True) if k == kind]
        out[kind] = {}
        for n, codec in enumerate(VALUE_CODECS):
            table = f"codec_{kind}_{n}"
            store.client.command(f"DROP TABLE IF EXISTS {db}.{table}")
            store.client.command(f"CREATE TABLE {db}.{table} (sensor_id UInt64, ts Int64 CODEC(Delta(8), ZSTD(1)), value Float64 CODEC({codec})) "
                                 "ENGINE = MergeTree ORDER BY (sensor_id, ts) SETTINGS min_bytes_for_wide_part = 0")  # wide parts keep per-column sizes
            store.client.command(f"INSERT INTO {db}.{table} SELECT sensor_id, ts, value FROM {db}.readings WHERE sensor_id IN {{ids:Array(UInt64)}}", {"ids": ids})
            store.client.command(f"OPTIMIZE TABLE {db}.{table} FINAL")
            compressed, rows = store.client.rows(
                "SELECT sum(column_data_compressed_bytes), sum(rows) FROM system.parts_columns "
                "WHERE database = {db:String} AND table = {t:String} AND column = 'value' AND active", {"db": db, "t": table})[0]
            out[kind][codec] = round(compressed / rows, 3)
            store.client.command(f"DROP TABLE {db}.{table}")
    return out


def run_backend(label: str, store, data: PlantData, sensors, *, using: str, args, totals, sizes, count_rows) -> dict:
    print(f"{label}: ingesting {data.seconds * len(data.sensor_ids):,} readings in {data.batches} batches", flush=True)
    stored, ingest_s = ingest(store, data)
    size = sizes()
    total_bytes = sum(v for k, v in size.items() if k != "raw_indexes")
    row = {
        "backend": label, "readings": stored, "ingest_s": round(ingest_s, 1), "ingest_rows_per_s": round(stored / ingest_s),
        "bytes": size, "bytes_per_reading": round(total_bytes / stored, 3),
        "raw_bytes_per_reading": round(size["raw"] / stored, 3),
    }
    print(f"  {label}: {row['ingest_rows_per_s']:,} rows/s, {row['bytes_per_reading']} B/reading", flush=True)
    row["chart"] = charts(sensors, using=using, repeat=args.repeat, seconds=data.seconds)
    row["replay"] = replay(store, data, totals)
    row["drop_day"] = drop_day(store, data, data.seconds // DAY_S, count_rows)
    print(json.dumps(row), flush=True)
    return row


# --- month charts at plant scale: the month generated on the server ----------------------------


def tag_parameters(data: PlantData) -> list[tuple[int, str, float, float, float, float]]:
    """(sensor_id, kind, level, phase0, phase1, phase2) per tag: the same draws as the Python path."""
    return [(sid, kind, float(data.level[i]), *(float(p) for p in data.phase[i]))
            for i, (sid, kind) in enumerate(zip(data.sensor_ids, data.kinds, strict=True))]


def postgres_generate_sql(tags: list[tuple], start_s: int, first_s: int, seconds: int) -> str:
    """One INSERT … SELECT of ``seconds`` of every tag from second ``first_s`` of the month: the
    shapes of :meth:`PlantData.values` (Box-Muller noise from random(), since PostgreSQL 15 has no
    random_normal; step positions from a hash of (sensor, half-hour) instead of a NumPy draw).
    Numbers only are formatted into the statement."""
    rows = ", ".join(f"({sid}::bigint, '{kind}', {level!r}::float8, {p0!r}::float8, {p1!r}::float8, {p2!r}::float8)"
                     for sid, kind, level, p0, p1, p2 in tags)
    normal = "sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())"
    at = f"({start_s} + t)"  # absolute epoch seconds, as the Python values use
    return (
        "INSERT INTO telemetry_reading (sensor_id, ts, value, quality) "
        f"SELECT g.sensor_id, {at} * 1000000, CASE g.kind "
        f"WHEN 'analog' THEN round(1000 * (g.level + 0.1 * g.level * (sin(2 * pi() * {at} / {DAY_S} + g.p0) + 0.3 * sin(2 * pi() * {at} / 3700 + g.p1)) "
        f"+ (0.01 * g.level + 0.05) * {normal})) / 1000 "
        f"WHEN 'temperature' THEN round(100 * (g.level + 4 * sin(2 * pi() * {at} / {DAY_S} + g.p0) + 0.5 * sin(2 * pi() * {at} / 5400 + g.p2) "
        f"+ 0.02 * {normal})) / 100 "
        "WHEN 'flat' THEN round(10 * g.level) / 10 "
        "ELSE mod(abs(hashint8(g.sensor_id * 1000003 + t / 1800)), 5) * 25.0 END, 192 "
        f"FROM generate_series({first_s}::bigint, {first_s + seconds - 1}::bigint) AS t "
        f"CROSS JOIN (VALUES {rows}) AS g(sensor_id, kind, level, p0, p1, p2)"
    )


def clickhouse_generate_sql(db: str, tags: list[tuple], start_s: int, first_s: int, seconds: int) -> str:
    """The same month slice for ClickHouse, from ``numbers()``; one day is one insert block, so one
    part per day partition (no merge left to do)."""
    rows = ", ".join(f"({sid}, '{kind}', {level!r}, {p0!r}, {p1!r}, {p2!r})" for sid, kind, level, p0, p1, p2 in tags)
    at = f"({start_s} + t)"
    return (
        f"INSERT INTO {db}.readings (sensor_id, ts, value, quality) "
        f"SELECT sensor_id, {at} * 1000000, multiIf("
        f"kind = 'analog', round(level + 0.1 * level * (sin(2 * pi() * {at} / {DAY_S} + p0) + 0.3 * sin(2 * pi() * {at} / 3700 + p1)) "
        "+ (0.01 * level + 0.05) * randNormal(0, 1), 3), "
        f"kind = 'temperature', round(level + 4 * sin(2 * pi() * {at} / {DAY_S} + p0) + 0.5 * sin(2 * pi() * {at} / 5400 + p2) "
        "+ 0.02 * randNormal(0, 1), 2), "
        "kind = 'flat', round(level, 1), "
        "toFloat64(cityHash64(sensor_id, intDiv(t, 1800)) % 5) * 25.0), 192 "
        f"FROM (SELECT number AS t FROM numbers({first_s}, {seconds})) AS n "
        f"CROSS JOIN values('sensor_id UInt64, kind String, level Float64, p0 Float64, p1 Float64, p2 Float64', {rows}) AS g "
        "SETTINGS min_insert_block_size_rows = 100000000, min_insert_block_size_bytes = 0, max_insert_block_size = 100000000"
    )


def generate_postgres(alias: str, data: PlantData, *, partitioned: bool) -> dict:
    """The month into ``telemetry_reading`` day by day, the primary key built after the load (a
    bulk load's usual order: one sorted index build instead of 259 M index inserts), then the
    roll-ups from the store's own rebuild."""
    from django.db import connections, transaction

    from phm.telemetry.store import get_store, partitions

    tags, start_s, days = tag_parameters(data), data.start_s, data.seconds // DAY_S
    out: dict = {}
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'telemetry_reading'::regclass AND contype = 'p'")
        (pk_name,) = cursor.fetchone()
        cursor.execute(f"ALTER TABLE telemetry_reading DROP CONSTRAINT {pk_name}")
        cursor.execute("SELECT setseed(0.11)")
        started = time.perf_counter()
        for day in range(days):
            if partitioned:
                partitions.ensure_for_range((start_s + day * DAY_S) * 1_000_000, (start_s + (day + 1) * DAY_S - 1) * 1_000_000, using=alias)
            cursor.execute(postgres_generate_sql(tags, start_s, day * DAY_S, DAY_S))
            print(f"  generated day {day + 1}/{days}: {time.perf_counter() - started:.0f} s", flush=True)
        out["generate_s"] = round(time.perf_counter() - started, 1)
        cursor.execute("SET maintenance_work_mem = '1GB'")
        started = time.perf_counter()
        cursor.execute(f"ALTER TABLE telemetry_reading ADD CONSTRAINT {pk_name} PRIMARY KEY (sensor_id, ts)")
        out["primary_key_s"] = round(time.perf_counter() - started, 1)
        print(f"  primary key: {out['primary_key_s']} s", flush=True)
        cursor.execute("SET work_mem = '256MB'")  # the rebuild's GROUP BY of 4.3 M minutes in memory
    started = time.perf_counter()
    with transaction.atomic(using=alias):
        out["rollup_minutes"] = get_store(alias).rebuild_rollups()
    out["rebuild_rollups_s"] = round(time.perf_counter() - started, 1)
    print(f"  roll-ups rebuilt: {out['rollup_minutes']:,} minute rows in {out['rebuild_rollups_s']} s", flush=True)
    with connections[alias].cursor() as cursor:
        cursor.execute("RESET work_mem")
        cursor.execute("ANALYZE telemetry_reading")
        cursor.execute("VACUUM ANALYZE telemetry_readingrollup")
        cursor.execute("VACUUM ANALYZE telemetry_readingrolluphour")
        cursor.execute("CHECKPOINT")  # every page written before the restart: a cold start reads, not recovers
    return out


def generate_clickhouse(store, data: PlantData) -> dict:
    tags, start_s, days = tag_parameters(data), data.start_s, data.seconds // DAY_S
    out: dict = {}
    started = time.perf_counter()
    for day in range(days):
        store.client.command(clickhouse_generate_sql(store.db, tags, start_s, day * DAY_S, DAY_S))
        print(f"  generated day {day + 1}/{days}: {time.perf_counter() - started:.0f} s", flush=True)
    out["generate_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    out["rollup_minutes"] = store.rebuild_rollups()
    out["rebuild_rollups_s"] = round(time.perf_counter() - started, 1)
    print(f"  roll-ups rebuilt: {out['rollup_minutes']:,} minute rows in {out['rebuild_rollups_s']} s", flush=True)
    for table in ("rollup_minute", "rollup_hour"):  # the rebuild's deletes and inserts merged away
        store.client.command(f"OPTIMIZE TABLE {store.db}.{table} FINAL")
    return out


def page_cache_bytes(files: list[str]) -> int | None:
    """Bytes of ``files`` in the OS page cache (util-linux ``fincore``), None without it."""
    total = 0
    for offset in range(0, len(files), 500):
        try:
            done = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES", *files[offset:offset + 500]],
                                  capture_output=True, text=True, check=False)
        except FileNotFoundError:
            return None
        total += sum(int(line) for line in done.stdout.split() if line.isdigit())
    return total


def evict_page_cache(directory: Path) -> dict:
    """Drop ``directory``'s files from the OS page cache (written back first), as far as a process
    may without /proc/sys/vm/drop_caches: POSIX_FADV_DONTNEED on every file."""
    files = [str(p) for p in directory.rglob("*") if p.is_file()]
    before = page_cache_bytes(files)
    os.sync()
    for name in files:
        try:
            fd = os.open(name, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return {"files": len(files), "cached_bytes_before": before, "cached_bytes_after": page_cache_bytes(files)}


def chart_worker(spec: dict) -> int:
    """In a fresh process (the cold run): charts of ``spec['sensor_ids']``, the first timed, then
    the best of ``repeat`` warm ones; prints one JSON line."""
    from _django import configure_django

    configure_django(Path(spec["sqlite"]), spec.get("postgres_database"))
    from django.db import connections
    from django.test import override_settings

    from phm.assets.models import Sensor

    using = spec["using"]
    overrides = {"PHM_READINGS_STORE": "clickhouse", "PHM_CLICKHOUSE_URL": spec["clickhouse_url"]} if spec.get("clickhouse_url") else {}
    with override_settings(**overrides):
        sensors = list(Sensor.objects.using(using).filter(id__in=spec["sensor_ids"]).order_by("id"))
        from phm.telemetry.store import get_store

        get_store(using)  # connect (and, for chdb, open the directory) before the clock starts
        if using != "default":
            connections[using].ensure_connection()
        timing = time_charts(sensors, using=using, repeat=spec["repeat"], seconds=spec["seconds"])
    print("RESULT " + json.dumps(timing), flush=True)
    return 0


def time_charts(sensors, *, using: str, repeat: int, seconds: int) -> dict:
    from datetime import timedelta

    from phm.telemetry.selectors import sensor_series

    end = START + timedelta(seconds=seconds)
    points = 0

    def one_pass() -> float:
        nonlocal points
        started = time.perf_counter()
        for sensor in sensors:
            series = sensor_series(sensor=sensor, start=START, end=end, max_points=BUCKETS, using=using)
            assert series.downsampled and sum(p.count for p in series.points) == seconds, "the chart lost readings"
            points = len(series.points)
        return time.perf_counter() - started

    first = one_pass()
    warm = [one_pass() for _ in range(repeat)]
    return {"first_s": round(first, 4), "warm_s": round(min(warm), 4), "points": points, "tags": len(sensors)}


def cold_chart(spec: dict, *, make_cold) -> dict:
    """Make the engine cold (``make_cold`` returns what it did), then chart in a new process."""
    report = make_cold()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--chart-worker", json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"chart worker failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):]) | {"cold": report}


def postgres_data_directory(alias: str) -> Path | None:
    from django.db import connections

    with connections[alias].cursor() as cursor:
        cursor.execute("SHOW data_directory")
        path = Path(cursor.fetchone()[0])
    return path if path.is_dir() and os.access(path, os.R_OK) else None


def chart_scale(args, workdir: Path, with_pg: bool) -> list[dict]:
    from django.db import connections
    from django.test import override_settings

    from phm.assets.models import Sensor
    from phm.telemetry.store import forget_stores, get_store, partitions

    names = [f"{KIND_PATTERN[i % len(KIND_PATTERN)][:4].upper()}{i}" for i in range(args.chart_tags)]
    seconds = args.chart_days * DAY_S
    results = []
    base_spec = {"sqlite": str(workdir / "bench.sqlite3"), "repeat": args.repeat, "seconds": seconds}

    def measure(label: str, spec: dict, make_cold) -> dict:
        ids = spec["sensor_ids"]
        chart = {}
        for group, chosen in (("1 tag", ids[:1]), (f"{len(ids)} tags", ids)):
            chart[group] = cold_chart(spec | {"sensor_ids": chosen}, make_cold=make_cold)
            print(f"  {label} {group}: cold {chart[group]['first_s']:.3f} s, warm {chart[group]['warm_s']:.3f} s "
                  f"(cached after eviction: {chart[group]['cold'].get('cached_bytes_after')})", flush=True)
        return chart

    from django.core.management import call_command

    # The default (SQLite) database first: a data migration that forgets .using() reads the
    # default database while another alias migrates (sources.0003 does).
    call_command("migrate", database="default", verbosity=0)
    if with_pg:
        alias = "postgres"
        call_command("migrate", database=alias, verbosity=0)
        tags = make_sensors(alias, site_code="bench", equipment_tag="U-1", names=names)
        sensors = list(Sensor.objects.using(alias).filter(tag__in=tags).order_by("id"))
        data = PlantData(sensor_ids=[s.id for s in sensors], days=args.chart_days, batch_seconds=DAY_S)
        pg_dir = postgres_data_directory(alias)

        def make_pg_cold() -> dict:
            connections.close_all()
            report: dict = {"restart": None}
            if args.postgres_restart:
                # No pipes: a server started by the command would hold them open.
                subprocess.run(shlex.split(args.postgres_restart), check=True, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
                report["restart"] = args.postgres_restart
            if pg_dir is not None:
                report |= evict_page_cache(pg_dir)
            return report

        for label in ("postgresql", "postgresql-partitioned"):
            if label not in args.backends:
                continue
            print(f"{label}: generating {seconds * len(sensors):,} readings on the server", flush=True)
            with connections[alias].cursor() as cursor:
                cursor.execute("TRUNCATE telemetry_reading, telemetry_readingrollup, telemetry_readingrolluphour, telemetry_latestreading")
            if label.endswith("partitioned"):
                partitions.partition_existing_table(using=alias, ahead_days=0, now_us=int(START.timestamp()) * 1_000_000)
            forget_stores()
            row = {"backend": label, "readings": seconds * len(sensors)} | generate_postgres(alias, data, partitioned=label.endswith("partitioned"))
            row["bytes"] = postgres_sizes(alias)
            row["chart"] = measure(label, base_spec | {"using": alias, "postgres_database": PG_BENCH_DB, "sensor_ids": data.sensor_ids}, make_pg_cold)
            forget_stores()
            partitions.forget_known_days()

            def count_pg() -> int:
                with connections[alias].cursor() as cursor:
                    cursor.execute("SELECT COUNT(*) FROM telemetry_reading")
                    return cursor.fetchone()[0]

            row["drop_day"] = drop_day(get_store(alias), data, args.chart_days, count_pg)
            print(json.dumps(row), flush=True)
            results.append(row)
            with connections[alias].cursor() as cursor:  # free the disk before the next backend (every partition too)
                cursor.execute("TRUNCATE telemetry_reading, telemetry_readingrollup, telemetry_readingrolluphour")
    if "clickhouse" in args.backends:
        tags = make_sensors("default", site_code="bench", equipment_tag="U-1", names=names)
        sensors = list(Sensor.objects.using("default").filter(tag__in=tags).order_by("id"))
        data = PlantData(sensor_ids=[s.id for s in sensors], days=args.chart_days, batch_seconds=DAY_S)
        chdb_dir = workdir / "chdb"
        url = f"chdb://{chdb_dir}?database=bench"
        with override_settings(PHM_READINGS_STORE="clickhouse", PHM_CLICKHOUSE_URL=url):
            forget_stores()
            store = get_store("default")
            print(f"clickhouse: generating {seconds * len(sensors):,} readings on the server", flush=True)
            row = {"backend": "clickhouse", "readings": seconds * len(sensors)} | generate_clickhouse(store, data)
            row["bytes"] = clickhouse_sizes(store)

            def make_ch_cold() -> dict:
                forget_stores()
                store.client.close()  # the engine shut down; the worker process opens the directory anew
                return {"restart": "chdb session closed, new process"} | evict_page_cache(chdb_dir)

            row["chart"] = measure("clickhouse", base_spec | {"using": "default", "clickhouse_url": url, "sensor_ids": data.sensor_ids},
                                   make_ch_cold)
            forget_stores()
            store = get_store("default")  # this process opens the directory again

            def count_ch() -> int:
                return store.client.rows(f"SELECT count() FROM {store.db}.readings")[0][0]

            row["drop_day"] = drop_day(store, data, args.chart_days, count_ch)
            print(json.dumps(row), flush=True)
            results.append(row)
            store.drop_everything()
    return results


def postgres_sizes(alias: str) -> dict:
    """Sizes without VACUUM of the raw table (a fresh load has no dead rows; the roll-ups were
    vacuumed after their rebuild)."""
    from django.db import connections

    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0), COALESCE(SUM(pg_indexes_size(c.oid)), 0) FROM pg_class c "
                       "WHERE c.oid = 'telemetry_reading'::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'telemetry_reading'::regclass)")
        raw, raw_indexes = cursor.fetchone()
        cursor.execute("SELECT pg_total_relation_size('telemetry_readingrollup'), pg_total_relation_size('telemetry_readingrolluphour')")
        minute, hour = cursor.fetchone()
    return {"raw": int(raw), "raw_indexes": int(raw_indexes), "rollup_minute": int(minute), "rollup_hour": int(hour)}


def clickhouse_sizes(store) -> dict:
    sizes = dict(store.client.rows(
        "SELECT table, sum(bytes_on_disk) FROM system.parts WHERE database = {db:String} AND active GROUP BY table", {"db": store.db}))
    parts = store.client.rows("SELECT count() FROM system.parts WHERE database = {db:String} AND table = 'readings' AND active", {"db": store.db})[0][0]
    return {"raw": int(sizes.get("readings", 0)), "rollup_minute": int(sizes.get("rollup_minute", 0)),
            "rollup_hour": int(sizes.get("rollup_hour", 0)), "raw_parts": int(parts)}


def summarize_chart_scale(results: list[dict], *, tags: int, days: int) -> None:
    print(f"\nmonth -> {BUCKETS} buckets, {tags} tags x {days} days at 1 Hz, generated on the server")
    print(f"{'backend':<24}{'readings':>13}{'generate s':>11}{'roll-ups s':>11}{'GB on disk':>11}"
          f"{'1 tag cold/warm s':>20}{f'{tags} tags cold/warm s':>24}{'drop day s':>11}")
    for r in results:
        one, every = r["chart"]["1 tag"], r["chart"][f"{tags} tags"]
        gb = sum(v for k, v in r["bytes"].items() if k not in ("raw_indexes", "raw_parts")) / 1e9
        print(f"{r['backend']:<24}{r['readings']:>13,}{r['generate_s']:>11.0f}{r['rebuild_rollups_s']:>11.0f}{gb:>11.2f}"
              f"{one['first_s']:>11.3f}/{one['warm_s']:<8.3f}{every['first_s']:>15.3f}/{every['warm_s']:<8.3f}{r['drop_day']['seconds']:>11.3f}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--chart-worker"]:
        return chart_worker(json.loads(argv[1]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--readings", type=int, default=None, help="total readings (sets --days = readings / tags / 86400, at least 2)")
    parser.add_argument("--batch-seconds", type=int, default=600, help="seconds of every tag per write batch")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-clickhouse", action="store_true")
    parser.add_argument("--chart-tags", type=int, default=0, help="measure month charts at this many tags instead (needs --generate-server-side)")
    parser.add_argument("--chart-days", type=int, default=30)
    parser.add_argument("--generate-server-side", action="store_true", help="generate the chart month with INSERT ... SELECT on each engine")
    parser.add_argument("--postgres-restart", default="", help="command that restarts the PostgreSQL server before each cold chart")
    parser.add_argument("--backends", default="postgresql,postgresql-partitioned,clickhouse", help="chart mode: which backends, comma-separated")
    args = parser.parse_args(argv)
    days = max(2, round(args.readings / args.tags / DAY_S)) if args.readings else args.days
    if args.chart_tags and not args.generate_server_side:
        parser.error("--chart-tags needs --generate-server-side (259 M readings through the Python writer take hours)")
    if args.chart_days < 2:
        parser.error("--chart-days must be at least 2 (one day is dropped at the end)")
    args.backends = [b for b in args.backends.split(",") if b]
    if args.skip_clickhouse:
        args.backends = [b for b in args.backends if b != "clickhouse"]
    workdir = Path(tempfile.mkdtemp(prefix="phm-bench-storage-"))
    with_pg = open_databases(workdir, postgres_database=PG_BENCH_DB, skip_postgres=args.skip_postgres)
    if args.chart_tags:
        results = chart_scale(args, workdir, with_pg and any(b.startswith("postgresql") for b in args.backends))
        summarize_chart_scale(results, tags=args.chart_tags, days=args.chart_days)
        out = ROOT / "bench" / "results" / "storage_chart.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(), "tags": args.chart_tags, "days": args.chart_days,
                                   "generated": "server-side", "postgres_restart": args.postgres_restart,
                                   "load_average": os.getloadavg(), "results": results}, indent=2))
        print(f"wrote {out}")
        return 0

    from django.core.management import call_command
    from django.db import connections
    from django.test import override_settings

    from phm.assets.models import Sensor
    from phm.telemetry.store import forget_stores, get_store, partitions

    names = [f"{KIND_PATTERN[i % len(KIND_PATTERN)][:4].upper()}{i}" for i in range(args.tags)]
    results = []
    call_command("migrate", database="default", verbosity=0)  # first: see chart_scale
    if with_pg:
        alias = "postgres"
        call_command("migrate", database=alias, verbosity=0)
        tags = make_sensors(alias, site_code="bench", equipment_tag="U-1", names=names)
        sensors = list(Sensor.objects.using(alias).filter(tag__in=tags).order_by("id"))
        data = PlantData(sensor_ids=[s.id for s in sensors], days=days, batch_seconds=args.batch_seconds)

        def count_pg() -> int:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM telemetry_reading")
                return cursor.fetchone()[0]

        for label in ("postgresql", "postgresql-partitioned"):
            with connections[alias].cursor() as cursor:
                cursor.execute("TRUNCATE telemetry_reading, telemetry_readingrollup, telemetry_readingrolluphour, telemetry_latestreading")
            if label.endswith("partitioned"):
                partitions.partition_existing_table(using=alias, ahead_days=0, now_us=int(START.timestamp()) * 1_000_000)
            forget_stores()
            store = get_store(alias)
            results.append(run_backend(label, store, data, sensors, using=alias, args=args, totals=lambda: sql_totals(alias),
                                       sizes=lambda: postgres_bytes(alias), count_rows=count_pg))
            with connections[alias].cursor() as cursor:  # free the disk before the next backend
                cursor.execute("TRUNCATE telemetry_reading, telemetry_readingrollup, telemetry_readingrolluphour")
    if not args.skip_clickhouse:
        tags = make_sensors("default", site_code="bench", equipment_tag="U-1", names=names)
        sensors = list(Sensor.objects.using("default").filter(tag__in=tags).order_by("id"))
        data = PlantData(sensor_ids=[s.id for s in sensors], days=days, batch_seconds=args.batch_seconds)
        url = f"chdb://{workdir / 'chdb'}?database=bench"
        with override_settings(PHM_READINGS_STORE="clickhouse", PHM_CLICKHOUSE_URL=url):
            forget_stores()
            store = get_store("default")

            def count_ch() -> int:
                return store.client.rows(f"SELECT count() FROM {store.db}.readings")[0][0]

            row = run_backend("clickhouse", store, data, sensors, using="default", args=args, totals=lambda: clickhouse_totals(store),
                              sizes=lambda: clickhouse_bytes(store), count_rows=count_ch)
            row["value_codec_bytes_per_value"] = codec_table(store, data)
            results.append(row)
            store.drop_everything()
    summarize(results, days=days, tags=args.tags)
    out = ROOT / "bench" / "results" / "storage.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(), "tags": args.tags, "days": days, "batch_seconds": args.batch_seconds,
                               "load_average": os.getloadavg(), "results": results,
                               "sizing": [{"tags": t, "rate_hz": r, "readings_per_day": n, "per_backend": c} for t, r, n, c in sizing(results)]},
                              indent=2))
    print(f"wrote {out}")
    return 0


SIZING = [(1_000, 1.0), (10_000, 1.0), (100_000, 1.0), (100_000, 0.1)]


def sizing(results: list[dict]) -> list[tuple[int, float, int, list[dict]]]:
    """Disk per day and writer processes (one core each, at the sustained ingest rate measured
    here, roll-ups maintained) for plant sizes, per backend."""
    table = []
    for tags_n, rate in SIZING:
        readings_day = int(tags_n * rate * DAY_S)
        cells = [{"backend": r["backend"], "gb_per_day": readings_day * r["bytes_per_reading"] / 1e9,
                  "writers": max(1, -(-int(tags_n * rate) // r["ingest_rows_per_s"]))} for r in results]
        table.append((tags_n, rate, readings_day, cells))
    return table


def summarize(results: list[dict], *, days: int, tags: int) -> None:
    print(f"\n{tags} tags x {days} days at 1 Hz")
    head = f"{'backend':<24}{'readings':>12}{'B/reading':>10}{'raw B/rd':>9}{'ingest/s':>10}{'1 tag first/warm s':>20}{f'{tags} tags first/warm s':>22}{'drop day s':>11}{'replay':>8}"
    print(head)
    for r in results:
        one, every = r["chart"]["1 tag"], r["chart"][f"{tags} tags"]
        print(f"{r['backend']:<24}{r['readings']:>12,}{r['bytes_per_reading']:>10.2f}{r['raw_bytes_per_reading']:>9.2f}{r['ingest_rows_per_s']:>10,}"
              f"{one['first_s']:>11.3f}/{one['warm_s']:<8.3f}{every['first_s']:>13.3f}/{every['warm_s']:<8.3f}"
              f"{r['drop_day']['seconds']:>11.3f}{'exact' if r['replay']['exact'] else 'DRIFT':>8}")
    plain = next((r for r in results if r["backend"] == "postgresql"), None)
    ch = next((r for r in results if r["backend"] == "clickhouse"), None)
    if plain and ch:
        print(f"plain PostgreSQL / ClickHouse bytes per reading: {plain['bytes_per_reading'] / ch['bytes_per_reading']:.1f}x")
    print("\nsizing (from these measurements): disk per day incl. indexes and roll-ups; writer processes at the measured rows/s each")
    print(f"{'tags':>8}{'rate Hz':>8}{'readings/day':>15}" + "".join(f"{r['backend'] + ' GB/day':>30}{'writers':>8}" for r in results))
    for tags_n, rate, readings_day, cells in sizing(results):
        print(f"{tags_n:>8,}{rate:>8g}{readings_day:>15,}" + "".join(f"{c['gb_per_day']:>30,.1f}{c['writers']:>8}" for c in cells))
    if ch:
        print("ClickHouse value codecs, compressed bytes per value:")
        for kind, codecs in ch["value_codec_bytes_per_value"].items():
            print(f"  {kind:<12}" + "  ".join(f"{codec}: {size}" for codec, size in codecs.items()))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
