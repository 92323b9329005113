"""The life of a queued training job, shared by detector, fault-classifier and RUL training:
claim it with a conditional update (one worker only), train, and record the outcome on the job row
(a failure keeps its redacted error and a final "failed" progress row)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from django.db import models
from django.utils import timezone

from phm.analytics.models import JobStatus
from phm.redaction import job_error

log = logging.getLogger(__name__)

Job = TypeVar("Job", bound=models.Model)


def run_claimed_job(
    *, job_model: type[Job], progress_model: type[models.Model], job_id: int, train: Callable[[Job], models.Model],
    kind: str, select_related: tuple[str, ...] = (),
) -> Job:
    """Run queued job ``job_id`` of ``job_model`` with ``train`` (which returns the new version, stored
    as the job's ``result``); a job another worker claimed, or that already ran, is returned as it is."""
    claimed = job_model.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(status=JobStatus.RUNNING, started_at=timezone.now())
    job = job_model.objects.select_related(*select_related).get(pk=job_id)
    if not claimed:
        log.info("%s job %s is %s already; nothing to do", kind, job_id, job.status)
        return job
    try:
        version = train(job)
    except Exception as exc:
        log.exception("%s job %s failed", kind, job_id)
        job_model.objects.filter(pk=job_id).update(status=JobStatus.FAILED, error=job_error(exc), finished_at=timezone.now())
        progress_model.objects.create(job=job, stage="failed", percent=job.percent)
    else:
        job_model.objects.filter(pk=job_id).update(status=JobStatus.SUCCEEDED, result=version, finished_at=timezone.now())
    job.refresh_from_db()
    return job
