"""Celery tasks of the condition app; thin wrappers over its services (cpu queue, ``phm.*`` route).

``train_classifier`` runs a fault-classifier training job (a classifier with ``queue = gpu`` trains
there); ``classify_new_capture`` classifies one capture with every active classifier watching its
equipment (the ingestion service sends it through ``classification.enqueue_classification``).
``train_rul`` runs a queued RUL training job; ``update_health_and_rul`` (beat, every
``PHM_HEALTH_TICK_S``, default 3600 s) recomputes each equipment's health indicator and, where its
type has an active RUL model, stores a new RUL estimate (which raises the lead-time alert).
"""

from __future__ import annotations

import logging

from celery import shared_task

from phm.condition import classification, health, rul

log = logging.getLogger(__name__)


@shared_task(name="phm.condition.tasks.train_classifier", ignore_result=True)
def train_classifier(job_id: int) -> dict:
    job = classification.run_training(job_id=job_id)
    return {"job": job.pk, "status": job.status}


@shared_task(name="phm.condition.tasks.classify_new_capture", ignore_result=True)
def classify_new_capture(capture_id: int) -> dict:
    """Classify one capture with every active classifier watching its equipment (the ingestion
    service sends this through ``classification.enqueue_classification``)."""
    rows = classification.classify_capture(capture_id=capture_id)
    return {"capture": capture_id, "classifications": [row.pk for row in rows]}


@shared_task(name="phm.condition.tasks.train_rul", ignore_result=True)
def train_rul(job_id: int) -> dict:
    job = rul.run_rul_training(job_id=job_id)
    return {"job": job.pk, "status": job.status, "version": job.result_id}


@shared_task(name="phm.condition.tasks.update_health_and_rul", ignore_result=True)
def update_health_and_rul() -> dict:
    from phm.assets.models import Equipment

    done = {"health": 0, "rul": 0, "failed": []}
    for equipment in Equipment.objects.all():
        try:
            if health.update_health(equipment=equipment).points:
                done["health"] += 1
            if rul.estimate_rul(equipment=equipment).estimate is not None:
                done["rul"] += 1
        except Exception:  # one machine's bad data must not stop the others
            log.exception("health / RUL update of %s failed", equipment.tag)
            done["failed"].append(equipment.tag)
    return done
