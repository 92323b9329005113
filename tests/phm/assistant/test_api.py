"""POST /api/v1/assistant/ask (+ stream), documents and conversations over HTTP."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from phm.assistant import services
from phm.assistant.models import Document

NOTE = b"---\nequipment: P-101\n---\n# P-101 pump\n\n## Bearings\nDrive-end bearing 6309-2Z/C3, oil ISO VG 68 every 4000 hours.\n"
ASK = "/api/v1/assistant/ask"


@pytest.fixture
def knowledge(plant):
    services.ingest_document(name="p101.md", content=NOTE)


def test_ask_answers_with_citations_to_document_and_location(api_client, knowledge, tiny_model):
    response = api_client.post(ASK, {"question": "Which oil does the P-101 bearing use?"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= {"answer", "citations", "used_live_data", "conversation"}
    assert body["citations"][0]["document"] == "P-101 pump"
    assert body["citations"][0]["location"] == "p101.md, P-101 pump > Bearings"
    assert "ISO VG 68" in body["citations"][0]["text"]
    assert body["used_live_data"] is False


def test_ask_off_topic_refuses_instead_of_inventing(api_client, knowledge, tiny_model):
    body = api_client.post(ASK, {"question": "Who painted the Mona Lisa?"}, format="json").json()
    assert body["refused"] is True and "nothing relevant" in body["answer"] and body["citations"] == []


def test_ask_with_equipment_pulls_live_sensor_data(api_client, knowledge, tiny_model, t0):
    from phm.telemetry import services as telemetry

    telemetry.ingest_readings(readings=[{"sensor": "P-101.VIB", "ts": t0.isoformat(), "value": 6.3}], channel="test")
    body = api_client.post(ASK, {"question": "Why is the pump vibrating?", "equipment": "north/water/ps1/P-101"}, format="json").json()
    assert body["used_live_data"] is True
    live = [c for c in body["citations"] if c["kind"] == "live"]
    assert live and live[0]["document"] == "live: sensor statistics of P-101" and "latest 6.3" in live[0]["text"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"question": ""}, "the question is empty"),
        ({"question": "x" * 5000}, "limit is 2000"),
        ({"question": "status?", "equipment": "NOPE-1"}, "unknown equipment 'NOPE-1'"),
        ({}, "invalid request"),
    ],
)
def test_ask_bad_input_gets_a_clear_error(api_client, payload, message):
    response = api_client.post(ASK, payload, format="json")
    assert response.status_code == 400
    assert message in json.dumps(response.json())


def test_ask_requires_authentication(client):
    assert client.post(ASK, {"question": "hello"}, content_type="application/json").status_code == 401


def test_streaming_sends_sources_tokens_then_done(api_client, knowledge, tiny_model):
    response = api_client.post(ASK + "/stream", {"question": "Which oil does the P-101 bearing use?"}, format="json")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    events = [block.split("\n", 1) for block in b"".join(response.streaming_content).decode().strip().split("\n\n")]
    names = [head.removeprefix("event: ") for head, _ in events]
    assert names[0] == "sources" and names[-1] == "done" and "token" in names
    done = json.loads(events[-1][1].removeprefix("data: "))
    tokens = "".join(json.loads(data.removeprefix("data: "))["text"] for head, data in events if head == "event: token")
    # the tokens are the model's draft; ``done`` brings the checked answer (cited sentences or quotes)
    assert done["draft"] == tokens.strip() and done["citations"]
    assert done["mode"] in {"generated", "extractive"} and "[1]" in done["answer"]


def test_conversation_history_is_kept_per_user(api_client, knowledge, tiny_model, db):
    first = api_client.post(ASK, {"question": "Which oil does the P-101 bearing use?"}, format="json").json()
    api_client.post(ASK, {"question": "And how often is it changed?", "conversation": first["conversation"]}, format="json")
    conversations = api_client.get("/api/v1/assistant/conversations").json()["results"]
    assert len(conversations) == 1 and [m["role"] for m in conversations[0]["messages"]] == ["user", "assistant", "user", "assistant"]

    from rest_framework.test import APIClient

    from tests.conftest import user_in_role

    other = APIClient()
    other.force_authenticate(user_in_role("someone-else", "operator"))
    assert other.get("/api/v1/assistant/conversations").json()["results"] == []
    response = other.post(ASK, {"question": "Which oil?", "conversation": first["conversation"]}, format="json")
    assert response.status_code == 400 and "not found for this user" in response.json()["error"]


def test_document_upload_duplicate_unsupported_and_delete(api_client, db):
    url = "/api/v1/assistant/documents"
    queued = api_client.post(url, {"file": SimpleUploadedFile("p101.md", NOTE)}, format="multipart")
    assert queued.status_code == 202 and queued.json()["chunks_total"] == 1
    services.run_document_job(job_id=queued.json()["id"])  # what the worker does
    created = api_client.get(f"/api/v1/assistant/document-jobs/{queued.json()['id']}").json()["document"]
    assert api_client.get(f"{url}/{created}").json()["chunk_count"] == 1
    duplicate = api_client.post(url, {"file": SimpleUploadedFile("p101.md", NOTE)}, format="multipart")
    assert duplicate.status_code == 409 and "already in the knowledge base" in duplicate.json()["error"]
    unsupported = api_client.post(url, {"file": SimpleUploadedFile("plan.dwg", b"AC1032")}, format="multipart")
    assert unsupported.status_code == 400 and "unsupported file type '.dwg'" in unsupported.json()["error"]
    assert api_client.delete(f"{url}/{created}").status_code == 204
    assert Document.objects.count() == 0


def test_documents_page_uploads_and_lists(client, api_user):
    client.force_login(api_user)
    response = client.post("/assistant/documents/", {"file": SimpleUploadedFile("p101.md", NOTE)}, follow=True)
    assert response.status_code == 200
    assert b"p101.md: checked, 1 passages queued for indexing" in response.content
    from phm.assistant.models import DocumentJob

    services.run_document_job(job_id=DocumentJob.objects.get().pk)  # what the worker does
    page = client.get("/assistant/documents/").content
    assert b"P-101 pump" in page and b"succeeded" in page
