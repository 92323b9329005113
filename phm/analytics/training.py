"""Training jobs and model versions: queue a job, run it in a worker (progress as rows), version
the trained detector with its metrics and training range, one active version per detector,
activation and rollback."""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from phm.analytics.models import DetectorConfig, DetectorScope, ModelVersion, ThresholdKind, TrainingJob, TrainingProgress
from phm.telemetry.models import FaultInjection
from phm.telemetry.selectors import readings_frame
from phm.training_jobs import run_claimed_job


#: Fewer grid steps than this is too little to fit and calibrate a detector.
MIN_TRAINING_STEPS = 50
#: After a recorded fault ends (its repair) the unit takes a while to settle: bearing and winding
#: temperatures lag their load by 15-30 min, so an hour (two to four time constants) is left out of
#: training with the fault; a detector that learnt the recovery as normal had a threshold 3x too high.
FAULT_SETTLE = timedelta(hours=1)


class TrainingError(Exception):
    """Training cannot run as requested; the message says why."""


def artifacts_root() -> Path:
    return Path(settings.DATA_ROOT) / "detectors"


def start_training(
    *, config: DetectorConfig, train_start: datetime, train_end: datetime, activate: bool = True, user=None,
    member_ranges: dict | None = None,
) -> TrainingJob:
    """Create a queued job and send it to the config's queue once the transaction commits."""
    if train_end <= train_start:
        raise TrainingError(f"train_end {train_end.isoformat()} must be after train_start {train_start.isoformat()}")
    if not config.sensors.exists():
        raise TrainingError(f"detector {config} has no sensors")
    with transaction.atomic():
        job = TrainingJob.objects.create(
            config=config, queue=config.queue, train_start=train_start, train_end=train_end, activate=activate, created_by=user, stage="queued",
            member_ranges=member_ranges or {},
        )
        TrainingProgress.objects.create(job=job, stage="queued", percent=0.0)
        transaction.on_commit(lambda: _enqueue(job))
    return job


def _enqueue(job: TrainingJob) -> None:
    from phm.analytics.tasks import train_detector

    # The route sends train_* to cpu; an explicit queue sends GPU detectors to the gpu workers.
    train_detector.apply_async(args=[job.pk], queue=job.queue, routing_key=job.queue)


def grid_frame(*, config: DetectorConfig, start: datetime, end: datetime, sensors=None, using: str = "default") -> pd.DataFrame:
    """Readings of the config's sensors averaged onto its ``stride_s`` grid (aligned to the epoch,
    so incremental runs land on the same steps). A sensor missing from a step carries its last
    value forward (sensors sample at different moments); a step with no reading at all is a gap
    and stays out, so downtime is never filled with invented values."""
    sensors = sensors if sensors is not None else list(config.sensors.using(using).order_by("tag"))
    raw = readings_frame(sensors=sensors, start=start, end=end, using=using)
    if raw.empty:
        return raw
    step = pd.Timedelta(seconds=config.stride_s)
    grid = raw.resample(step, origin="epoch", label="left", closed="left").mean()
    return grid.dropna(how="all").ffill().dropna()


def healthy_frames(config: DetectorConfig, frame: pd.DataFrame, start: datetime, end: datetime) -> tuple[list[pd.DataFrame], int]:
    """Split the training frame around injected-fault periods and the recovery after each
    (``FAULT_SETTLE``), which must not be learnt as normal."""
    faults = list(FaultInjection.objects.filter(equipment=config.equipment, start__lt=end, end__gt=start - FAULT_SETTLE).order_by("start"))
    if not faults:
        return [frame], 0
    keep = np.ones(len(frame), dtype=bool)
    for fault in faults:
        keep &= ~((frame.index >= fault.start) & (frame.index < fault.end + FAULT_SETTLE))
    kept = np.flatnonzero(keep)
    segments = np.split(kept, np.flatnonzero(np.diff(kept) > 1) + 1) if len(kept) else []
    return [frame.iloc[s] for s in segments if len(s) >= MIN_TRAINING_STEPS], len(faults)


class _Progress:
    """Writes a TrainingProgress row and updates the job row for each report."""

    def __init__(self, job: TrainingJob) -> None:
        self.job = job

    def report(self, *, stage: str, percent: float, epoch=None, epochs=None, loss=None, val_loss=None, eta_s=None) -> None:
        TrainingProgress.objects.create(
            job=self.job, stage=stage, percent=percent, epoch=epoch, epochs=epochs, loss=loss, val_loss=val_loss, eta_s=eta_s
        )
        TrainingJob.objects.filter(pk=self.job.pk).update(stage=stage, percent=percent, epoch=epoch, epochs=epochs, loss=loss, eta_s=eta_s)

    def on_epoch(self, progress) -> None:  # models.training.EpochProgress
        fraction = progress.epoch / max(progress.epochs, 1)
        self.report(
            stage="fitting", percent=20 + 60 * fraction, epoch=progress.epoch, epochs=progress.epochs,
            loss=float(progress.loss), val_loss=None if progress.val_loss is None else float(progress.val_loss), eta_s=float(progress.eta_s),
        )


def run_training(*, job_id: int) -> TrainingJob:
    """Claim a queued job (conditional update: one worker only), train, version, maybe activate."""
    return run_claimed_job(job_model=TrainingJob, progress_model=TrainingProgress, job_id=job_id, kind="training",
                           train=lambda job: _train(job, _Progress(job)), select_related=("config__equipment",))


