"""Backtest jobs: create a run (what to replay), run it in a worker with progress rows, store its
alarms, diagnoses and plot series in its own tables, and score them against the known faults.

The diagnosis of a backtest alarm is the live diagnosis code on data read from storage:
:func:`phm.analytics.diagnosis.build_incident` (sensor window, log lines and their baseline, the
latest inspection image before the instant) and the diagnoser version's ``diagnose``, at the raise
and at each re-diagnosis offset while the alarm is still active. The live ``Diagnosis`` rows, the
alarm journal, the outbox and webhooks are never touched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from phm.analytics.models import DetectorConfig, DiagnoserVersion, JobStatus, ModelVersion
from phm.assets.models import Equipment
from phm.backtests.models import BacktestAlarm, BacktestDiagnosis, BacktestProgress, BacktestRun, BacktestSeries, GroundTruth
from phm.backtests.replay import replay_detector
from phm.backtests.report import AlarmRow, DiagnosisRow, build_report, is_uncertain, match_fault
from phm.backtests.truth import known_faults

log = logging.getLogger(__name__)


class BacktestError(Exception):
    """The backtest cannot run as requested; the message says why."""


@dataclass(frozen=True)
class _AlarmAt:
    """What ``build_incident`` reads of an alarm: its equipment and the instant diagnosed."""

    equipment: Equipment
    raised_at: datetime


# --- creating --------------------------------------------------------------------------------------


def resolve_versions(*, equipment: Sequence[Equipment], versions: Sequence[ModelVersion]) -> list[ModelVersion]:
    """The detector versions to replay: those given, else the active version of every enabled
    detector of the equipment (every equipment when none is given)."""
    if versions:
        tags = {e.tag for e in equipment}
        foreign = [f"{v.config.equipment.tag}/{v.config.name} v{v.version}" for v in versions if tags and v.config.equipment.tag not in tags]
        if foreign:
            raise BacktestError(f"detector versions not on the chosen equipment: {', '.join(foreign)}")
        return list(versions)
    active = ModelVersion.objects.filter(is_active=True, config__enabled=True).select_related("config__equipment")
    if equipment:
        active = active.filter(config__equipment__in=equipment)
    found = list(active.order_by("config__equipment__tag", "config__name"))
    if not found:
        where = ", ".join(e.tag for e in equipment) if equipment else "any equipment"
        raise BacktestError(f"no active detector version on {where}: train a detector first (POST /api/v1/detectors/<id>/train)")
    return found


def create_backtest(
    *, start: datetime, end: datetime, equipment: Sequence[Equipment] = (), versions: Sequence[ModelVersion] = (),
    diagnoser: DiagnoserVersion | None = None, diagnose: bool = True, rediagnose_after_s: Sequence[float] = (0.0, 300.0, 900.0),
    uncertain_below: float = 0.5, clear_grace_s: float = 1800.0, ground_truth: str = GroundTruth.INJECTIONS, name: str = "",
    user=None, enqueue: bool = True,
) -> BacktestRun:
    """A queued run; sent to a worker (queue ``cpu``) when the transaction commits. ``ground_truth``:
    score against the recorded fault injections, the corrective work orders, or both."""
    if end <= start:
        raise BacktestError(f"end {end.isoformat()} must be after start {start.isoformat()}")
    offsets = sorted({float(o) for o in rediagnose_after_s})
    if any(o < 0 for o in offsets):
        raise BacktestError(f"rediagnose_after_s must not be negative: {list(rediagnose_after_s)}")
    if not 0 <= uncertain_below <= 1:
        raise BacktestError(f"uncertain_below must be in [0, 1], got {uncertain_below}")
    if ground_truth not in GroundTruth.values:
        raise BacktestError(f"ground_truth must be one of {', '.join(GroundTruth.values)}, got {ground_truth!r}")
    chosen = resolve_versions(equipment=equipment, versions=versions)
    if diagnose and diagnoser is None:
        diagnoser = DiagnoserVersion.objects.filter(is_active=True).first()
    with transaction.atomic():
        run = BacktestRun.objects.create(
            name=name, start=start, end=end, diagnoser=diagnoser, diagnose=diagnose, rediagnose_after_s=offsets,
            uncertain_below=uncertain_below, clear_grace_s=clear_grace_s, ground_truth=ground_truth, created_by=user, stage="queued",
        )
        run.equipment.set(equipment)
        run.versions.set(chosen)
        BacktestProgress.objects.create(run=run, stage="queued", percent=0.0)
        if enqueue:
            run_id = run.pk
            transaction.on_commit(lambda: _enqueue(run_id))
    return run


def _enqueue(run_id: int) -> None:
    from phm.backtests.tasks import run_backtest

    run_backtest.apply_async(args=[run_id])


# --- running ---------------------------------------------------------------------------------------


def _report_progress(run: BacktestRun, stage: str, percent: float) -> None:
    BacktestProgress.objects.create(run=run, stage=stage[:64], percent=percent)
    BacktestRun.objects.filter(pk=run.pk).update(stage=stage[:64], percent=percent)


def run_backtest(*, run_id: int) -> BacktestRun:
    """Claim a queued run (conditional update: one worker only), replay, diagnose, report."""
    claimed = BacktestRun.objects.filter(pk=run_id, status=JobStatus.QUEUED).update(status=JobStatus.RUNNING, started_at=timezone.now())
    run = BacktestRun.objects.get(pk=run_id)
    if not claimed:
        log.info("backtest %s is %s already; nothing to do", run_id, run.status)
        return run
    try:
        report = _run(run)
    except Exception as exc:
        log.exception("backtest %s failed", run_id)
        BacktestRun.objects.filter(pk=run_id).update(status=JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now())
        BacktestProgress.objects.create(run=run, stage="failed", percent=run.percent)
    else:
        BacktestRun.objects.filter(pk=run_id).update(status=JobStatus.SUCCEEDED, report=report, finished_at=timezone.now(), stage="done", percent=100.0)
        BacktestProgress.objects.create(run=run, stage="done", percent=100.0)
    run.refresh_from_db()
    return run


def _run(run: BacktestRun) -> dict:
    versions = list(run.versions.select_related("config__equipment").order_by("config__equipment__tag", "config__name"))
    if not versions:
        raise BacktestError("the run names no detector version")
    truth = known_faults(ground_truth=run.ground_truth, equipment={v.config.equipment_id for v in versions}, start=run.start, end=run.end)
    faults = truth.faults
    grace = timedelta(seconds=run.clear_grace_s)
    timing = {"score_cpu_s": 0.0, "diagnose_cpu_s": 0.0, "steps": 0}
    wall = time.perf_counter()
    BacktestAlarm.objects.filter(run=run).delete()  # a retaken run starts clean
    BacktestSeries.objects.filter(run=run).delete()
    rows: list[AlarmRow] = []
    replay_share = 60.0 if run.diagnose else 90.0
    for index, version in enumerate(versions):
        config: DetectorConfig = version.config
        label = f"{config.equipment.tag}/{config.name}"
        base = 5 + replay_share * index / len(versions)
        _report_progress(run, f"scoring {label}", base)

        def on_chunk(fraction: float, base=base, label=label) -> None:
            _report_progress(run, f"scoring {label}", base + replay_share / len(versions) * fraction)

        result = replay_detector(config=config, version=version, start=run.start, end=run.end, on_chunk=on_chunk)
        timing["score_cpu_s"] += result.seconds
        timing["steps"] += result.steps
        BacktestSeries.objects.create(
            run=run, config=config, version=version, equipment=config.equipment, threshold=version.threshold, steps=result.steps,
            times=result.times, scores=result.scores, score_seconds=result.seconds,
        )
        for alarm in result.alarms:
            fault = match_fault(equipment=config.equipment.tag, raised_at=alarm.raised_at, faults=faults, grace=grace)
            source = fault.source if fault else "injection"
            stored = BacktestAlarm.objects.create(
                run=run, config=config, version=version, equipment=config.equipment, raised_at=alarm.raised_at, cleared_at=alarm.cleared_at,
                raise_score=alarm.raise_score, peak_score=alarm.peak_score, threshold=version.threshold,
                fault_id=fault.id if fault and source == "injection" else None, work_order_id=fault.id if fault and source == "work_order" else None,
            )
            rows.append(AlarmRow(config.equipment.tag, config.name, alarm.raised_at, alarm.cleared_at, alarm.peak_score,
                                 fault.id if fault else None, stored=stored, fault_source=source))
    if run.diagnose and rows:
        timing["diagnose_cpu_s"] = _diagnose_all(run, rows, {f.key: f.kind for f in faults}, progress_from=5 + replay_share)
    timing["wall_s"] = time.perf_counter() - wall
    _report_progress(run, "reporting", 98)
    equipment = sorted({v.config.equipment.tag for v in versions})
    report = build_report(
        start=run.start, end=run.end, equipment=equipment, faults=faults, alarms=rows, offsets_s=run.rediagnose_after_s if run.diagnose else [],
        uncertain_below=run.uncertain_below, clear_grace_s=run.clear_grace_s, ground_truth=run.ground_truth,
    )
    report["work_orders"] = {"used": truth.work_orders_used, "skipped": [asdict(s) for s in truth.skipped]} \
        if run.ground_truth != GroundTruth.INJECTIONS else None
    report["detectors"] = [
        {"equipment": v.config.equipment.tag, "detector": v.config.name, "method": v.method, "version": v.version, "threshold": v.threshold}
        for v in versions
    ]
    report["diagnoser"] = f"v{run.diagnoser.version}" if run.diagnose and run.diagnoser else None
    report["timing"] = timing
    return report


def _diagnose_all(run: BacktestRun, rows: list[AlarmRow], kinds: dict[tuple[str, int], str], *, progress_from: float) -> float:
    """Diagnose every alarm at each offset while it is active (and inside the range); returns CPU s."""
    from phm.analytics.diagnosis import DiagnosisConfig, loaded_diagnoser

    if run.diagnoser is None:
        raise BacktestError("no diagnoser is trained yet: run `python manage.py phm_diagnose --train-demo`, or start the backtest without diagnosis")
    diagnoser = loaded_diagnoser(run.diagnoser)
    config = DiagnosisConfig.from_env()
    clock = time.process_time()
    for index, row in enumerate(rows):
        if index % 10 == 0:
            _report_progress(run, f"diagnosing alarm {index + 1}/{len(rows)}", progress_from + (97 - progress_from) * index / len(rows))
        stored = row.stored
        expected = kinds.get(row.fault_key, "")
        for offset in run.rediagnose_after_s:
            at = row.raised_at + timedelta(seconds=offset)
            if at > run.end or (row.cleared_at is not None and at > row.cleared_at):
                break  # the alarm is no longer open (or the history ends): no re-diagnosis
            diagnosis = diagnose_at(diagnoser=diagnoser, equipment=stored.equipment, at=at, config=config)
            diagnosis.offset_s = offset
            row.diagnoses.append(diagnosis)
            BacktestDiagnosis.objects.create(
                alarm=stored, offset_s=offset, at=at, fault=diagnosis.fault, probability=diagnosis.probability,
                probabilities=diagnosis.probabilities, expected=expected,
                correct=(diagnosis.fault == expected) if expected and not diagnosis.error else None,
                uncertain=is_uncertain(diagnosis.fault, diagnosis.probability, run.uncertain_below) if not diagnosis.error else False,
                compute_ms=diagnosis.compute_ms, error=diagnosis.error,
            )
    return time.process_time() - clock


def diagnose_at(*, diagnoser, equipment: Equipment, at: datetime, config) -> DiagnosisRow:
    """The live diagnosis of ``equipment`` as if an alarm were raised at ``at`` (no language model:
    the explanation is not scored here)."""
    from phm.analytics.diagnosis import build_incident

    started = time.perf_counter()
    try:
        incident, _ = build_incident(alarm=_AlarmAt(equipment, at), config=config)
        if not incident.modalities():
            raise BacktestError(f"no sensor readings, log events or image of {equipment.tag} before {at.isoformat()}")
        result = diagnoser.diagnose(incident, explain=False, **_alarm_flag(diagnoser))
    except Exception as exc:  # one unreadable incident must not end the backtest; the row says why
        log.warning("backtest diagnosis of %s at %s failed", equipment.tag, at, exc_info=True)
        return DiagnosisRow(0.0, "", None, (time.perf_counter() - started) * 1000, error=f"{type(exc).__name__}: {exc}")
    return DiagnosisRow(0.0, result.fault, float(result.probability), (time.perf_counter() - started) * 1000,
                        probabilities={k: round(float(v), 4) for k, v in result.probabilities.items()})


def _alarm_flag(diagnoser) -> dict:
    """``alarm=True`` where the diagnoser takes it, as the live path passes it (a diagnosis of a
    raised alarm names "no known fault" instead of "normal"); older diagnosers lack the option."""
    import inspect

    return {"alarm": True} if "alarm" in inspect.signature(diagnoser.diagnose).parameters else {}
