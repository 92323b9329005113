"""Celery tasks of the telemetry app (queue ``ingest``); thin wrappers over services."""

from __future__ import annotations

from celery import shared_task

from phm.telemetry.jobs import run_file_job


@shared_task(name="phm.telemetry.tasks.ingest_file")
def ingest_file(job_id: int) -> dict:
    job = run_file_job(job_id=job_id)
    return {"job": job.pk, "status": job.status, "accepted": job.accepted}
