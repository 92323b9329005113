"""Historian files uploaded through the Django admin become queued ingestion jobs (same checks
as the API); an invalid spec is refused on the form and nothing is stored."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from phm.telemetry import jobs
from phm.telemetry.models import FileIngestJob, JobStatus, Reading

CSV = b"timestamp;P-101.VIB;P-101.TEMP\n2026-03-01 00:00:00;2,5;40,5\n2026-03-01 00:00:01;2,6;oops\n"


@pytest.fixture
def admin_client(client, db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(User.objects.create_superuser("root", password="pw-root-1"))
    return client


def test_admin_upload_queues_a_job_that_ingests_the_file(admin_client, plant, django_capture_on_commit_callbacks):
    spec = '{"layout": "wide", "separator": ";", "decimal": ",", "timezone": "UTC"}'
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(
            "/admin/telemetry/fileingestjob/add/", {"file": SimpleUploadedFile("export.csv", CSV, "text/csv"), "spec": spec}
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    job = FileIngestJob.objects.get()
    assert (job.original_name, job.status, job.bytes_total, job.created_by.username) == ("export.csv", JobStatus.QUEUED, len(CSV), "root")
    assert job.spec["separator"] == ";" and len(callbacks) == 1  # the worker task is queued on commit
    job = jobs.run_file_job(job_id=job.pk)  # what the worker runs (tests/e2e runs it in a real worker)
    assert (job.status, job.accepted, job.rejected) == (JobStatus.SUCCEEDED, 3, 1)
    assert Reading.objects.count() == 3
    detail = admin_client.get(f"/admin/telemetry/fileingestjob/{job.pk}/change/").content.decode()
    assert "succeeded" in detail.lower() and "export.csv" in detail


def test_admin_upload_with_an_invalid_spec_is_refused_and_stores_nothing(admin_client, plant):
    response = admin_client.post(
        "/admin/telemetry/fileingestjob/add/",
        {"file": SimpleUploadedFile("export.csv", CSV, "text/csv"), "spec": '{"layout": "sideways"}'},
    )
    assert response.status_code == 200
    assert "invalid spec" in response.content.decode()
    assert not FileIngestJob.objects.exists()


def test_admin_upload_of_an_archive_that_decodes_past_the_limit_is_a_form_error(admin_client, plant, settings):
    # Issue 19, finding 6: a small .npz can declare hundreds of MB of arrays. The API answers 413;
    # the admin form must say so too (it used to end in a server error page).
    import io

    import numpy as np

    settings.PHM_UPLOAD_MAX_DECODED_BYTES = 100_000
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{"P-101.VIB": np.zeros(50_000)}, timestamp=np.zeros(50_000, dtype="int64"))
    assert len(buffer.getvalue()) < 10_000  # small on the wire, 800 KB decoded
    response = admin_client.post(
        "/admin/telemetry/fileingestjob/add/",
        {"file": SimpleUploadedFile("bomb.npz", buffer.getvalue(), "application/octet-stream"), "spec": '{"layout": "wide"}'},
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "PHM_UPLOAD_MAX_DECODED_BYTES" in text and "bomb.npz" in text
    assert not FileIngestJob.objects.exists()
