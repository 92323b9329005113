"""Diagnosis latency on the demo plant: alarm raise -> stored diagnosis, on CPU, default backbone.

Each trial plays one demo fault of one unit into the database (``phm.analytics.diagnosis_demo``:
two hours of 1 Hz readings and controller log lines through ingestion, the fault in the last hour,
a thermal inspection image at its end), all before the clock starts; then the alarm is raised
through the alarm services, whose commit sends the ``diagnose`` task to a real Celery worker (solo
pool, cpu queue, the default no-server broker) that builds the incident from storage, runs the
diagnoser, searches similar cases and the knowledge base and stores the diagnosis.

* latency = the diagnosis's ``latency_ms``: wall time from the raise (its journal row) to the
  stored diagnosis, as the app records it for every alarm;
* explanation = ``explanation_ms``: to the language model's explanation stored afterwards
  (``PHM_DIAGNOSIS_EXPLAIN=after``, the default; ``--explain inline`` generates it before storing).

Trials are spaced: the next alarm is raised once the previous explanation is stored, so each
latency is that of one alarm on an idle worker (a burst queues behind the explanations).

    python bench/diagnose.py [--trials 20] [--per-class 20] [--diagnoser FOLDER] [--explain after] [--in-process]

``--diagnoser`` reuses a saved FaultDiagnoser folder (e.g. ``var/diagnosers/v1``) instead of training
the demo one (about 3-5 minutes on 2 cores). Writes bench/results/diagnose.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PHM_DATA_ROOT", tempfile.mkdtemp(prefix="phm-bench-diagnose-"))
os.environ.pop("DATABASE_URL", None)  # the bench's own SQLite under PHM_DATA_ROOT
os.environ.pop("PHM_BROKER_URL", None)  # the embedded filesystem broker, shared with the worker
os.environ["DJANGO_SETTINGS_MODULE"] = "phm.settings"
os.environ.setdefault("PHM_LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from bench._stats import percentile  # noqa: E402

RESULTS = REPO / "bench" / "results" / "diagnose.json"


def trial_plan(n: int) -> list[tuple[str, str]]:
    """(equipment, fault) pairs cycling over every fault each demo unit can have."""
    from connectors.simulator import DEMO_PLANT

    pairs = [(unit.tag, fault) for unit in DEMO_PLANT.equipment for fault in unit.faults]
    return [pairs[i % len(pairs)] for i in range(n)]


def setup(args) -> object:
    import torch

    from connectors.simulator import DEMO_PLANT
    from phm.analytics import diagnoser_training
    from phm.analytics.diagnosis import artifacts_root
    from phm.analytics.models import DiagnoserJobKind, DiagnoserSource, DiagnoserVersion
    from phm.assets.services import create_plant
    from phm.assistant.services import load_demo_kb

    torch.set_num_threads(1)
    call_command("migrate", verbosity=0)
    create_plant(plant=DEMO_PLANT)
    started = time.perf_counter()
    kb = load_demo_kb(include_assetopsbench=False)
    print(f"knowledge base: {len(kb['loaded'])} documents, {kb['chunks']} passages ({time.perf_counter() - started:.0f} s)")
    if args.diagnoser:
        from models.diagnosis import FaultDiagnoser

        shutil.copytree(args.diagnoser, artifacts_root() / "v1")
        loaded = FaultDiagnoser.load(artifacts_root() / "v1")
        version = DiagnoserVersion.objects.create(version=1, artifact="v1", source=DiagnoserSource.UPLOAD, is_active=True,
                                                  taxonomy=diagnoser_training.taxonomy_of(loaded), backbone=diagnoser_training._backbone_name(loaded))
        print(f"diagnoser: {args.diagnoser} ({version.backbone})")
        return version
    os.environ["PHM_DIAGNOSIS_DEMO"] = json.dumps({"per_class": args.per_class})
    started = time.perf_counter()
    job = diagnoser_training.run_job(job_id=diagnoser_training.start_job(kind=DiagnoserJobKind.DEMO, enqueue=False).pk)
    if job.result is None:
        raise SystemExit(f"demo diagnoser training failed: {job.error}")
    print(f"demo diagnoser trained in {time.perf_counter() - started:.0f} s: {job.result.backbone}; {job.result.trained_on}")
    return job.result


def play_trials(plan: list[tuple[str, str]]) -> list:
    """Every trial's fault played into storage before any alarm: one 3-hour slot per trial."""
    from phm.analytics.diagnosis_demo import play_fault

    first_end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3 * len(plan) + 1)
    started = time.perf_counter()
    injections = [play_fault(equipment_tag=tag, fault=fault, end=first_end + timedelta(hours=3 * i), seed=100 + i)
                  for i, (tag, fault) in enumerate(plan)]
    print(f"played {len(plan)} faults into the database ({time.perf_counter() - started:.0f} s)")
    return injections


def start_worker(log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, PHM_DIAGNOSIS_WARM_UP="1", PHM_LOG_LEVEL="INFO")
    args = ["worker", "-Q", "cpu", "--pool=solo", "-n", "bench-diagnose@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "phm", *args, "--loglevel=INFO"], cwd=REPO, env=env,
                            stdout=log_path.open("w"), stderr=subprocess.STDOUT)


