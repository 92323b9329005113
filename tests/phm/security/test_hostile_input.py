"""Finding 7 of issue 19: hostile input that answered 500 (or redirected off-site). Each test
sends what the probe sent and expects a clear 4xx, a rejected record, or a safe redirect."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from phm.alarms import services as alarm_services
from phm.alarms.models import Alarm, AlarmState
from phm.alarms.services import AlarmPolicy, Sample
from phm.telemetry.models import LogEvent, QuarantinedRecord

HUGE = "9223372036854775808"  # 2**63: one past the largest int64


def list_endpoints() -> list[str]:
    """Every paginated GET list of the OpenAPI schema (so a new list endpoint is covered too)."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        path
        for path, operations in schema["paths"].items()
        if "{" not in path and any(p["name"] == "limit" for p in operations.get("get", {}).get("parameters", []))
    )


@pytest.fixture
def alarm(plant):
    alarm_services.evaluate_scores(equipment=plant[0], source="detector:test", samples=[Sample(timezone.now(), 3.0)], policy=AlarmPolicy(threshold=1.0))
    return Alarm.objects.get()


def test_schema_lists_paginated_endpoints(db):
    assert {"/api/v1/sites/", "/api/v1/alarms/", "/api/v1/detectors/"} <= set(list_endpoints())


@pytest.mark.parametrize("param", ["limit", "offset"])
def test_int64_overflow_in_pagination_is_400_on_every_list(operator_api, plant, param):
    for path in list_endpoints():
        response = operator_api.get(path, {param: HUGE})
        assert response.status_code == 400, (path, response.status_code, response.content[:200])
        assert param in response.json()["error"] + json.dumps(response.json().get("detail", "")), path


def test_limit_above_max_limit_is_400_naming_the_maximum(operator_api, plant, settings):
    response = operator_api.get("/api/v1/sensors", {"limit": settings.PHM_API_MAX_PAGE + 1})
    assert response.status_code == 400 and str(settings.PHM_API_MAX_PAGE) in json.dumps(response.json())
    assert operator_api.get("/api/v1/sensors", {"limit": settings.PHM_API_MAX_PAGE}).status_code == 200


@pytest.mark.parametrize("duration", [1e308, "Infinity", "NaN", -5])
def test_shelve_with_absurd_duration_is_400(operator_api, alarm, duration):
    response = operator_api.post(f"/api/v1/alarms/{alarm.pk}/shelve", {"duration_s": duration, "comment": "x"}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "duration" in json.dumps(response.json())
    assert Alarm.objects.get().state == AlarmState.ACTIVE_UNACK


@pytest.mark.parametrize("minutes", ["inf", "1e308", "nan", "soon"])
def test_shelve_form_with_absurd_minutes_shows_message(operator_page, alarm, minutes):
    response = operator_page.post(f"/alarms/{alarm.pk}/shelve/", {"minutes": minutes, "comment": "x"}, follow=True)
    assert response.status_code == 200
    assert any("duration" in str(m) or "minutes" in str(m) for m in response.context["messages"])
    assert Alarm.objects.get().state == AlarmState.ACTIVE_UNACK


def test_reading_value_with_401_digits_is_rejected_not_500(engineer_api, plant, t0):
    body = '{"readings": [{"sensor": "P-101.VIB", "ts": "%s", "value": %s}]}' % (t0.isoformat(), "9" * 401)
    response = engineer_api.post("/api/v1/readings", body, content_type="application/json")
    assert response.status_code == 200, response.content[:300]
    assert response.json()["rejected_count"] == 1 and "value" in response.json()["rejected"][0]["error"]


def test_null_reading_is_rejected_and_quarantined(engineer_api, plant):
    response = engineer_api.post("/api/v1/readings", {"readings": [None]}, format="json")
    assert response.status_code == 200, response.content[:300]
    assert response.json()["rejected"] == [{"index": 0, "error": "expected an object with sensor, ts and value, got NoneType"}]
    assert QuarantinedRecord.objects.get().payload == {"record": None}


def test_null_log_record_is_rejected(engineer_api, plant):
    response = engineer_api.post("/api/v1/logs", {"logs": [None]}, format="json")
    assert response.status_code == 200 and response.json()["rejected_count"] == 1


def test_lone_surrogate_in_json_is_400(engineer_api, plant, t0):
    body = '{"logs": [{"source": "P-101", "ts": "%s", "level": "WARN", "message": "bad \\ud800 text"}]}' % t0.isoformat()
    response = engineer_api.post("/api/v1/logs", body, content_type="application/json")
    assert response.status_code == 400 and "surrogate" in response.json()["error"], response.content[:300]
    assert not LogEvent.objects.exists()


def test_lone_surrogate_in_log_record_from_a_connector_is_rejected(plant, t0):
    from connectors.records import LogRecord
    from phm.telemetry.services import ingest_logs

    result = ingest_logs(records=[LogRecord("P-101", t0, "WARN", "bad \ud800 text")], channel="mqtt")
    assert result.rejected == 1 and "surrogate" in result.rejections[0].error


def test_json_nested_50000_deep_is_400(engineer_api, plant):
    body = '{"readings": ' + "[" * 50_000 + "]" * 50_000 + "}"
    response = engineer_api.post("/api/v1/readings", body, content_type="application/json")
    assert response.status_code == 400 and "nest" in response.json()["error"], response.content[:300]


def test_media_path_with_nul_byte_is_404(operator_page):
    assert operator_page.get("/media/uploads%00/x").status_code == 404


@pytest.mark.parametrize("target", ["foo", "https://evil.example/", "//evil.example/", "/\\evil.example/", "javascript:alert(1)"])
def test_unshelve_form_never_follows_a_foreign_or_broken_next(operator_page, alarm, target):
    response = operator_page.post(f"/alarms/{alarm.pk}/unshelve/", {"next": target})
    assert response.status_code == 302 and response["Location"] == "/alarms/", response.get("Location")


def test_unshelve_form_follows_a_local_next(operator_page, alarm):
    response = operator_page.post(f"/alarms/{alarm.pk}/ack/", {"next": "/console/?x=1"})
    assert response.status_code == 302 and response["Location"] == "/console/?x=1"


@pytest.mark.parametrize("target", ["foo", "https://evil.example/"])
def test_feedback_form_never_follows_a_foreign_or_broken_next(client, engineer, target, alarm):
    from phm.analytics.models import Diagnosis

    diagnosis = Diagnosis.objects.create(alarm=alarm, equipment=alarm.equipment, trigger="manual", claimed_at=timezone.now())
    client.force_login(engineer)
    response = client.post(f"/diagnoses/{diagnosis.pk}/feedback/", {"verdict": "confirm", "next": target})
    assert response.status_code == 302 and response["Location"] == f"/diagnoses/{diagnosis.pk}/", response.get("Location")
