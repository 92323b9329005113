"""The plant trial: the intelligence chain measured as a plant would live it.

    python -m phm.trial --seed 101 --seed 102 --seed 103 --days 7 --json trial.json

For each seed, in a fresh database (its own ``PHM_DATA_ROOT``, one subprocess per seed):

1. the demo plant (``create_plant``), and a **hidden random fault schedule** drawn from the seed:
   every fault kind on every unit that supports it, ``--repeats`` times, at random times of day,
   severity 0.5-1.5, 20 min to 8 h long, with slow and fast ramps (sensor faults: a random sensor of
   the unit), separated by long normal stretches;
2. ``--train-days`` of fault-free history before the trial and ``--days`` of trial history,
   simulated and bulk-inserted (``phm.telemetry.simulation.backfill_bulk``);
3. the demo detectors trained as a user would (``create_demo_detectors`` on the pre-trial history,
   i.e. the training job of the product) and the demo diagnoser (``phm_diagnose --train-demo``'s
   job; trained once and registered from its folder for the next seeds, as a plant would install
   one trained elsewhere);
4. the backtest over the trial period (``phm.backtests``: the live scoring, alarm rules and
   diagnosis), scored against the schedule.

It prints one table per seed and the mean over the seeds, and writes JSON. Develop with seeds
1-3; the README's table uses seeds 101-103.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

#: The trial starts at midnight UTC of a fixed day, so a seed gives the same schedule every run.
TRIAL_START = datetime(2026, 1, 5, tzinfo=UTC)
SENSOR_FAULTS = ("sensor_drift", "stuck_sensor")


@dataclass(frozen=True)
class PlannedFault:
    equipment: str
    kind: str
    start: datetime
    duration_s: float
    severity: float
    ramp_s: float | None
    sensor: str | None


def fault_schedule(
    *, seed: int, start: datetime, days: float, repeats: int, plant=None, min_gap_s: float = 3 * 3600.0,
    min_duration_s: float = 20 * 60.0, max_duration_s: float = 8 * 3600.0,
) -> list[PlannedFault]:
    """Every kind on every unit ``repeats`` times, in random order, non-overlapping per unit with at
    least ``min_gap_s`` of normal operation between faults (and before the first); durations
    log-uniform in [min, max] (shortened when the span is too full), severity uniform 0.5-1.5,
    half the ramps fast (5-20 % of the duration), half slow (60-90 %)."""
    from connectors.simulator import DEMO_PLANT

    plant = plant or DEMO_PLANT
    rng = np.random.default_rng(seed)
    span_s = days * 86400.0
    planned: list[PlannedFault] = []
    for unit in plant.equipment:
        kinds = [kind for kind in unit.faults for _ in range(repeats)]
        rng.shuffle(kinds)
        durations = np.exp(rng.uniform(math.log(min_duration_s), math.log(max_duration_s), len(kinds)))
        free = span_s - min_gap_s * (len(kinds) + 1)
        if durations.sum() > 0.6 * free:  # keep at least 40 % of the free time normal
            durations *= 0.6 * free / durations.sum()
        slack = free - durations.sum()
        if slack <= 0:
            raise ValueError(f"{days} days cannot hold {len(kinds)} faults of {unit.tag} with {min_gap_s / 3600:g} h between them")
        gaps = np.diff(np.r_[0.0, np.sort(rng.uniform(0, slack, len(kinds)))])
        cursor = min_gap_s
        for kind, duration, gap in zip(kinds, durations, gaps, strict=True):
            cursor += gap
            fast = rng.random() < 0.5
            ramp = None if kind in SENSOR_FAULTS else float(duration * (rng.uniform(0.05, 0.2) if fast else rng.uniform(0.6, 0.9)))
            sensor = str(rng.choice([s.measure for s in unit.sensors])) if kind in SENSOR_FAULTS else None
            planned.append(PlannedFault(unit.tag, kind, start + timedelta(seconds=round(cursor)), round(float(duration)),
                                        round(float(rng.uniform(0.5, 1.5)), 3), ramp, sensor))
            cursor += duration + min_gap_s
    return sorted(planned, key=lambda f: (f.start, f.equipment))


# --- one seed, in its own database ------------------------------------------------------------------


def _setup_django(data_root: Path) -> None:
    os.environ["PHM_DATA_ROOT"] = str(data_root)
    os.environ.pop("DATABASE_URL", None)  # always a fresh SQLite file under the data root
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "phm.settings")
    os.environ.setdefault("PHM_DIAGNOSIS_WARM_UP", "0")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def run_seed(*, seed: int, days: float, train_days: float, repeats: int, diagnoser_cache: Path, data_root: Path) -> dict:
    """The whole trial of one seed in the database under ``data_root``; returns its report."""
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    _setup_django(data_root)
    from connectors.simulator import DEMO_PLANT
    from phm.analytics.demo import create_demo_detectors
    from phm.assets.services import create_plant
    from phm.backtests import services
    from phm.telemetry import simulation

    clock: dict[str, float] = {}
    started = time.perf_counter()
    create_plant(plant=DEMO_PLANT)
    trial_start = TRIAL_START + timedelta(days=train_days)
    trial_end = trial_start + timedelta(days=days)
    schedule = fault_schedule(seed=seed, start=trial_start, days=days, repeats=repeats)
    for fault in schedule:
        simulation.inject_fault(equipment_tag=fault.equipment, fault=fault.kind, start=fault.start, duration=timedelta(seconds=fault.duration_s),
                                severity=fault.severity, sensor_measure=fault.sensor, source="trial", ramp_s=fault.ramp_s)
    readings, logs = simulation.backfill_bulk(start=TRIAL_START, end=trial_end, seed=seed)
    clock["history_s"] = time.perf_counter() - started
    _log(f"seed {seed}: {len(schedule)} hidden faults, {readings} readings, {logs} log lines in {clock['history_s']:.0f} s")

    mark = time.perf_counter()
    for line in create_demo_detectors(train_start=TRIAL_START, train_end=trial_start):
        _log(f"  {line}")
    clock["detectors_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    diagnoser = _diagnoser(diagnoser_cache)
    clock["diagnoser_s"] = time.perf_counter() - mark
    _log(f"seed {seed}: diagnoser v{diagnoser.version} ready in {clock['diagnoser_s']:.0f} s")

    mark = time.perf_counter()
    run = services.create_backtest(start=trial_start, end=trial_end, diagnoser=diagnoser, name=f"trial seed {seed}", enqueue=False)
    run = services.run_backtest(run_id=run.pk)
    clock["backtest_s"] = time.perf_counter() - mark
    if run.status != "succeeded":
        raise RuntimeError(f"backtest of seed {seed} {run.status}: {run.error}")
    clock["total_s"] = time.perf_counter() - started
    report = dict(run.report, seed=seed, days=days, train_days=train_days, repeats=repeats, clock=clock,
                  schedule=[{**asdict(f), "start": f.start.isoformat()} for f in schedule])
    return report


def _diagnoser(cache: Path):
    """The demo diagnoser: trained by the product's job once, then registered from its folder."""
    from phm.analytics import diagnoser_training
    from phm.analytics.models import DiagnoserJobKind

    if (cache / "config.json").exists():
        return diagnoser_training.register_folder(folder=cache, activate=True)
    job = diagnoser_training.run_job(job_id=diagnoser_training.start_job(kind=DiagnoserJobKind.DEMO, enqueue=False).pk)
    if job.result is None:
        raise RuntimeError(f"diagnoser training failed: {job.error}")
    from phm.analytics.diagnosis import artifacts_root

    import shutil

    cache.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(artifacts_root() / job.result.artifact, cache, dirs_exist_ok=True)
    return job.result


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- several seeds ------------------------------------------------------------------------------------

