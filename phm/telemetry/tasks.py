"""Celery tasks of the telemetry app (queue ``ingest``); thin wrappers over services."""

from __future__ import annotations

from celery import shared_task

from phm.telemetry.jobs import run_file_job


@shared_task(name="phm.telemetry.tasks.ingest_file")
def ingest_file(job_id: int) -> dict:
    job = run_file_job(job_id=job_id)
    return {"job": job.pk, "status": job.status, "accepted": job.accepted}


@shared_task(name="phm.telemetry.tasks.maintain_readings")
def maintain_readings() -> str:
    """Partitions ahead and retention for the configured readings store (beat, hourly)."""
    import time

    from django.conf import settings

    from phm.telemetry.store import get_store
    from phm.telemetry.store.retention import maintain_store

    return maintain_store(get_store(), now_us=time.time_ns() // 1000, ahead_days=settings.PHM_PARTITION_AHEAD_DAYS)
