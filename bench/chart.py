"""Long-range charts: a month of 1 Hz data per sensor, bucketed for a chart.

    python bench/chart.py [--days 30] [--sensors 2] [--skip-postgres] [--repeat 3]

For SQLite and PostgreSQL it stores ``--days`` of 1 Hz readings for ``--sensors`` sensors (as a
bulk restore: raw rows, then ``rebuild_rollups``) and times, in the same process:

* **rollups**: ``sensor_series`` over the whole range into 600 buckets (per-minute roll-ups,
  raw rows only for the partial edge minutes) — what the equipment page does;
* **raw**: the same buckets aggregated from the raw readings (the query used before roll-ups);
* **page** (SQLite default database only): the equipment page over the range through Django's
  test client, charts for every sensor included.

Prints the best of ``--repeat`` runs and the raw/roll-up ratio; writes ``bench/results/chart.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _django import make_sensors, open_databases  # noqa: E402

PG_BENCH_DB = "phm_bench_chart"
BUCKETS = 600


def fill(alias: str, sensor_ids: list[int], start_us: int, seconds: int) -> None:
    from django.db import connections

    from phm.telemetry.rollups import rebuild_rollups

    with connections[alias].cursor() as cursor:
        for sensor_id in sensor_ids:
            for chunk in range(0, seconds, 200_000):
                rows = [(sensor_id, start_us + i * 1_000_000, 2.0 + math.sin(i / 600.0), 192) for i in range(chunk, min(chunk + 200_000, seconds))]
                cursor.executemany("INSERT INTO telemetry_reading (sensor_id, ts, value, quality) VALUES (%s, %s, %s, %s)", rows)
    rebuild_rollups(sensor_ids=sensor_ids, using=alias)
    if connections[alias].vendor == "postgresql":
        with connections[alias].cursor() as cursor:
            cursor.execute("ANALYZE telemetry_reading; ANALYZE telemetry_readingrollup")


def best_of(repeat: int, action) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--sensors", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="phm-bench-chart-"))
    os.environ.setdefault("PHM_ALLOWED_HOSTS", "testserver,localhost")
    with_pg = open_databases(workdir, postgres_database=PG_BENCH_DB, skip_postgres=args.skip_postgres)
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from phm.assets.models import Sensor
    from phm.telemetry.store import get_store
    from phm.telemetry.fields import datetime_to_us
    from phm.telemetry.selectors import sensor_series

    seconds = args.days * 86_400
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(seconds=seconds)
    results = []
    for alias in ["default"] + (["postgres"] if with_pg else []):
        call_command("migrate", database=alias, verbosity=0)
        tags = make_sensors(alias, site_code="bench", equipment_tag="C-1", names=[f"S{i}" for i in range(args.sensors)])
        sensors = list(Sensor.objects.using(alias).filter(tag__in=tags))
        started = time.perf_counter()
        fill(alias, [s.id for s in sensors], datetime_to_us(start), seconds)
        load_s = time.perf_counter() - started
        sensor = sensors[0]
        series = sensor_series(sensor=sensor, start=start, end=end, max_points=BUCKETS, using=alias)
        bucket_us = int(series.bucket_seconds * 1e6)
        origin_us = datetime_to_us(start) // 60_000_000 * 60_000_000
        rollup_s = best_of(args.repeat, lambda: sensor_series(sensor=sensor, start=start, end=end, max_points=BUCKETS, using=alias))
        raw_s = best_of(args.repeat, lambda: get_store(alias).raw_bucket_sums(sensor.id, datetime_to_us(start), datetime_to_us(end), bucket_us, origin_us))
        row = {"engine": alias, "rows_per_sensor": seconds, "sensors": len(sensors), "buckets": len(series.points),
               "load_s": round(load_s, 1), "rollups_s": round(rollup_s, 4), "raw_s": round(raw_s, 4), "raw_over_rollups": round(raw_s / rollup_s, 1)}
        if alias == "default":
            user = User.objects.create_superuser("bench", password="bench-pass-1")
            client = Client()
            client.force_login(user)
            assert client.get("/equipment/C-1/?range=1h").status_code == 200  # URL and template caches warm
            range_key = {30: "30d", 7: "7d", 1: "24h"}.get(args.days)
            if range_key:
                page_s = best_of(args.repeat, lambda: client.get(f"/equipment/C-1/?range={range_key}"))
                row["page_s"] = round(page_s, 3)
        results.append(row)
        print(json.dumps(row))
    print(f"{'engine':<10}{'rows/sensor':>12}{'buckets':>9}{'roll-ups s':>12}{'raw s':>9}{'raw/roll-ups':>14}{'page s':>9}")
    for r in results:
        page = f"{r['page_s']:.3f}" if "page_s" in r else "-"
        print(f"{r['engine']:<10}{r['rows_per_sensor']:>12,}{r['buckets']:>9}{r['rollups_s']:>12.4f}{r['raw_s']:>9.3f}{r['raw_over_rollups']:>14.1f}{page:>9}")
    print(f"load average {os.getloadavg()}")
    out = ROOT / "bench" / "results" / "chart.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(), "results": results}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
