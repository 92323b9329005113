"""Celery tasks of the assistant (queue ``cpu``); thin wrappers over services."""

from __future__ import annotations

from celery import shared_task

from phm.assistant.services import run_document_job


@shared_task(name="phm.assistant.tasks.ingest_document_job")
def ingest_document_job(job_id: int) -> dict:
    job = run_document_job(job_id=job_id)
    return {"job": job.pk, "status": job.status, "chunks": job.chunks_done}
