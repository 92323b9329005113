"""A historian file uploaded through the API is ingested by a real Celery worker, with progress
stored on the job row: once over the no-server default broker, once over the real Redis."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from django.core.files.uploadedfile import SimpleUploadedFile
from kombu import Connection

from phm.telemetry import jobs
from phm.telemetry.models import FileIngestJob, JobStatus, QuarantinedRecord, Reading
from phm.telemetry.tasks import ingest_file
from tests.conftest import make_plant
from tests.e2e.workers import celery_worker

REDIS_URL = "redis://127.0.0.1:6379/14"
ROWS = 3000


def historian_csv(rows: int = ROWS, bad_rows: tuple[int, ...] = (7,)) -> bytes:
    lines = ["timestamp;P-101.VIB;P-101.TEMP"]
    for i in range(rows):
        ts = f"2026-03-01 {i // 3600:02d}:{(i // 60) % 60:02d}:{i % 60:02d}"
        vib = "oops" if i in bad_rows else f"{2 + (i % 10) / 10:.1f}".replace(".", ",")
        lines.append(f"{ts};{vib};{40 + (i % 5)},5")
    return ("\n".join(lines) + "\n").encode()


def wait_for_job(job_id: int, timeout_s: float = 120) -> FileIngestJob:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = FileIngestJob.objects.get(pk=job_id)
        if job.status in {JobStatus.SUCCEEDED, JobStatus.FAILED}:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {FileIngestJob.objects.get(pk=job_id).status} after {timeout_s}s")


@pytest.mark.django_db(transaction=True)
def test_upload_is_ingested_by_worker_over_default_broker(api_client, tmp_path):
    make_plant()
    upload = SimpleUploadedFile("export.csv", historian_csv(), content_type="text/csv")
    spec = '{"layout": "wide", "separator": ";", "decimal": ",", "timezone": "Europe/Berlin"}'
    with celery_worker(log_path=tmp_path / "worker.log"):
        response = api_client.post("/api/v1/ingest/files/", {"file": upload, "spec": spec}, format="multipart")
        assert response.status_code == 202, response.content
        job = wait_for_job(response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (job.accepted, job.rejected) == (2 * ROWS - 1, 1)
    assert job.rows_done == ROWS and job.percent == 100.0
    assert Reading.objects.count() == 2 * ROWS - 1
    first = Reading.objects.order_by("ts").first()
    assert first.ts.isoformat() == "2026-02-28T23:00:00+00:00"  # Berlin is UTC+1 in March
    assert QuarantinedRecord.objects.filter(channel="file:export.csv").count() == 1
    api_view = api_client.get(f"/api/v1/ingest/files/{job.pk}/").json()
    assert api_view["status"] == "succeeded" and api_view["percent"] == 100.0


@pytest.mark.django_db(transaction=True)
def test_job_runs_over_real_redis(tmp_path):
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis at {REDIS_URL} unreachable: {exc}")
    make_plant()
    job = jobs.create_file_job(uploaded_file=SimpleUploadedFile("redis.csv", historian_csv(500, ())), spec={"separator": ";", "decimal": ","})
    with celery_worker(broker_url=REDIS_URL, queues="ingest", log_path=tmp_path / "worker.log"):
        with Connection(REDIS_URL) as connection:
            ingest_file.apply_async(args=[job.pk], connection=connection, queue="ingest", task_id=f"test-{uuid.uuid4()}")
        done = wait_for_job(job.pk)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.accepted == 1000


@pytest.mark.django_db(transaction=True)
def test_a_job_is_claimed_once(tmp_path):
    make_plant()
    job = jobs.create_file_job(uploaded_file=SimpleUploadedFile("once.csv", historian_csv(50, ())), spec={"separator": ";", "decimal": ","})
    jobs.run_file_job(job_id=job.pk)
    again = jobs.run_file_job(job_id=job.pk)  # a redelivered message must not ingest twice
    assert again.accepted == 100 and again.status == JobStatus.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_unreadable_file_fails_the_job_with_the_reason(tmp_path):
    make_plant()
    job = jobs.create_file_job(uploaded_file=SimpleUploadedFile("bad.csv", b"\x00\x01\x02garbage"), spec={"layout": "long"})
    with pytest.raises(Exception):
        jobs.run_file_job(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error
