"""An alarm raise runs the diagnose task (real Celery, eager) when it commits, and the stored
diagnosis reaches SCADA as a signed ``diagnosis`` webhook after the ``alarm.raised`` one."""

from __future__ import annotations

import pytest

from phm.alarms.delivery import DeliveryPolicy, deliver_due
from phm.alarms.models import EventType, OutboxMessage, WebhookEndpoint, new_webhook_secret
from phm.alarms.receiver import WebhookReceiver
from phm.analytics.models import Diagnosis, DiagnosisStatus
from tests.phm.analytics.diagnosis_helpers import (  # noqa: F401  (fixtures)
    demo_plant,
    diagnoser_version,
    fresh_knowledge_indexes,
    played_alarm,
    tiny_diagnoser_folder,
    tiny_models,
)

FAST = DeliveryPolicy(retry_delays_s=(0.05, 0.1), jitter=0.0, connect_timeout_s=1, read_timeout_s=1, lease_s=5)


@pytest.fixture
def eager_celery(settings):
    """Tasks sent with apply_async run in this process: the on-commit send is the real one."""
    from phm.celery import app

    settings.PHM_WEBHOOK_KICK_ON_COMMIT = False  # delivery is driven by the test
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = previous


def test_raise_stores_a_diagnosis_and_sends_a_signed_diagnosis_webhook(diagnoser_version, demo_plant, eager_celery, django_capture_on_commit_callbacks):
    secret = new_webhook_secret()
    with WebhookReceiver(secret) as receiver:
        WebhookEndpoint.objects.create(url=receiver.url, secret=secret)
        with django_capture_on_commit_callbacks(execute=True):
            alarm = played_alarm(tag="P-101", fault="bearing_wear")
        stored = Diagnosis.objects.get(alarm=alarm)
        assert stored.status == DiagnosisStatus.DONE, stored.error
        assert list(OutboxMessage.objects.filter(alarm=alarm).values_list("event_type", flat=True)) == [EventType.RAISED, EventType.DIAGNOSIS]
        result = deliver_due(worker="w1", policy=FAST)
    assert result.delivered == 2 and receiver.state.rejected == []
    raised, diagnosed = receiver.state.accepted
    assert (raised.body["type"], diagnosed.body["type"]) == ("alarm.raised", "diagnosis")
    data = diagnosed.body["data"]
    assert data["alarm_id"] == alarm.pk and data["diagnosis_id"] == stored.pk
    assert data["equipment"]["path"] == alarm.equipment.path and data["fault"] == stored.fault
    assert data["probability"] == pytest.approx(stored.probability) and data["explanation"]
    assert data["sensors"] and data["link"].endswith(f"/diagnoses/{stored.pk}/")


def test_an_endpoint_can_subscribe_to_diagnoses_only(diagnoser_version, demo_plant, eager_celery, django_capture_on_commit_callbacks):
    secret = new_webhook_secret()
    with WebhookReceiver(secret) as receiver:
        WebhookEndpoint.objects.create(url=receiver.url, secret=secret, events=[EventType.DIAGNOSIS])
        with django_capture_on_commit_callbacks(execute=True):
            played_alarm(tag="P-201", fault="cavitation", image=False)
        deliver_due(worker="w1", policy=FAST)
    assert [r.body["type"] for r in receiver.state.accepted] == ["diagnosis"]
