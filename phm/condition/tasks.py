"""Celery tasks of the condition app: thin wrappers over ``phm.condition.classification``.
Both land on the ``cpu`` queue (``phm.*`` route); a classifier with ``queue = gpu`` trains there."""

from __future__ import annotations

from celery import shared_task

from phm.condition import classification


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