def _train(job: TrainingJob, progress: _Progress) -> ModelVersion:
    from models.detectors import AnomalyDetector

    config = job.config
    if config.scope == DetectorScope.FLEET:
        from phm.analytics.fleet import train_fleet

        return train_fleet(job=job, progress=progress)
    progress.report(stage="loading data", percent=5)
    frame = grid_frame(config=config, start=job.train_start, end=job.train_end)
    if len(frame) < MIN_TRAINING_STEPS:
        raise TrainingError(f"only {len(frame)} steps of {config.stride_s:g} s between {job.train_start.isoformat()} and {job.train_end.isoformat()}; need {MIN_TRAINING_STEPS}")
    frames, excluded = healthy_frames(config, frame, job.train_start, job.train_end)
    if not frames:
        raise TrainingError("no fault-free stretch of training data is long enough")
    progress.report(stage="fitting", percent=20)
    clock = time.perf_counter()
    detector = AnomalyDetector(method=config.method, **config.params).fit(frames if len(frames) > 1 else frames[0], on_epoch=progress.on_epoch)
    fit_seconds = time.perf_counter() - clock
    progress.report(stage="evaluating", percent=85)
    train_scores = np.concatenate([detector.score(f).to_numpy() for f in frames])
    threshold = threshold_for(config, train_scores)
    metrics = training_metrics(config=config, detector=detector, frames=frames, train_scores=train_scores, threshold=threshold, fit_seconds=fit_seconds)
    progress.report(stage="saving", percent=95)
    version = save_version(config=config, detector=detector, metrics=metrics, threshold=threshold, train_start=job.train_start,
                           train_end=job.train_end, excluded=excluded, activate=job.activate)
    progress.report(stage="done", percent=100)
    return version


def training_metrics(*, config: DetectorConfig, detector, frames: list[pd.DataFrame], train_scores: np.ndarray, threshold: float,
                     fit_seconds: float) -> dict:
    """What a version records about its training data and fit."""
    metrics = {
        "fit_seconds": round(fit_seconds, 3),
        "train_steps": int(sum(len(f) for f in frames)),
        "train_segments": len(frames),
        "train_score_p50": float(np.nanquantile(train_scores, 0.5)),
        "train_score_p99": float(np.nanquantile(train_scores, 0.99)),
        "train_score_max": float(np.nanmax(train_scores)),
        "train_fraction_above_threshold": float(np.mean(train_scores >= threshold)),
        "threshold_kind": config.threshold_kind,
        "scope": config.scope,
    }
    if detector.history is not None and detector.history.epochs:
        metrics["final_loss"] = float(detector.history.final_loss)
        metrics["epochs"] = len(detector.history.epochs)
    return metrics


def save_version(*, config: DetectorConfig, detector, metrics: dict, threshold: float, train_start: datetime, train_end: datetime,
                 excluded: int, activate: bool) -> ModelVersion:
    """Write the detector's artifact and its next version row (activated when asked)."""
    with transaction.atomic():
        # Lock the config so two jobs finishing at once take distinct version numbers.
        DetectorConfig.objects.select_for_update().filter(pk=config.pk).first()
        number = (config.versions.aggregate(m=Max("version"))["m"] or 0) + 1
        relative = Path(f"{config.pk}") / f"v{number}"
        folder = artifacts_root() / relative
        if folder.exists():
            shutil.rmtree(folder)  # left by a crashed run that never recorded its version
        detector.save(folder)
        version = ModelVersion.objects.create(
            config=config, version=number, method=config.method, params=config.params, artifact=str(relative), threshold=threshold,
            metrics=metrics, train_start=train_start, train_end=train_end, train_rows=metrics["train_steps"], excluded_faults=excluded,
        )
        if activate:
            activate_version(version=version)
    return version


def threshold_for(config: DetectorConfig, train_scores: np.ndarray) -> float:
    if config.threshold_kind == ThresholdKind.FIXED:
        if config.threshold_value is None:
            raise TrainingError("threshold_kind 'fixed' needs threshold_value")
        return float(config.threshold_value)
    if config.threshold_kind == ThresholdKind.QUANTILE:
        return float(config.threshold_margin * np.nanquantile(train_scores, config.threshold_quantile))
    return 1.0  # the detector's scores are already divided by its calibrated threshold


@transaction.atomic
def activate_version(*, version: ModelVersion) -> ModelVersion:
    """Make ``version`` the one active version of its detector (the partial unique index holds it)."""
    ModelVersion.objects.filter(config=version.config_id, is_active=True).exclude(pk=version.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True, activated_at=timezone.now())
    version.refresh_from_db()
    return version


@transaction.atomic
def rollback(*, config: DetectorConfig) -> ModelVersion:
    """Activate the newest version older than the active one."""
    active = ModelVersion.objects.select_for_update().filter(config=config, is_active=True).first()
    if active is None:
        raise TrainingError(f"detector {config} has no active version to roll back from")
    previous = ModelVersion.objects.filter(config=config, version__lt=active.version).order_by("-version").first()
    if previous is None:
        raise TrainingError(f"detector {config} v{active.version} is its oldest version; nothing to roll back to")
    return activate_version(version=previous)


def active_version(*, config: DetectorConfig) -> ModelVersion | None:
    return ModelVersion.objects.filter(config=config, is_active=True).first()
