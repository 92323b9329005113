"""Finding 6 of issue 19: resource limits. Each limit answers 413 with the size, the limit and
the setting to change, before the expensive work (loading arrays, extracting text, embedding)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from phm.assistant.models import Document
from phm.telemetry.models import FileIngestJob, LogEvent
from tests.phm.assistant.helpers import make_pdf


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _upload(client, name: str, content: bytes, spec: dict):
    return client.post("/api/v1/ingest/files", {"file": SimpleUploadedFile(name, content), "spec": json.dumps(spec)}, format="multipart")


NPZ_SPEC = {"layout": "npz", "sampling_rate_hz": 1000, "start": "2026-03-01T00:00:00Z"}


def test_historian_upload_over_the_size_limit_is_413(engineer_api, plant, settings):
    settings.PHM_UPLOAD_MAX_HISTORIAN_BYTES = 1000
    response = _upload(engineer_api, "big.csv", b"ts,P-101.VIB\n" + b"2026-03-01T00:00:00Z,1.0\n" * 100, {})
    assert response.status_code == 413, response.content[:300]
    assert "PHM_UPLOAD_MAX_HISTORIAN_BYTES" in response.json()["error"] and "1,000" in response.json()["error"]
    assert not FileIngestJob.objects.exists()


def test_npz_that_decodes_past_the_limit_is_413_before_loading(engineer_api, plant, settings):
    settings.PHM_UPLOAD_MAX_DECODED_BYTES = 1_000_000
    content = _npz_bytes(vib=np.zeros(1_000_000))  # ~8 MB of arrays in ~8 KB
    assert len(content) < 50_000
    response = _upload(engineer_api, "bomb.npz", content, NPZ_SPEC)
    assert response.status_code == 413, response.content[:300]
    error = response.json()["error"]
    assert "8,000,128 bytes" in error and "PHM_UPLOAD_MAX_DECODED_BYTES" in error and "/" not in error.split(":")[0]
    assert not FileIngestJob.objects.exists()


def test_npz_within_the_limit_is_accepted(engineer_api, plant):
    response = _upload(engineer_api, "ok.npz", _npz_bytes(vib=np.zeros(100)), NPZ_SPEC)
    assert response.status_code == 202, response.content[:300]


def test_parquet_that_decodes_past_the_limit_is_413(engineer_api, plant, settings):
    import pandas as pd

    settings.PHM_UPLOAD_MAX_DECODED_BYTES = 100_000
    buffer = io.BytesIO()
    pd.DataFrame({"ts": pd.date_range("2026-03-01", periods=50_000, freq="s", tz="UTC"), "P-101.VIB": np.arange(50_000.0)}).to_parquet(buffer)
    response = _upload(engineer_api, "big.parquet", buffer.getvalue(), {})
    assert response.status_code == 413 and "PHM_UPLOAD_MAX_DECODED_BYTES" in response.json()["error"], response.content[:300]


def test_worker_refuses_an_npz_past_the_limit_without_loading_it(tmp_path):
    from connectors.files import FileSpec, FileTooLarge, iter_reading_batches

    path = tmp_path / "bomb.npz"
    path.write_bytes(_npz_bytes(vib=np.zeros(1_000_000)))
    spec = FileSpec.from_dict(NPZ_SPEC)
    with pytest.raises(FileTooLarge, match="8,000,128 bytes"):
        next(iter_reading_batches(path, spec, max_decoded_bytes=1_000_000))


def test_request_body_over_the_global_limit_is_413(engineer_api, settings):
    settings.PHM_MAX_REQUEST_BYTES = 10_000
    response = engineer_api.post("/api/v1/readings", {"readings": [{"sensor": "x" * 20_000}]}, format="json")
    assert response.status_code == 413 and "PHM_MAX_REQUEST_BYTES" in response.json()["error"]


def test_knowledge_upload_over_the_size_limit_is_413(engineer_api, settings):
    settings.PHM_KB_MAX_UPLOAD_BYTES = 100
    response = engineer_api.post("/api/v1/assistant/documents", {"file": SimpleUploadedFile("notes.txt", b"pump " * 100)}, format="multipart")
    assert response.status_code == 413 and "PHM_KB_MAX_UPLOAD_BYTES" in response.json()["error"], response.content[:300]
    assert not Document.objects.exists()


def test_pdf_with_too_many_pages_is_413(engineer_api, settings):
    settings.PHM_KB_MAX_PAGES = 2
    response = engineer_api.post("/api/v1/assistant/documents", {"file": SimpleUploadedFile("m.pdf", make_pdf(["a", "b", "c"]))}, format="multipart")
    assert response.status_code == 413 and "3 pages" in response.json()["error"] and "PHM_KB_MAX_PAGES" in response.json()["error"]


def test_pdf_that_expands_past_the_text_limit_is_413(engineer_api, settings):
    settings.PHM_KB_MAX_TEXT_CHARS = 500
    pages = ["bearing wear " * 30] * 3  # ~390 characters a page
    response = engineer_api.post("/api/v1/assistant/documents", {"file": SimpleUploadedFile("m.pdf", make_pdf(pages))}, format="multipart")
    assert response.status_code == 413, response.content[:300]
    assert "by page 2 of 3" in response.json()["error"] and "PHM_KB_MAX_TEXT_CHARS" in response.json()["error"]


def test_document_with_too_many_chunks_is_413_before_embedding(engineer_api, settings, monkeypatch):
    from phm.assistant import services

    monkeypatch.setattr(services, "embed_texts", lambda texts: pytest.fail("embedded a refused document"))
    settings.PHM_KB_MAX_CHUNKS = 5
    table = "code,description\n" + "".join(f"M{i:03d},failure mode {i}\n" for i in range(6))
    response = engineer_api.post("/api/v1/assistant/documents", {"file": SimpleUploadedFile("codes.csv", table.encode())}, format="multipart")
    assert response.status_code == 413 and "6 chunks" in response.json()["error"] and "PHM_KB_MAX_CHUNKS" in response.json()["error"]


@pytest.mark.parametrize(("field", "size", "limit"), [("message", 16_385, "16,384"), ("level", 17, "16"), ("source", 129, "128")])
def test_log_fields_over_their_limit_are_rejected_by_index(engineer_api, plant, t0, field, size, limit):
    record = {"source": "P-101", "ts": t0.isoformat(), "level": "WARN", "message": "ok", field: "x" * size}
    response = engineer_api.post("/api/v1/logs", {"logs": [record]}, format="json")
    assert response.status_code == 200 and response.json()["rejected_count"] == 1
    assert response.json()["rejected"][0]["error"].startswith(f"'{field}' has {size:,} characters; the limit is {limit}")
    assert not LogEvent.objects.exists()