#: Numbers averaged over seeds: (label, path in the report).
HEADLINE = (
    ("faults", ("detection", "faults")),
    ("detected %", ("detection", "detected_pct")),
    ("detected % (severity >= 0.5)", ("detection", "severity_ge_0_5", "detected_pct")),
    ("false alarms / equipment-day", ("false_alarms", "per_equipment_day")),
    ("diagnosis top-1 at raise", ("diagnosis", "by_offset_s", "0", "top1_accuracy")),
    ("diagnosis top-1 at +5 min", ("diagnosis", "by_offset_s", "300", "top1_accuracy")),
    ("diagnosis top-1 at +15 min", ("diagnosis", "by_offset_s", "900", "top1_accuracy")),
    ("uncertain rate at raise", ("diagnosis", "by_offset_s", "0", "uncertain_rate")),
    ("raise -> diagnosis p50 ms", ("diagnosis", "raise_to_diagnosis_ms", "p50")),
    ("trial wall time s", ("clock", "total_s")),
)


def _get(report: dict, path: tuple[str, ...]):
    value = report
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def missed_lines(report: dict) -> list[str]:
    """The faults no alarm caught, with what the schedule says about them (a drift's size at its end
    is 3 x severity units per hour on its sensor)."""
    planned = {(f["equipment"], f["kind"], f["start"]): f for f in report.get("schedule", [])}
    lines = []
    for row in report["faults"]:
        if row["detected"] is not False:  # caught, or still running when the trial ended
            continue
        plan = planned.get((row["equipment"], row["kind"], row["start"]), {})
        hours = row["duration_s"] / 3600
        size = f", drift {3 * row['severity'] * hours:.1f} units at its end" if row["kind"] == "sensor_drift" else ""
        lines.append(f"  missed: {row['equipment']} {row['kind']}{' on ' + plan['sensor'] if plan.get('sensor') else ''} "
                     f"severity {row['severity']:.2f}, {hours * 60:.0f} min{size}")
    return lines


