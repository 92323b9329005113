"""REST API: alarms pull/ack/shelve, alarm points, webhook endpoints and their deliveries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from phm.alarms import services
from phm.alarms.delivery import DeliveryPolicy, deliver_due
from phm.alarms.models import Alarm, AlarmPoint, AlarmState, AlarmTransition, OutboxMessage, WebhookEndpoint, new_webhook_secret
from phm.alarms.receiver import WebhookReceiver
from phm.alarms.services import AlarmPolicy, Sample

S = AlarmState


@pytest.fixture
def alarm(plant):
    now = timezone.now()
    services.evaluate_scores(equipment=plant[0], source="detector:test", samples=[Sample(now, 3.0)], policy=AlarmPolicy(threshold=1.0))
    return Alarm.objects.get()


# --- alarms -----------------------------------------------------------------------------------


def test_list_filters_by_state_and_severity(api_client, alarm):
    assert [a["id"] for a in api_client.get("/api/v1/alarms?state=active_unacknowledged").json()["results"]] == [alarm.pk]
    assert api_client.get("/api/v1/alarms?state=normal").json()["results"] == []
    assert api_client.get(f"/api/v1/alarms?severity_min={alarm.severity + 1}").json()["results"] == []
    row = api_client.get(f"/api/v1/alarms?severity_min={alarm.severity}").json()["results"][0]
    assert row["equipment"]["path"] == "north/water/ps1/P-101" and row["severity_band"] == "high"  # B criticality, 3x threshold: one band up


def test_list_since_returns_only_changed_alarms(api_client, alarm):
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert api_client.get("/api/v1/alarms", {"since": later}).json()["results"] == []


def test_list_rejects_unknown_state_and_bad_since(api_client, alarm):
    response = api_client.get("/api/v1/alarms?state=burning")
    assert response.status_code == 400 and "burning" in str(response.json())
    assert api_client.get("/api/v1/alarms?since=yesterday").status_code == 400
    assert api_client.get("/api/v1/alarms?severity_min=0").status_code == 400


def test_ack_moves_alarm_and_journal_shows_who(api_client, alarm):
    response = api_client.post(f"/api/v1/alarms/{alarm.pk}/ack", {"comment": "checking pump"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == S.ACTIVE_ACK and body["acknowledged_by"] == "operator"
    assert body["journal"][-1] | {"at": None, "recorded_at": None, "id": None} == {
        "id": None, "from_state": S.ACTIVE_UNACK, "to_state": S.ACTIVE_ACK, "at": None, "actor": "operator",
        "comment": "checking pump", "score": 3.0, "severity": alarm.severity, "recorded_at": None,
    }


def test_ack_of_normal_alarm_is_409_and_changes_nothing(api_client, alarm):
    api_client.post(f"/api/v1/alarms/{alarm.pk}/ack", {}, format="json")
    Alarm.objects.filter(pk=alarm.pk).update(state=S.NORMAL)
    before = AlarmTransition.objects.count()
    response = api_client.post(f"/api/v1/alarms/{alarm.pk}/ack", {}, format="json")
    assert response.status_code == 409 and "only an unacknowledged alarm" in response.json()["error"]
    assert AlarmTransition.objects.count() == before


def test_unknown_alarm_is_404(api_client, db):
    response = api_client.post("/api/v1/alarms/999999/ack", {}, format="json")
    assert response.status_code == 404 and "999999" in response.json()["error"]
    assert api_client.get("/api/v1/alarms/999999").status_code == 404


def test_shelve_and_unshelve(api_client, alarm):
    response = api_client.post(f"/api/v1/alarms/{alarm.pk}/shelve", {"duration_s": 600, "comment": "sensor swap"}, format="json")
    assert response.status_code == 200 and response.json()["state"] == S.SHELVED
    response = api_client.post(f"/api/v1/alarms/{alarm.pk}/unshelve", {"comment": "swap done"}, format="json")
    assert response.status_code == 200 and response.json()["state"] == S.ACTIVE_UNACK


@pytest.mark.parametrize(
    ("body", "needle"),
    [({"duration_s": 0, "comment": "x"}, "already have expired"), ({"duration_s": 60}, "comment"), ({"duration_s": "long", "comment": "x"}, "duration_s")],
)
def test_bad_shelve_requests_are_400(api_client, alarm, body, needle):
    response = api_client.post(f"/api/v1/alarms/{alarm.pk}/shelve", body, format="json")
    assert response.status_code == 400 and needle in str(response.json())
    assert Alarm.objects.get(pk=alarm.pk).state == S.ACTIVE_UNACK


def test_unshelve_after_expiry_is_409(api_client, alarm):
    services.shelve(alarm_id=alarm.pk, duration=timedelta(seconds=1), comment="x", now=timezone.now() - timedelta(minutes=1))
    response = api_client.post(f"/api/v1/alarms/{alarm.pk}/unshelve", {}, format="json")
    assert response.status_code == 409 and "expired" in response.json()["error"]


def test_flood_statistics(api_client, alarm):
    body = api_client.get("/api/v1/alarms/statistics").json()
    assert body["peak_per_10min"] == {"north/water": 1} and body["flood_limit"] == 10


def test_requires_authentication(db):
    assert APIClient().get("/api/v1/alarms").status_code == 401


def test_alarm_point_suppress_and_out_of_service(api_client, alarm):
    point = AlarmPoint.objects.get()
    assert api_client.post(f"/api/v1/alarm-points/{point.pk}/suppress", {"comment": "pump stopped"}, format="json").status_code == 200
    assert Alarm.objects.get(pk=alarm.pk).state == S.SUPPRESSED
    api_client.post(f"/api/v1/alarm-points/{point.pk}/unsuppress", {}, format="json")
    api_client.post(f"/api/v1/alarm-points/{point.pk}/out-of-service", {}, format="json")
    assert Alarm.objects.get(pk=alarm.pk).state == S.OUT_OF_SERVICE


# --- webhooks ---------------------------------------------------------------------------------


def test_webhook_crud(api_client, db):
    secret = new_webhook_secret()
    created = api_client.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "secret": secret, "events": ["alarm.raised"]}, format="json")
    assert created.status_code == 201 and "secret" not in created.json() and created.json()["has_secret"] is True  # write-only
    hook_id = created.json()["id"]
    listed = api_client.get("/api/v1/webhooks").json()["results"]
    assert [h["id"] for h in listed] == [hook_id] and "secret" not in listed[0]
    patched = api_client.patch(f"/api/v1/webhooks/{hook_id}", {"events": ["alarm.cleared", "alarm.raised"], "enabled": False}, format="json")
    assert patched.json()["events"] == ["alarm.cleared", "alarm.raised"] and patched.json()["enabled"] is False
    assert api_client.delete(f"/api/v1/webhooks/{hook_id}").status_code == 204
    assert not WebhookEndpoint.objects.exists()


def test_webhook_secret_is_generated_when_left_out(api_client, db):
    created = api_client.post("/api/v1/webhooks", {"url": "https://scada.example/hook"}, format="json").json()
    assert created["secret"].startswith("whsec_") and created["events"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://x/y"}, "url"),
        ({"url": "http://x/y", "secret": "plain-text"}, "secret"),
        ({"url": "http://x/y", "events": ["alarm.exploded"]}, "events"),
    ],
)
def test_webhook_bad_input_is_400(api_client, db, body, field):
    response = api_client.post("/api/v1/webhooks", body, format="json")
    assert response.status_code == 400 and field in response.json()["detail"]


def test_webhook_test_event_is_signed_and_delivery_listed(api_client, db):
    secret = new_webhook_secret()
    with WebhookReceiver(secret) as receiver:
        hook_id = api_client.post("/api/v1/webhooks", {"url": receiver.url, "secret": secret}, format="json").json()["id"]
        queued = api_client.post(f"/api/v1/webhooks/{hook_id}/test")
        assert queued.status_code == 202
        deliver_due(worker="t", policy=DeliveryPolicy(retry_delays_s=(0.1,)))
    assert [r.message_id for r in receiver.state.accepted] == [queued.json()["message_id"]]
    assert receiver.state.accepted[0].body["type"] == "test"
    deliveries = api_client.get(f"/api/v1/webhooks/{hook_id}/deliveries").json()["results"]
    assert deliveries[0]["status"] == "delivered" and deliveries[0]["attempt_log"][0]["status_code"] == 204
    assert deliveries[0]["next_attempt_at"] is None


def test_webhook_test_on_disabled_endpoint_is_409(api_client, db):
    endpoint = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/x", enabled=False, disabled_reason="receiver answered 410 Gone")
    response = api_client.post(f"/api/v1/webhooks/{endpoint.pk}/test")
    assert response.status_code == 409 and "410" in response.json()["error"]
    assert not OutboxMessage.objects.exists()


def test_reenabling_endpoint_clears_disabled_reason(api_client, db):
    endpoint = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/x", enabled=False, disabled_reason="receiver answered 410 Gone")
    api_client.patch(f"/api/v1/webhooks/{endpoint.pk}", {"enabled": True}, format="json")
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.disabled_reason == ""
