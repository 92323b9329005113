"""Vibration captures: ingestion rate and spectrum page time, next to the raw work on the same data.

    python bench/waveform.py [--captures 200] [--repeat 5] [--skip-postgres]

For SQLite and PostgreSQL, in the same process and on the same files (1 s at 25.6 kHz each, float32,
as ``*.capture.npz`` with their metadata):

* **raw read**: ``np.load`` of every file and its samples array (what reading the data costs);
* **ingest**: every file through the product path of a watched folder or upload: read
  (``connectors.waveforms.read_capture_file``) and ``phm.condition.captures.ingest_capture``
  (validation, velocity RMS, one row with the blob) — captures per second;
* **page** (SQLite only): the equipment page showing one capture (GET ``/equipment/<tag>/?capture=``),
  cold (the capture's spectra not cached yet) and cached, next to the **raw FFT** of the same samples
  (``numpy.fft.rfft``) and the full analysis alone (``spectra.compute_spectra``: FFT, band-pass,
  Hilbert, envelope FFT). Cold is the median over ``--repeat`` different captures, cached the best
  of ``--repeat`` on one.

Writes ``bench/results/waveform.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _django import open_databases  # noqa: E402

PG_BENCH_DB = "phm_bench_waveform"
RATE = 25_600.0


def write_files(folder: Path, count: int, start: datetime) -> list[Path]:
    from connectors.vibration_sim import simulate_capture
    from models.vibration import BearingGeometry

    orders = BearingGeometry(72.5, 17.462, 8).orders()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        samples = simulate_capture(rng, speed_rpm=1480.0, defect_orders=orders, bearing_wear=0.5 * (i % 3 == 0))
        path = folder / f"c{i:05d}.capture.npz"
        np.savez(path, samples=samples, sample_rate_hz=np.array(RATE), unit=np.array("g"), equipment=np.array("B-1"), point=np.array("DE"),
                 captured_at=np.array((start + timedelta(minutes=10 * i)).isoformat()), speed_rpm=np.array(1480.0))
        paths.append(path)
    return paths


def raw_read(paths: list[Path]) -> float:
    started = time.perf_counter()
    total = 0
    for path in paths:
        with np.load(path) as archive:
            total += len(archive["samples"])
    return time.perf_counter() - started


def ingest(paths: list[Path], alias: str) -> float:
    from connectors.waveforms import read_capture_file
    from phm.condition.captures import ingest_capture

    started = time.perf_counter()
    for path in paths:
        outcome = ingest_capture(record=read_capture_file(path), source="folder", channel="bench", using=alias)
        assert outcome.created
    return time.perf_counter() - started


def make_equipment(alias: str) -> None:
    from phm.assets.models import Area, Equipment, Line, MeasurementPoint, Site

    site = Site.objects.using(alias).create(code="bench", name="Bench")
    area = Area.objects.using(alias).create(site=site, code="a", name="A")
    line = Line.objects.using(alias).create(area=area, code="l", name="L")
    equipment = Equipment.objects.using(alias).create(line=line, tag="B-1", name="Bench pump", equipment_type="pump", running_speed_rpm=1480)
    MeasurementPoint.objects.using(alias).create(equipment=equipment, name="DE", pitch_diameter_mm=72.5, ball_diameter_mm=17.462, rolling_elements=8)


def page_times(repeat: int) -> dict:
    from django.contrib.auth.models import User
    from django.core.cache import cache
    from django.test import Client

    from phm.condition import spectra
    from phm.condition.models import WaveformCapture

    client = Client()
    client.force_login(User.objects.create_superuser("bench", password="bench-pass-1"))
    captures = list(WaveformCapture.objects.order_by("-captured_at")[: repeat + 1])
    assert client.get(f"/equipment/B-1/?capture={captures[-1].pk}").status_code == 200  # URL and template caches warm
    cache.clear()
    cold = []
    for capture in captures[:repeat]:
        started = time.perf_counter()
        response = client.get(f"/equipment/B-1/?capture={capture.pk}")
        cold.append(time.perf_counter() - started)
        assert response.status_code == 200 and b"vibration-envelope" in response.content
    warm = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(f"/equipment/B-1/?capture={captures[0].pk}")
        warm.append(time.perf_counter() - started)
    samples = captures[0].waveform()
    fft, analysis = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        np.fft.rfft(samples)
        fft.append(time.perf_counter() - started)
        started = time.perf_counter()
        spectra.compute_spectra(captures[0])
        analysis.append(time.perf_counter() - started)
    return {"page_cold_s": round(statistics.median(cold), 4), "page_cached_s": round(min(warm), 4), "raw_fft_s": round(min(fft), 6),
            "analysis_s": round(min(analysis), 4), "page_bytes": len(response.content)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="phm-bench-waveform-"))
    os.environ.setdefault("PHM_ALLOWED_HOSTS", "testserver,localhost")
    with_pg = open_databases(workdir, postgres_database=PG_BENCH_DB, skip_postgres=args.skip_postgres)
    from django.core.management import call_command

    files = workdir / "files"
    files.mkdir()
    paths = write_files(files, args.captures, datetime(2026, 3, 1, tzinfo=UTC))
    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    results = []
    for alias in ["default"] + (["postgres"] if with_pg else []):
        call_command("migrate", database=alias, verbosity=0)
        make_equipment(alias)
        raw_s = raw_read(paths)
        ingest_s = ingest(paths, alias)
        row = {"engine": alias, "captures": len(paths), "file_mb": round(megabytes, 1), "raw_read_per_s": round(len(paths) / raw_s, 1),
               "ingest_per_s": round(len(paths) / ingest_s, 1), "raw_over_ingest": round(ingest_s / raw_s, 1)}
        if alias == "default":
            row.update(page_times(args.repeat))
        results.append(row)
        print(json.dumps(row))
    print(f"{'engine':<10}{'captures':>9}{'raw read/s':>12}{'ingest/s':>10}{'ratio':>7}{'raw FFT ms':>12}{'analysis ms':>13}{'page cold ms':>14}{'page cached ms':>16}")
    for r in results:
        page = (f"{r['raw_fft_s'] * 1000:>12.2f}{r['analysis_s'] * 1000:>13.1f}{r['page_cold_s'] * 1000:>14.1f}{r['page_cached_s'] * 1000:>16.1f}"
                if "page_cold_s" in r else f"{'-':>12}{'-':>13}{'-':>14}{'-':>16}")
        print(f"{r['engine']:<10}{r['captures']:>9}{r['raw_read_per_s']:>12.1f}{r['ingest_per_s']:>10.1f}{r['raw_over_ingest']:>7.1f}{page}")
    print(f"load average {os.getloadavg()}")
    out = ROOT / "bench" / "results" / "waveform.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(), "load_average": os.getloadavg(), "results": results}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