def mean_table(reports: list[dict]) -> dict:
    """The headline numbers and the per-kind detection / median delay, averaged over seeds."""
    table: dict[str, float | None] = {}
    for label, path in HEADLINE:
        values = [v for v in (_get(r, path) for r in reports) if v is not None]
        table[label] = float(np.mean(values)) if values else None
    kinds = sorted({k for r in reports for k in r["detection"]["by_kind"]})
    by_kind = {}
    for kind in kinds:
        rows = [r["detection"]["by_kind"][kind] for r in reports if kind in r["detection"]["by_kind"]]
        delays = [row["median_delay_s"] for row in rows if row["median_delay_s"] is not None]
        by_kind[kind] = {"faults": int(sum(row["faults"] for row in rows)), "detected_pct": float(np.mean([row["detected_pct"] for row in rows])),
                         "median_delay_s": float(np.mean(delays)) if delays else None}
    return {"headline": table, "by_kind": by_kind}


def print_mean(mean: dict, seeds: list[int]) -> None:
    print(f"\n=== mean over seeds {', '.join(map(str, seeds))} ===")
    for label, value in mean["headline"].items():
        print(f"{label:<34} {'-' if value is None else f'{value:.3f}'}")
    print(f"{'fault kind':<20} {'faults':>6} {'detected':>9} {'median delay':>13}")
    for kind, row in mean["by_kind"].items():
        delay = "-" if row["median_delay_s"] is None else f"{row['median_delay_s'] / 60:.1f} min"
        print(f"{kind:<20} {row['faults']:>6} {row['detected_pct']:>8.1f}% {delay:>13}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phm.trial", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, action="append", help="Schedule seed (repeat; default 1 2 3 for development).")
    parser.add_argument("--days", type=float, default=7.0, help="Simulated trial days (default 7).")
    parser.add_argument("--train-days", type=float, default=1.0, help="Fault-free history before the trial for training (default 1).")
    parser.add_argument("--repeats", type=int, default=3, help="Faults of each kind on each unit (default 3).")
    parser.add_argument("--json", default="trial.json", help="Where to write the reports and the mean.")
    parser.add_argument("--work-dir", help="Folder for the per-seed databases (default a temporary folder).")
    parser.add_argument("--diagnoser-cache", help="Folder of the demo diagnoser, trained on first use (default under the work dir).")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # internal: run one seed in this process
    args = parser.parse_args(argv)
    seeds = args.seed or [1, 2, 3]
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="phm-trial-"))
    cache = Path(args.diagnoser_cache) if args.diagnoser_cache else work / "diagnoser"
    if args.one:
        report = run_seed(seed=seeds[0], days=args.days, train_days=args.train_days, repeats=args.repeats, diagnoser_cache=cache,
                          data_root=work / f"seed-{seeds[0]}")
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        return 0
    from phm.backtests.summary import report_lines

    reports = []
    for seed in seeds:
        out = work / f"seed-{seed}.json"
        command = [sys.executable, "-m", "phm.trial", "--one", "--seed", str(seed), "--days", str(args.days), "--train-days", str(args.train_days),
                   "--repeats", str(args.repeats), "--json", str(out), "--work-dir", str(work), "--diagnoser-cache", str(cache)]
        subprocess.run(command, check=True)
        report = json.loads(out.read_text())
        reports.append(report)
        print(f"\n=== seed {seed}: {args.days:g} days, {report['detection']['faults']} faults, {report['clock']['total_s']:.0f} s ===")
        for line in report_lines(report):
            print(line)
        for line in missed_lines(report):
            print(line)
    mean = mean_table(reports)
    print_mean(mean, seeds)
    Path(args.json).write_text(json.dumps({"seeds": seeds, "days": args.days, "mean": mean, "reports": reports}, indent=2, default=str))
    print(f"\nwritten to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
