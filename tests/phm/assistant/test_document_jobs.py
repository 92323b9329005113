"""Knowledge-base uploads are checked in the request and embedded by a worker (issue 19): the
upload answers 202 with a job, the job shows progress, and the request never embeds."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from phm.assistant import services
from phm.assistant.models import Document, DocumentJob

TABLE = ("code,description\n" + "".join(f"M{i:03d},failure mode {i} of the feed pump\n" for i in range(150))).encode()


@pytest.fixture
def engineer_api(db):
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    user = User.objects.create_user("kb-engineer", password="pw-kb-engineer-1")
    user.groups.add(Group.objects.get(name="engineer"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_upload_answers_202_with_a_job_and_embeds_nothing(engineer_api, monkeypatch, django_capture_on_commit_callbacks):
    from celery.app.task import Task

    sent = []
    monkeypatch.setattr(Task, "delay", lambda self, *args: sent.append((self.name, args)))
    monkeypatch.setattr(services, "embed_texts", lambda texts: pytest.fail("the request embedded chunks"))
    with django_capture_on_commit_callbacks(execute=True):
        response = engineer_api.post("/api/v1/assistant/documents", {"file": SimpleUploadedFile("codes.csv", TABLE)}, format="multipart")
    assert response.status_code == 202, response.content[:300]
    body = response.json()
    assert body["status"] == "queued" and body["chunks_total"] == 150 and body["document"] is None
    assert sent == [("phm.assistant.tasks.ingest_document_job", (body["id"],))]
    assert not Document.objects.exists()


def test_worker_embeds_in_steps_and_the_job_shows_progress(engineer_api, monkeypatch):
    response = engineer_api.post("/api/v1/assistant/documents", {"file": SimpleUploadedFile("codes.csv", TABLE)}, format="multipart")
    job_id = response.json()["id"]
    seen: list[int] = []
    real = services.embed_texts

    def spy(texts):
        seen.append(DocumentJob.objects.get(pk=job_id).chunks_done)
        return real(texts)

    monkeypatch.setattr(services, "embed_texts", spy)
    services.run_document_job(job_id=job_id)  # what the worker does
    assert seen == [0, 64, 128]  # progress recorded after each step of EMBED_BATCH
    job = engineer_api.get(f"/api/v1/assistant/document-jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["percent"] == 100.0 and job["chunks_done"] == 150
    assert Document.objects.get(pk=job["document"]).chunk_count == 150
    assert not DocumentJob.objects.get(pk=job_id).file  # the upload is not kept once indexed


def test_a_job_that_fails_in_the_worker_says_why(engineer_api, monkeypatch):
    job_id = engineer_api.post("/api/v1/assistant/documents", {"file": SimpleUploadedFile("codes.csv", TABLE)}, format="multipart").json()["id"]
    services.ingest_document(name="other.csv", content=TABLE)  # the same content arrives another way first
    job = services.run_document_job(job_id=job_id)
    assert job.status == "failed" and "identical to 'other.csv'" in job.error


def test_second_run_of_a_job_does_nothing(engineer_api):
    job_id = engineer_api.post("/api/v1/assistant/documents", {"file": SimpleUploadedFile("codes.csv", TABLE)}, format="multipart").json()["id"]
    services.run_document_job(job_id=job_id)
    again = services.run_document_job(job_id=job_id)
    assert again.status == "succeeded" and Document.objects.count() == 1