def wait_for(predicate, *, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout_s:g} s waiting for {what}")


def run_trial(injection, *, in_process: bool, explain: str, timeout_s: float):
    from phm.analytics import diagnosis
    from phm.analytics.diagnosis_demo import raise_alarm
    from phm.analytics.models import Diagnosis, DiagnosisStatus

    alarm = raise_alarm(injection=injection)  # commits: the task goes to the worker now
    if in_process:
        stored = diagnosis.run_diagnosis(alarm_id=alarm.pk)
        if explain == "after":
            diagnosis.explain_stored(diagnosis_id=stored.pk)
    done = Diagnosis.objects.filter(alarm=alarm).exclude(status=DiagnosisStatus.RUNNING)
    stored = wait_for(lambda: done.first(), timeout_s=timeout_s, what=f"the diagnosis of alarm {alarm.pk}")
    if stored.status == DiagnosisStatus.DONE and explain == "after":
        stored = wait_for(lambda: Diagnosis.objects.filter(pk=stored.pk, explained_at__isnull=False).first(), timeout_s=timeout_s,
                          what=f"the explanation of diagnosis {stored.pk}")
    return stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--per-class", type=int, default=20, help="simulated incidents per class for the demo diagnoser")
    parser.add_argument("--diagnoser", type=Path, help="a saved FaultDiagnoser folder to use instead of training one")
    parser.add_argument("--explain", choices=["after", "inline", "template"], default="after")
    parser.add_argument("--in-process", action="store_true", help="diagnose in this process instead of a Celery worker (no queue hop)")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    os.environ["PHM_DIAGNOSIS_EXPLAIN"] = args.explain

    version = setup(args)
    plan = trial_plan(args.trials + 1)  # the first one warms the worker up and is not counted
    injections = play_trials(plan)
    workdir = Path(os.environ["PHM_DATA_ROOT"])
    worker = None
    if not args.in_process:
        worker = start_worker(workdir / "worker.log")
        wait_for(lambda: "ready." in (workdir / "worker.log").read_text(), timeout_s=180, what="the Celery worker")
    rows = []
    try:
        for number, (injection, (tag, fault)) in enumerate(zip(injections, plan, strict=True)):
            stored = run_trial(injection, in_process=args.in_process, explain=args.explain, timeout_s=args.timeout)
            row = {"trial": number, "equipment": tag, "injected": fault, "status": stored.status, "diagnosed": stored.fault,
                   "probability": stored.probability, "latency_ms": stored.latency_ms, "explanation_ms": stored.explanation_ms,
                   "explanation_source": (stored.result or {}).get("explanation_source"), "explanation": (stored.result or {}).get("explanation"),
                   "error": stored.error, "warm_up": number == 0}
            rows.append(row)
            print(f"  {'warm-up' if number == 0 else f'trial {number:2d}'} {tag:6s} {fault:17s} -> {stored.fault or stored.status:17s} "
                  f"p={stored.probability or 0:.2f} stored {stored.latency_ms or 0:7.0f} ms"
                  + (f", explained {stored.explanation_ms:7.0f} ms ({row['explanation_source']})" if stored.explanation_ms else ""))
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
    counted = [r for r in rows if not r["warm_up"] and r["status"] == "done"]
    latency = [r["latency_ms"] for r in counted]
    explained = [r["explanation_ms"] for r in counted if r["explanation_ms"] is not None]
    summary = {
        "trials": len(counted), "failed": sum(1 for r in rows if not r["warm_up"] and r["status"] != "done"),
        "latency_ms": {"p50": percentile(latency, 50), "p95": percentile(latency, 95), "max": max(latency, default=float("nan")),
                       "mean": statistics.fmean(latency) if latency else float("nan")},
        "explanation_ms": {"p50": percentile(explained, 50), "p95": percentile(explained, 95), "max": max(explained, default=float("nan"))},
        "model_explanations": sum(1 for r in counted if r["explanation_source"] == "model"),
        "correct_fault": sum(1 for r in counted if r["diagnosed"] == r["injected"]),
    }
    result = {
        "benchmark": "diagnose", "when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.machine(),
        "cpus": os.cpu_count(), "path": "in-process" if args.in_process else "celery worker (solo, cpu queue, filesystem broker)",
        "explain": args.explain, "diagnoser": {"version": version.version, "backbone": version.backbone, "trained_on": version.trained_on},
        "summary": summary, "trials": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1, default=str))
    lat, exp = summary["latency_ms"], summary["explanation_ms"]
    print(f"\nalarm raise -> stored diagnosis ({result['path']}, {version.backbone}), {summary['trials']} alarms:")
    print(f"  p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, max {lat['max']:.0f} ms (target p95 < 10000 ms)")
    if explained:
        print(f"  -> language-model explanation stored: p50 {exp['p50']:.0f} ms, p95 {exp['p95']:.0f} ms; "
              f"{summary['model_explanations']}/{len(counted)} passed the evidence check")
    print(f"  injected fault diagnosed on {summary['correct_fault']}/{len(counted)} alarms; wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
