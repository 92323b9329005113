"""Ingestion throughput: ``ingest_readings`` vs the database driver alone, same rows, same run.

    python bench/ingest.py [--rows 200000] [--batches 1000,50000] [--skip-postgres]

For SQLite (WAL, a fresh file) and PostgreSQL (a fresh database on the local server) it measures
readings/s through the service (validation, dedupe, insert with conflict handling, latest-value
upkeep, one transaction per batch) and the raw speed of writing the same rows into an identical
table with the driver alone: ``executemany`` for SQLite, binary ``COPY`` for PostgreSQL. It prints a
table and writes ``bench/results/ingest.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _django import make_sensors, open_databases, postgres_url, recreate_postgres_database  # noqa: E402

PG_BENCH_DB = "phm_bench_ingest"
N_SENSORS = 50


def make_readings(tags: list[str], rows: int, start: datetime):
    from connectors.records import Reading

    per_sensor = rows // len(tags)
    return [Reading(tag, start + timedelta(seconds=i), 20.0 + (i % 100) / 10) for i in range(per_sensor) for tag in tags]


def bench_service(alias: str, readings, batch: int) -> float:
    from phm.telemetry.services import ingest_readings

    started = time.perf_counter()
    accepted = 0
    for offset in range(0, len(readings), batch):
        accepted += ingest_readings(readings=readings[offset : offset + batch], using=alias).accepted
    elapsed = time.perf_counter() - started
    assert accepted == len(readings), f"{alias}: accepted {accepted} of {len(readings)}"
    return len(readings) / elapsed


def raw_rows(alias: str, readings) -> list[tuple[int, int, float, int]]:
    from phm.assets.models import Sensor
    from phm.telemetry.fields import datetime_to_us

    ids = dict(Sensor.objects.using(alias).values_list("tag", "id"))
    return [(ids[r.sensor], datetime_to_us(r.ts), r.value, 192) for r in readings]


def bench_raw_sqlite(path: Path, rows, batch: int) -> float:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE raw_reading (sensor_id INTEGER NOT NULL, ts BIGINT NOT NULL, value REAL NOT NULL, quality SMALLINT NOT NULL, PRIMARY KEY (sensor_id, ts))")
    started = time.perf_counter()
    for offset in range(0, len(rows), batch):
        with conn:
            conn.executemany("INSERT INTO raw_reading VALUES (?, ?, ?, ?)", rows[offset : offset + batch])
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed


def bench_raw_copy(rows, batch: int) -> float:
    import psycopg

    with psycopg.connect(postgres_url(PG_BENCH_DB)) as conn:
        conn.execute("DROP TABLE IF EXISTS raw_reading")
        conn.execute("CREATE TABLE raw_reading (sensor_id bigint NOT NULL, ts bigint NOT NULL, value double precision NOT NULL, quality smallint NOT NULL, PRIMARY KEY (sensor_id, ts))")
        conn.commit()
        started = time.perf_counter()
        for offset in range(0, len(rows), batch):
            with conn.cursor() as cursor, cursor.copy("COPY raw_reading (sensor_id, ts, value, quality) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "int8", "float8", "int2"])
                for row in rows[offset : offset + batch]:
                    copy.write_row(row)
            conn.commit()
        elapsed = time.perf_counter() - started
    return len(rows) / elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batches", default="1000,50000")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="phm-bench-"))
    with_pg = open_databases(workdir, postgres_database=PG_BENCH_DB, skip_postgres=args.skip_postgres)
    from django.core.management import call_command
    from django.db import connections

    aliases = ["default"] + (["postgres"] if with_pg else [])
    results = []
    for alias in aliases:
        call_command("migrate", database=alias, verbosity=0)
        tags = make_sensors(alias, site_code="bench", equipment_tag="B-1", names=[f"S{i:03d}" for i in range(N_SENSORS)])
        engine = connections[alias].vendor
        for run, batch in enumerate(batches):
            # A fresh time range per run: every reading is new, as in steady-state streaming.
            readings = make_readings(tags, args.rows, datetime(2026, 1, 1 + run, tzinfo=UTC))
            service = bench_service(alias, readings, batch)
            rows = raw_rows(alias, readings)
            if engine == "sqlite":
                raw = bench_raw_sqlite(workdir / f"raw-{batch}.sqlite3", rows, batch)
                raw_name = "executemany"
            else:
                raw = bench_raw_copy(rows, batch)
                raw_name = "COPY binary"
            results.append({"engine": engine, "batch": batch, "rows": len(readings), "service_per_s": round(service), "raw_method": raw_name, "raw_per_s": round(raw), "ratio": round(service / raw, 3)})
    print(f"{'engine':<11}{'batch':>7}{'rows':>9}{'ingest_readings/s':>19}{'raw/s':>11}  {'raw method':<13}{'service/raw':>11}")
    for r in results:
        print(f"{r['engine']:<11}{r['batch']:>7}{r['rows']:>9}{r['service_per_s']:>19,}{r['raw_per_s']:>11,}  {r['raw_method']:<13}{r['ratio']:>11.2f}")
    out = ROOT / "bench" / "results" / "ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(), "n_sensors": N_SENSORS, "results": results}, indent=2))
    print(f"wrote {out}")
    if with_pg:
        connections.close_all()
        recreate_postgres_database(PG_BENCH_DB)  # leave nothing big behind
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
