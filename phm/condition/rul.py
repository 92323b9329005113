"""Remaining useful life in the app: run-to-failure histories from work orders, RUL model versions
(train job with progress rows, versions, activate / roll back), estimates stored as rows, and the
alert when the interval's lower bound falls below the equipment's planning lead time.

A **run-to-failure history** is the readings of one machine of an equipment type from the start
of a run (its first reading, or the end of the previous work order that ``ends_run``) to a
failure: a work order with ``ends_run`` and ``failed_at``. Every machine of the same type
contributes its histories; sensors are matched across machines by their ``measurement``.
Readings are averaged over steps of ``step_s`` seconds (one step is one "cycle" of
``models.rul.RULEstimator``), so RUL in steps times ``step_s`` is RUL in time.

The alert goes through the alarm services as the detectors' alarms do (source ``rul``): the
score is ``planning lead time / lower bound``, the threshold 1.0, so the alarm is raised once
when the lower bound first drops below the lead time, follows later estimates while it stays
below (no new alarm), and clears when it rises back above the lead time (a repair).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from phm.assets.models import Equipment, Sensor, WorkOrder
from phm.condition.health import run_start, step_frame
from phm.condition.models import RULEstimate, RULModelVersion, RULTrainingJob, RULTrainingProgress
from phm.redaction import job_error
from phm.training_jobs import run_claimed_job


ALARM_SOURCE = "rul"
METHODS = ("lightgbm", "inceptiontime")
#: Defaults of a RUL model trained in the app (the C-MAPSS product path uses them too).
DEFAULT_PARAMS = {"rul_cap": 125.0, "window": 30, "interval": 0.8, "interval_folds": 5}
#: Fewer histories than this cannot calibrate the interval's folds.
MIN_HISTORIES = 5
DAY_S = 86400.0


def allowed_params() -> set[str]:
    """RULEstimator keyword parameters an engineer may set when training (anything else is a typo
    that would otherwise be ignored silently)."""
    from models.classification import TrainingSettings
    from models.rul import LIGHTGBM_DEFAULTS

    return {"rul_cap", "window", "normalisation", "baseline_cycles", "validation_fraction", "train_stride", "seed", "interval",
            "interval_folds", "interval_bins", "n_models", "nf", *LIGHTGBM_DEFAULTS, *TrainingSettings.__dataclass_fields__}


class RULError(Exception):
    """A RUL request cannot be done as asked; the message says why."""


def artifacts_root() -> Path:
    return Path(settings.DATA_ROOT) / "rul"


# --- run-to-failure histories -----------------------------------------------------------------


@dataclass(frozen=True)
class History:
    work_order: WorkOrder
    equipment: Equipment
    start: datetime | None  # None: from the machine's first reading
    end: datetime  # the failure


def run_to_failure_histories(*, equipment_type: str) -> list[History]:
    """Every run to failure recorded for machines of ``equipment_type``, oldest first per machine."""
    orders = (WorkOrder.objects.filter(equipment__equipment_type=equipment_type, ends_run=True)
              .select_related("equipment").order_by("equipment__tag", "opened_at"))
    histories, previous_end = [], {}
    for order in orders:
        start = previous_end.get(order.equipment_id)
        previous_end[order.equipment_id] = order.closed_at or order.failed_at or order.opened_at
        if order.failed_at is not None:  # a repair before failure closes a run but is no failure history
            histories.append(History(order, order.equipment, start, order.failed_at))
    return histories


def sensors_by_measurement(*, equipment: Equipment, measurements: list[str], enabled_only: bool = True) -> list[Sensor] | None:
    """The equipment's sensor for each measurement (first by tag), or None when one is missing.
    Histories read disabled sensors too (a retired machine's past is still history)."""
    found = {}
    sensors = equipment.sensors.filter(measurement__in=measurements)
    for sensor in (sensors.filter(enabled=True) if enabled_only else sensors).order_by("tag"):
        found.setdefault(sensor.measurement, sensor)
    return None if len(found) < len(measurements) else [found[m] for m in measurements]


def common_measurements(histories: list[History]) -> list[str]:
    """Measurements every machine with a history has a sensor for, in the order the first
    machine's sensors were configured (a stable column order for the model)."""
    if not histories:
        return []
    per_machine = {h.equipment.pk: h.equipment for h in histories}
    sets = [set(e.sensors.exclude(measurement="").values_list("measurement", flat=True)) for e in per_machine.values()]
    common = set.intersection(*sets)
    ordered = histories[0].equipment.sensors.exclude(measurement="").order_by("pk").values_list("measurement", flat=True)
    return list(dict.fromkeys(m for m in ordered if m in common))


def history_frame(*, histories: list[History], measurements: list[str], step_s: float) -> pd.DataFrame:
    """The histories as one ``unit``/``cycle`` frame (unit = the work order's id), steps ending at
    the failure."""
    parts = []
    for history in histories:
        sensors = sensors_by_measurement(equipment=history.equipment, measurements=measurements, enabled_only=False)
        if sensors is None:
            continue
        start = history.start or run_start(equipment=history.equipment, before=history.end, enabled_only=False)
        if start is None:
            continue
        # Align the steps to end at the failure, so the last step is the last one before it.
        n_steps = int((history.end - start).total_seconds() // step_s)
        aligned = history.end - timedelta(seconds=n_steps * step_s)
        frame = step_frame(sensors=sensors, columns=measurements, start=aligned, end=history.end, step_s=step_s).dropna()
        if len(frame) < 2:
            continue
        parts.append(frame.reset_index(drop=True).assign(unit=history.work_order.pk, cycle=range(1, len(frame) + 1)))
    if not parts:
        return pd.DataFrame(columns=["unit", "cycle", *measurements])
    return pd.concat(parts, ignore_index=True)[["unit", "cycle", *measurements]]


# --- training jobs and versions ----------------------------------------------------------------


def start_rul_training(
    *, equipment_type: str, method: str = "lightgbm", params: dict | None = None, step_s: float = DAY_S, activate: bool = True, user=None,
    enqueue: bool = True,
) -> RULTrainingJob:
    """Queue a RUL training job for the type's histories (checked now, so a hopeless request is
    refused with the reason rather than failing later)."""
    if method not in METHODS:
        raise RULError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not 60 <= step_s <= 30 * DAY_S:
        raise RULError(f"step_s must be between 60 s and 30 days, got {step_s:g}")
    histories = run_to_failure_histories(equipment_type=equipment_type)
    if len(histories) < MIN_HISTORIES:
        raise RULError(
            f"{len(histories)} run-to-failure histories for equipment type {equipment_type!r}; a RUL model needs at least {MIN_HISTORIES} "
            "(work orders with ends_run and failed_at on machines of that type)"
        )
    with transaction.atomic():
        job = RULTrainingJob.objects.create(equipment_type=equipment_type, method=method, params=params or {}, step_s=step_s,
                                            activate=activate, created_by=user, stage="queued")
        RULTrainingProgress.objects.create(job=job, stage="queued", percent=0.0)
        if enqueue:
            transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _enqueue(job_id: int) -> None:
    from phm.condition.tasks import train_rul

    train_rul.delay(job_id)


def _report(job: RULTrainingJob, stage: str, percent: float) -> None:
    RULTrainingProgress.objects.create(job=job, stage=stage, percent=percent)
    RULTrainingJob.objects.filter(pk=job.pk).update(stage=stage, percent=percent)


def run_rul_training(*, job_id: int) -> RULTrainingJob:
    """Claim a queued job (conditional update: one worker only), train, version, maybe activate."""
    return run_claimed_job(job_model=RULTrainingJob, progress_model=RULTrainingProgress, job_id=job_id, kind="RUL training", train=_train)


def _train(job: RULTrainingJob) -> RULModelVersion:
    from models.rul import RULEstimator

    _report(job, "loading histories", 5.0)
    histories = run_to_failure_histories(equipment_type=job.equipment_type)
    measurements = common_measurements(histories)
    if not measurements:
        raise RULError(f"the machines with histories of type {job.equipment_type!r} share no sensor measurement")
    frame = history_frame(histories=histories, measurements=measurements, step_s=job.step_s)
    used = frame["unit"].nunique()
    if used < MIN_HISTORIES:
        raise RULError(f"only {used} histories have readings; need {MIN_HISTORIES}")
    params = {**DEFAULT_PARAMS, **job.params}
    folds = int(params.get("interval_folds", 5))

    def on_fold(done: int, total: int) -> None:
        _report(job, f"interval fold {done}/{total}", 40.0 + 50.0 * done / total)

    _report(job, "fitting", 20.0)
    estimator = RULEstimator(job.method, on_fold=on_fold, **params)
    estimator.fit(frame)
    _report(job, "saving", 95.0)
    used_ids = set(frame["unit"].unique().tolist())
    numbers = [h.work_order.number for h in histories if h.work_order.pk in used_ids]
    metrics = {"training_steps": int(len(frame)), "histories_total": len(histories), "interval_folds": folds,
               "training_log": {"epochs_run": estimator.training_log.epochs_run, "seconds": round(estimator.training_log.seconds, 2)}}
    version = save_version(job=job, estimator=estimator, measurements=measurements, params=params, numbers=numbers, metrics=metrics)
    _report(job, "done", 100.0)
    return version


def save_version(*, job: RULTrainingJob, estimator, measurements: list[str], params: dict, numbers: list[str], metrics: dict) -> RULModelVersion:
    with transaction.atomic():
        number = (RULModelVersion.objects.select_for_update().filter(equipment_type=job.equipment_type)
                  .aggregate(m=Max("version"))["m"] or 0) + 1
        relative = Path(job.equipment_type) / f"v{number}"
        folder = artifacts_root() / relative
        if folder.exists():
            shutil.rmtree(folder)  # left by a crashed run that never recorded its version
        estimator.save(folder)
        version = RULModelVersion.objects.create(
            equipment_type=job.equipment_type, version=number, method=job.method, params=params, measurements=measurements, step_s=job.step_s,
            interval_level=float(estimator.interval), histories=estimator.n_units_, history_work_orders=numbers,
            artifact=str(Path("rul") / relative), metrics=metrics,
        )
        if job.activate:
            activate_version(version=version)
    return version


@transaction.atomic
def activate_version(*, version: RULModelVersion) -> RULModelVersion:
    RULModelVersion.objects.filter(equipment_type=version.equipment_type, is_active=True).exclude(pk=version.pk).update(is_active=False)
    RULModelVersion.objects.filter(pk=version.pk).update(is_active=True, activated_at=timezone.now())
    version.refresh_from_db()
    return version


@transaction.atomic
def rollback(*, equipment_type: str) -> RULModelVersion:
    """Activate the newest version older than the active one."""
    active = RULModelVersion.objects.select_for_update().filter(equipment_type=equipment_type, is_active=True).first()
    if active is None:
        raise RULError(f"equipment type {equipment_type!r} has no active RUL model to roll back from")
    previous = RULModelVersion.objects.filter(equipment_type=equipment_type, version__lt=active.version).order_by("-version").first()
    if previous is None:
        raise RULError(f"RUL model {equipment_type} v{active.version} is the oldest; nothing to roll back to")
    return activate_version(version=previous)


def active_version(*, equipment_type: str) -> RULModelVersion | None:
    return RULModelVersion.objects.filter(equipment_type=equipment_type, is_active=True).first()


_loaded: dict[tuple[str, datetime], object] = {}


def load_estimator(version: RULModelVersion):
    """The version's estimator, loaded once per process (keyed by artifact and creation time)."""
    from models.rul import RULEstimator

    key = (version.artifact, version.created_at)
    if key not in _loaded:
        _loaded[key] = RULEstimator.load(Path(settings.DATA_ROOT) / version.artifact)
    return _loaded[key]


# --- estimates and the alert -------------------------------------------------------------------


@dataclass(frozen=True)
class EstimateOutcome:
    estimate: RULEstimate | None
    status: str  # ok, no_model, not_enough_history, missing_sensors, no_readings, model_unavailable
    message: str


def estimate_rul(*, equipment: Equipment, now: datetime | None = None) -> EstimateOutcome:
    """Estimate the equipment's RUL now with its type's active model; store the row (once per
    version and time) and raise or follow the lead-time alert."""
    now = now or timezone.now()
    version = active_version(equipment_type=equipment.equipment_type)
    if version is None:
        histories = len(run_to_failure_histories(equipment_type=equipment.equipment_type))
        if histories < MIN_HISTORIES:
            return EstimateOutcome(None, "not_enough_history", not_enough_history_message(equipment.equipment_type, histories))
        return EstimateOutcome(None, "no_model", f"{histories} run-to-failure histories of type {equipment.equipment_type}, but no RUL model is "
                                                 "trained and active for it yet (an engineer trains one: POST /api/v1/rul-models/train)")
    sensors = sensors_by_measurement(equipment=equipment, measurements=version.measurements)
    if sensors is None:
        return EstimateOutcome(None, "missing_sensors", f"{equipment.tag} lacks a sensor for one of the model's measurements {version.measurements}")
    start = run_start(equipment=equipment, before=now)
    if start is None:
        return EstimateOutcome(None, "no_readings", f"{equipment.tag} has no readings in its current run")
    frame = step_frame(sensors=sensors, columns=version.measurements, start=start, end=now, step_s=version.step_s).dropna()
    if frame.empty:
        return EstimateOutcome(None, "no_readings", f"{equipment.tag} has no whole step of {version.step_s:g} s of readings in its current run")
    try:
        load_estimator(version)
    except (OSError, ValueError) as exc:  # artifact deleted or damaged: say so, never a server error
        return EstimateOutcome(None, "model_unavailable", f"RUL model {version.equipment_type} v{version.version} cannot be loaded: {job_error(exc)}")
    return EstimateOutcome(store_estimate(equipment=equipment, version=version, frame=frame, run_started=start), "ok", "")


def not_enough_history_message(equipment_type: str, histories: int) -> str:
    return (f"not enough history: {histories} run-to-failure histor{'y' if histories == 1 else 'ies'} for equipment type {equipment_type}; "
            f"a RUL model needs at least {MIN_HISTORIES} (failure work orders with ends_run and failed_at)")


def store_estimate(*, equipment: Equipment, version: RULModelVersion, frame: pd.DataFrame, run_started: datetime) -> RULEstimate:
    estimator = load_estimator(version)
    units = frame.reset_index(drop=True).assign(unit=1, cycle=range(1, len(frame) + 1))
    row = estimator.predict_interval(units).iloc[0]
    days = version.step_s / DAY_S
    as_of = (frame.index[-1] + pd.Timedelta(seconds=version.step_s)).to_pydatetime()
    estimate, _ = RULEstimate.objects.get_or_create(
        equipment=equipment, version=version, as_of=as_of,
        defaults={
            "rul_days": float(row["rul"]) * days, "lower_days": float(row["lower"]) * days, "upper_days": float(row["upper"]) * days,
            "level": version.interval_level, "cap_days": float(estimator.rul_cap) * days, "histories": version.histories,
            "run_start": run_started, "steps": len(frame),
        },
    )
    raise_lead_time_alert(estimate=estimate)
    return estimate


def raise_lead_time_alert(*, estimate: RULEstimate) -> None:
    """Through the alarm services (so SCADA hears it via the outbox): raised once when the lower
    bound drops below the planning lead time, updated (not re-raised) while it stays below. The
    score is lead / lower bound (above 1: the lower bound is inside the lead time); the text says
    it in days, as a planner reads it."""
    from phm.alarms.services import AlarmPolicy, Sample, evaluate_scores

    lead = estimate.equipment.planning_lead_time_days
    score = lead / max(estimate.lower_days, 1e-3)
    evaluate_scores(
        equipment=estimate.equipment, source=ALARM_SOURCE, samples=[Sample(estimate.as_of, score)], policy=AlarmPolicy(threshold=1.0, deadband=0.1),
        describe=lambda _sample: lead_time_message(estimate=estimate),
    )


def _days(value: float) -> str:
    # Whole days read best; under one day the decimal is the whole information.
    return f"{value:.0f}" if value >= 1 else f"{value:.1f}"


def lead_time_message(*, estimate: RULEstimate) -> str:
    """e.g. "P-101: remaining useful life 3-52 days (80 % interval, from 16 run-to-failure
    histories) is below the 14-day planning lead time"."""
    lead = estimate.equipment.planning_lead_time_days
    histories = f"{estimate.histories} run-to-failure histor{'y' if estimate.histories == 1 else 'ies'}"
    return (f"{estimate.equipment.tag}: remaining useful life {_days(estimate.lower_days)}-{_days(estimate.upper_days)} days "
            f"({estimate.level * 100:g} % interval, from {histories}) is below the {lead:g}-day planning lead time")


def latest_estimate(*, equipment: Equipment) -> RULEstimate | None:
    return RULEstimate.objects.filter(equipment=equipment).select_related("version").order_by("-as_of", "-id").first()


def latest_by_equipment() -> dict[int, RULEstimate]:
    """The newest estimate of every equipment that has one (one query)."""
    from django.db.models import OuterRef, Subquery

    newest = RULEstimate.objects.filter(equipment=OuterRef("pk")).order_by("-as_of", "-id").values("id")[:1]
    ids = Equipment.objects.annotate(latest=Subquery(newest)).exclude(latest=None).values_list("latest", flat=True)
    return {e.equipment_id: e for e in RULEstimate.objects.filter(id__in=list(ids)).select_related("version")}
