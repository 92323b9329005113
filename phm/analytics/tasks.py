"""Celery tasks of the analytics app; thin wrappers over the training and scoring services.

Queues (phm/celery.py routes by name): ``train_detector`` → cpu by route, or gpu when the
detector's ``queue`` says so (given at send time); ``score_detector`` and ``score_due`` → cpu.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_process_init, worker_ready

from phm.analytics import scoring, training
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
