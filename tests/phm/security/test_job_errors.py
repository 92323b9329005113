"""Finding 8 of issue 19 (part): job errors shown in the API and on pages carry no absolute server
paths (file names relative to the data folders instead)."""

from __future__ import annotations

import pytest
from django.conf import settings

from connectors.files import FileFormatError
from phm.redaction import strip_server_paths
from phm.telemetry.jobs import run_file_job
from phm.telemetry.models import FileIngestJob, JobStatus


def test_paths_under_the_data_folders_become_relative(settings):
    text = f"No such file or directory: '{settings.MEDIA_ROOT}/uploads/2026/03/export.csv'"
    assert strip_server_paths(text) == "No such file or directory: 'uploads/2026/03/export.csv'"


def test_other_absolute_paths_become_file_names():
    assert strip_server_paths("cannot open /opt/secret/keys/plant.key for reading") == "cannot open plant.key for reading"


def test_urls_and_relative_paths_are_left_alone():
    text = "HTTP 500 from http://10.0.0.5:8080/hooks/scada (text/html), see uploads/a.csv"
    assert strip_server_paths(text) == text


@pytest.mark.django_db
def test_a_failed_file_job_names_the_file_not_the_server_path(engineer_client):
    job = FileIngestJob.objects.create(file="uploads/2026/03/gone.csv", original_name="gone.csv", spec={})
    with pytest.raises(FileFormatError, match="does not exist"):
        run_file_job(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "uploads/2026/03/gone.csv" in job.error
    assert str(settings.MEDIA_ROOT) not in job.error and str(settings.DATA_ROOT) not in job.error
    shown = engineer_client.get(f"/api/v1/ingest/files/{job.pk}").json()["error"]
    assert shown == job.error and " /" not in shown and "'/" not in shown
