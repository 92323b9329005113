"""Celery tasks of the analytics app; thin wrappers over the training and scoring services.

Queues (phm/celery.py routes by name): ``train_detector`` → cpu by route, or gpu when the
detector's ``queue`` says so (given at send time); ``score_detector`` and ``score_due`` → cpu.
"""

from __future__ import annotations

from celery import shared_task

from phm.analytics import scoring, training
from phm.analytics.models import DetectorConfig


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
