"""Celery tasks of the analytics app; thin wrappers over the training and scoring services.

Queues (phm/celery.py routes by name): ``train_detector`` → cpu by route, or gpu when the
detector's ``queue`` says so (given at send time); ``score_detector`` and ``score_due`` → cpu;
``diagnose``, ``explain_diagnosis`` and ``retrain_diagnoser`` → the queue ``PHM_DIAGNOSIS_QUEUE`` / ``PHM_GPU_WORKER``
name (``phm.celery.route_diagnosis``, whoever sends them).
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_process_init, worker_ready

from phm.analytics import diagnoser_training, diagnosis, scoring, training
from phm.analytics.models import DetectorConfig

log = logging.getLogger(__name__)


@worker_ready.connect
def _load_detectors_in_solo_worker(sender=None, **_) -> None:
    """Solo / thread pools score in the worker process itself: load there (prefork children load
    in ``worker_process_init`` instead, so the parent never holds models)."""
    pool = getattr(sender, "pool", None)
    if pool is not None and "prefork" not in type(pool).__module__:
        _load_detectors_after_fork()


@worker_process_init.connect
def _load_detectors_after_fork(**_) -> None:
    """Models load once per worker process, after the fork, never at import."""
    from django.db import close_old_connections

    close_old_connections()  # a connection inherited through fork must not be shared
    try:
        log.info("loaded %d active detector(s) into this worker", scoring.warm_up())
    except Exception:  # the database may not be migrated yet; scoring loads lazily then
        log.warning("detector warm-up skipped", exc_info=True)
    if diagnosis.DiagnosisConfig.from_env().warm_up:
        try:
            log.info("diagnoser %s into this worker", "loaded" if diagnosis.warm_up() else "not trained yet; nothing loaded")
        except Exception:  # a broken artifact must not stop the worker; the diagnose task reports it
            log.warning("diagnoser warm-up skipped", exc_info=True)


@shared_task(name="phm.analytics.tasks.train_detector", ignore_result=True)
def train_detector(job_id: int) -> dict:
    job = training.run_training(job_id=job_id)
    return {"job": job.pk, "status": job.status, "version": job.result_id}


@shared_task(name="phm.analytics.tasks.score_detector", ignore_result=True)
def score_detector(config_id: int) -> dict:
    config = DetectorConfig.objects.select_related("equipment__line__area__site").get(pk=config_id)
    result = scoring.score_incremental(config=config)
    return {"config": config_id, "steps": result.steps, "chunks": result.chunks, "transitions": result.transitions, "stopped": result.stopped}


@shared_task(name="phm.analytics.tasks.score_due", ignore_result=True)
def score_due() -> list[int]:
    """Beat: queue a scoring run for each detector whose interval has passed."""
    claimed = scoring.due_configs()
    for config_id in claimed:
        score_detector.delay(config_id)
    return claimed


@shared_task(name="phm.analytics.tasks.diagnose", ignore_result=True)
def diagnose(alarm_id: int, trigger: str = "raise", stage: str = "") -> dict:
    """Root-cause diagnosis of a raised alarm (or a re-diagnosis ``stage`` of it); a second
    delivery of the same raise or stage stores nothing."""
    from phm.alarms.models import Alarm

    try:
        stored = diagnosis.run_diagnosis(alarm_id=alarm_id, trigger=trigger, stage=stage)
    except Alarm.DoesNotExist:
        log.warning("alarm %s is gone; nothing to diagnose", alarm_id)
        return {"alarm": alarm_id, "status": "missing"}
    if stored is None:
        return {"alarm": alarm_id, "status": "already diagnosed"}
    return {"alarm": alarm_id, "diagnosis": stored.pk, "status": stored.status, "fault": stored.fault, "latency_ms": stored.latency_ms}


@shared_task(name="phm.analytics.tasks.rediagnose_due", ignore_result=True)
def rediagnose_due() -> list[str]:
    """Beat: send the re-diagnoses the open alarms are owed (phm.analytics.rediagnosis)."""
    from phm.analytics import rediagnosis

    return [f"{d.alarm_id}:{d.stage}" for d in rediagnosis.send_due()]


@shared_task(name="phm.analytics.tasks.explain_diagnosis", ignore_result=True)
def explain_diagnosis(diagnosis_id: int) -> dict:
    """The language model's explanation of a stored diagnosis (PHM_DIAGNOSIS_EXPLAIN=after)."""
    row = diagnosis.explain_stored(diagnosis_id=diagnosis_id)
    if row is None:
        return {"diagnosis": diagnosis_id, "status": "nothing to explain"}
    return {"diagnosis": diagnosis_id, "source": row.result.get("explanation_source"), "explanation_ms": row.explanation_ms}


@shared_task(name="phm.analytics.tasks.retrain_diagnoser", ignore_result=True)
def retrain_diagnoser(job_id: int) -> dict:
    """Run a queued diagnoser job: the demo model from simulated incidents, or an update of the
    active diagnoser from engineer feedback with a replay set."""
    job = diagnoser_training.run_job(job_id=job_id)
    return {"job": job.pk, "kind": job.kind, "status": job.status, "version": job.result_id}
