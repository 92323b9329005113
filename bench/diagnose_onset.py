"""Diagnosis right when the alarm fires: every fault of every demo unit, alarm M minutes into it.

For each M (default 5, 15, 60) and each (unit, fault) of the demo plant (21 cases) this does what
``phm_diagnose --inject <fault> --equipment <tag> --minutes M`` does offline: play the unit's
history with the fault in its last M minutes into the database through ingestion
(``phm.analytics.diagnosis_demo.play_fault``), raise the alarm through the alarm services, and run
the app's diagnosis (``phm.analytics.diagnosis.run_diagnosis``, in this process, template
explanation). A case is right when the stored fault is the injected one.

    python bench/diagnose_onset.py [--diagnoser FOLDER] [--minutes 5 15 60] [--seed 7] [--train fixed|onset]

The demo detectors are trained first on ``--detector-hours`` of healthy history (default 24, as
``up.sh``'s), so each incident carries their per-sensor residuals as a live alarm's does.
Without ``--diagnoser`` the demo diagnoser is trained first (``--train``: ``onset``, the default
training of ``phm_diagnose --train-demo``; ``fixed``, the old alarm-45-90-min-in incidents) and saved
to ``--save`` when given. Writes bench/results/diagnose_onset.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PHM_DATA_ROOT", tempfile.mkdtemp(prefix="phm-bench-onset-"))
os.environ.pop("DATABASE_URL", None)  # the bench's own SQLite under PHM_DATA_ROOT
os.environ["DJANGO_SETTINGS_MODULE"] = "phm.settings"
os.environ.setdefault("PHM_LOG_LEVEL", "WARNING")
os.environ["PHM_DIAGNOSIS_EXPLAIN"] = "template"  # the fault is measured here, not the wording
os.environ["PHM_DIAGNOSE_ON_RAISE"] = "0"  # diagnosed below, in this process

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

RESULTS = REPO / "bench" / "results" / "diagnose_onset.json"


def cases() -> list[tuple[str, str]]:
    from connectors.simulator import DEMO_PLANT

    return [(unit.tag, fault) for unit in DEMO_PLANT.equipment for fault in unit.faults]


def setup(args):
    import torch

    from connectors.simulator import DEMO_PLANT
    from models.diagnosis import FaultDiagnoser
    from phm.analytics import diagnoser_training
    from phm.analytics.diagnosis import artifacts_root
    from phm.analytics.models import DiagnoserJobKind, DiagnoserSource, DiagnoserVersion
    from phm.assets.services import create_plant

    torch.set_num_threads(max(1, args.threads))
    call_command("migrate", verbosity=0)
    create_plant(plant=DEMO_PLANT)
    if args.detector_hours > 0:
        print(demo_detectors(hours=args.detector_hours), flush=True)
    if args.diagnoser:
        shutil.copytree(args.diagnoser, artifacts_root() / "v1")
        loaded = FaultDiagnoser.load(artifacts_root() / "v1")
        return DiagnoserVersion.objects.create(version=1, artifact="v1", source=DiagnoserSource.UPLOAD, is_active=True,
                                               taxonomy=diagnoser_training.taxonomy_of(loaded), backbone=diagnoser_training._backbone_name(loaded))
    demo = {"alarm_at": args.train}
    if args.per_class is not None:  # else the app's default, as phm_diagnose --train-demo
        demo["per_class"] = args.per_class
    os.environ["PHM_DIAGNOSIS_DEMO"] = json.dumps(demo)
    started = time.perf_counter()
    job = diagnoser_training.run_job(job_id=diagnoser_training.start_job(kind=DiagnoserJobKind.DEMO, enqueue=False).pk)
    if job.result is None:
        raise SystemExit(f"demo diagnoser training failed: {job.error}")
    print(f"demo diagnoser ({args.train}) trained in {time.perf_counter() - started:.0f} s: {job.result.trained_on}; {job.result.metrics}", flush=True)
    if args.save:
        shutil.copytree(artifacts_root() / job.result.artifact, args.save, dirs_exist_ok=True)
        print(f"saved to {args.save}")
    return job.result


def demo_detectors(*, hours: float) -> str:
    """The demo detectors as ``up.sh`` trains them (``phm_demo``: ``hours`` of healthy history, the
    drift check with a whole day), on history that ends three days before now, so the played cases
    (placed backwards from now, about 30 h per unit) never overlap it. Their per-sensor residuals
    go into each incident, as they do for an alarm in the running demo."""
    from django.utils import timezone

    from phm.analytics.demo import create_demo_detectors
    from phm.telemetry.simulation import backfill_bulk

    end = timezone.now().replace(microsecond=0) - timedelta(days=3)
    backfill_bulk(start=end - timedelta(hours=hours), end=end, seed=11)
    return "\n".join(create_demo_detectors(train_start=end - timedelta(hours=hours), train_end=end))


def run_case(tag: str, fault: str, minutes: float, *, seed: int) -> dict:
    from django.utils import timezone

    from phm.analytics import diagnosis, diagnosis_demo
    from phm.assets.models import Equipment

    config = diagnosis.DiagnosisConfig.from_env()
    history = max(minutes, config.window_s / 60) + config.baseline_s / 60
    equipment = Equipment.objects.get(tag=tag)
    end = diagnosis_demo.free_slot_end(equipment, history=timedelta(minutes=history), latest=timezone.now().replace(microsecond=0))
    injection = diagnosis_demo.play_fault(equipment_tag=tag, fault=fault, end=end, fault_minutes=minutes, history_minutes=history, seed=seed)
    alarm = diagnosis_demo.raise_alarm(injection=injection)
    stored = diagnosis.run_diagnosis(alarm_id=alarm.pk)
    probabilities = (stored.result or {}).get("probabilities", {})
    return {"equipment": tag, "injected": fault, "minutes": minutes, "status": stored.status, "diagnosed": stored.fault,
            "probability": stored.probability, "p_injected": probabilities.get(fault), "latency_ms": stored.latency_ms, "error": stored.error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--diagnoser", type=Path, help="a saved FaultDiagnoser folder (else the demo one is trained)")
    parser.add_argument("--train", choices=["onset", "fixed"], default="onset", help="training incidents of the demo diagnoser")
    parser.add_argument("--per-class", type=int, default=None,
                        help="incidents per class of the trained demo diagnoser (default: the app's, as phm_diagnose --train-demo)")
    parser.add_argument("--save", type=Path, help="copy the trained diagnoser here")
    parser.add_argument("--minutes", type=float, nargs="+", default=[5.0, 15.0, 60.0])
    parser.add_argument("--seed", type=int, default=7, help="simulator seed of the played faults")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--detector-hours", type=float, default=24.0,
                        help="history the demo detectors train on first, as up.sh's (0: no detectors, no residuals in the incidents)")
    parser.add_argument("--label", default="", help="name of this run in the results file")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    version = setup(args)
    rows = []
    started = time.perf_counter()
    for minutes in args.minutes:
        for tag, fault in cases():
            row = run_case(tag, fault, minutes, seed=args.seed)
            rows.append(row)
            mark = "ok " if row["diagnosed"] == fault else "BAD"
            print(f"  M={minutes:>4g} {tag:6s} {fault:17s} -> {row['diagnosed'] or row['status']:17s} p={row['probability'] or 0:.2f} {mark}", flush=True)
    totals = {f"{m:g}": sum(1 for r in rows if r["minutes"] == m and r["diagnosed"] == r["injected"]) for m in args.minutes}
    n = len(cases())
    print(f"\n{'case':26s}" + "".join(f"  M={m:<4g}" for m in args.minutes))
    for tag, fault in cases():
        cells = []
        for m in args.minutes:
            row = next(r for r in rows if r["minutes"] == m and r["equipment"] == tag and r["injected"] == fault)
            cells.append(("ok" if row["diagnosed"] == fault else (row["diagnosed"] or row["status"])[:7]).ljust(7))
        print(f"{tag + ' ' + fault:26s}  " + "  ".join(cells))
    print("right" + " " * 21 + "".join(f"  {totals[f'{m:g}']:>2d}/{n:<3d}" for m in args.minutes))
    result = {"benchmark": "diagnose_onset", "label": args.label, "when": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": platform.machine(), "cpus": os.cpu_count(), "seed": args.seed, "seconds": round(time.perf_counter() - started, 1),
              "diagnoser": {"version": version.version, "backbone": version.backbone, "trained_on": version.trained_on, "metrics": version.metrics},
              "right": totals, "cases": n, "rows": rows}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
