"""POST /api/v1/readings and GET /api/v1/sensors/<tag>/readings."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from connectors.records import Reading
from phm.telemetry.models import QuarantinedRecord, Reading as ReadingRow
from phm.telemetry.services import ingest_readings


def post_json(client, body: str):
    return client.post("/api/v1/readings", data=body, content_type="application/json")


def test_without_token_is_401(plant):
    response = APIClient().post("/api/v1/readings", {"readings": []}, format="json")
    assert response.status_code == 401
    assert "credentials" in response.json()["error"].lower()


def test_batch_with_bad_records_stores_good_and_reports_bad(api_client, plant):
    body = {
        "readings": [
            {"sensor": "P-101.VIB", "ts": "2026-03-01T00:00:00Z", "value": 2.5},
            {"sensor": "P-999.VIB", "ts": "2026-03-01T00:00:00Z", "value": 2.5},
            {"sensor": "P-101.VIB", "ts": "2026-03-01T00:00:01", "value": 2.5},
            {"sensor": "P-101.VIB", "ts": "2026-03-01T00:00:02Z", "value": "__INF__"},
            "not an object",
            {"sensor": "P-101.TEMP", "ts": "2026-03-01T01:00:00+01:00", "value": 41},
        ]
    }
    # 1e999 is valid JSON that parses to infinity: it must be refused as a value, not as JSON.
    response = post_json(api_client, json.dumps(body).replace('"__INF__"', "1e999"))
    assert response.status_code == 200
    data = response.json()
    assert (data["accepted"], data["duplicate"], data["rejected_count"]) == (2, 0, 4)
    errors = {item["index"]: item["error"] for item in data["rejected"]}
    assert set(errors) == {1, 2, 3, 4}
    assert "unknown sensor 'P-999.VIB'" in errors[1]
    assert "no time zone" in errors[2]
    assert "not finite" in errors[3]
    assert "expected an object" in errors[4]
    assert ReadingRow.objects.count() == 2
    assert QuarantinedRecord.objects.count() == 4


def test_resending_a_batch_reports_duplicates(api_client, plant):
    body = {"readings": [{"sensor": "P-101.VIB", "ts": f"2026-03-01T00:00:0{i}Z", "value": i} for i in range(5)]}
    api_client.post("/api/v1/readings", body, format="json")
    data = api_client.post("/api/v1/readings", body, format="json").json()
    assert (data["accepted"], data["duplicate"]) == (0, 5)


def test_malformed_json_is_400_with_reason(api_client, plant):
    response = post_json(api_client, '{"readings": [ {"sensor": "P-101.VIB", ')
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["error"]


def test_nan_literal_is_rejected_as_malformed(api_client, plant):
    response = post_json(api_client, '{"readings": [{"sensor": "P-101.VIB", "ts": "2026-03-01T00:00:00Z", "value": NaN}]}')
    assert response.status_code == 400


def test_wrong_shape_is_400(api_client, plant):
    response = api_client.post("/api/v1/readings", {"values": []}, format="json")
    assert response.status_code == 400
    assert '{"readings": [...]}' in response.json()["error"]


def test_oversized_batch_is_413(api_client, plant, settings):
    settings.PHM_API_MAX_BATCH = 3
    body = {"readings": [{"sensor": "P-101.VIB", "ts": f"2026-03-01T00:00:0{i}Z", "value": i} for i in range(4)]}
    response = api_client.post("/api/v1/readings", body, format="json")
    assert response.status_code == 413
    assert "limit is 3" in response.json()["error"]
    assert ReadingRow.objects.count() == 0


def test_series_is_raw_when_it_fits(api_client, plant, t0):
    ingest_readings(readings=[Reading("P-101.VIB", t0 + timedelta(seconds=i), float(i)) for i in range(100)])
    response = api_client.get("/api/v1/sensors/P-101.VIB/readings", {"start": t0.isoformat(), "end": (t0 + timedelta(hours=1)).isoformat(), "max_points": 500})
    assert response.status_code == 200
    data = response.json()
    assert data["downsampled"] is False and len(data["points"]) == 100
    assert data["points"][3] == {"ts": "2026-03-01T00:00:03Z", "value": 3.0}


def test_series_is_downsampled_with_min_max_mean(api_client, plant, t0):
    ingest_readings(readings=[Reading("P-101.VIB", t0 + timedelta(seconds=i), float(i % 60)) for i in range(3600)])
    response = api_client.get("/api/v1/sensors/P-101.VIB/readings", {"start": t0.isoformat(), "end": (t0 + timedelta(hours=1)).isoformat(), "max_points": 60})
    data = response.json()
    assert data["downsampled"] is True and data["bucket_seconds"] == 60
    assert len(data["points"]) == 60
    first = data["points"][0]
    assert (first["min"], first["max"], first["mean"], first["count"]) == (0.0, 59.0, 29.5, 60)


def test_series_query_errors_are_clear(api_client, plant, t0):
    url = "/api/v1/sensors/P-101.VIB/readings"
    assert api_client.get(url, {"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"}).status_code == 400
    assert api_client.get(url, {"start": "yesterday", "end": "2026-03-01T00:00:00Z"}).status_code == 400
    assert api_client.get("/api/v1/sensors/NOPE/readings", {"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z"}).status_code == 404


@pytest.mark.django_db
def test_openapi_schema_lists_the_endpoints(client, api_client):
    assert client.get("/api/schema/").status_code == 401  # signed-in users with a role only, like the API
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    assert "/api/v1/readings" in paths and "/api/v1/sensors/{tag}/readings/" in paths or "/api/v1/sensors/{tag}/readings" in paths


def test_file_upload_with_an_invalid_spec_is_400_and_stores_no_job(api_client, plant):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from phm.telemetry.models import FileIngestJob

    for spec, reason in (('{"layot": "wide"}', "unknown file spec keys: ['layot']"), ('["wide"]', "spec must be a JSON object"), ("{", "'spec' is not valid JSON")):
        upload = SimpleUploadedFile("x.csv", b"ts,P-101.VIB\n2026-03-01T00:00:00Z,1\n", content_type="text/csv")
        response = api_client.post("/api/v1/ingest/files/", {"file": upload, "spec": spec}, format="multipart")
        assert response.status_code == 400 and reason in response.json()["error"], response.content
    assert not FileIngestJob.objects.exists()
