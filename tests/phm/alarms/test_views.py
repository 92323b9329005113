"""Operator alarm page: list, journal, acknowledge and shelve through the forms."""

from __future__ import annotations

import pytest
from django.utils import timezone

from phm.alarms import services
from phm.alarms.models import Alarm, AlarmState
from phm.alarms.services import AlarmPolicy, Sample


@pytest.fixture
def operator_client(client, api_user):
    client.force_login(api_user)
    return client


@pytest.fixture
def alarm(plant):
    services.evaluate_scores(equipment=plant[0], source="detector:page", samples=[Sample(timezone.now(), 2.5)], policy=AlarmPolicy(threshold=1.0))
    return Alarm.objects.get()


def test_list_shows_open_alarm_with_path(operator_client, alarm):
    page = operator_client.get("/alarms/").content.decode()
    assert "north/water/ps1/P-101" in page and "detector:page" in page and "Acknowledge" in page


def test_acknowledge_form_changes_state_and_journal_page_shows_it(operator_client, alarm):
    response = operator_client.post(f"/alarms/{alarm.pk}/ack/", {"comment": "on my way"})
    assert response.status_code == 302
    assert Alarm.objects.get().state == AlarmState.ACTIVE_ACK
    journal = operator_client.get(f"/alarms/{alarm.pk}/").content.decode()
    assert "on my way" in journal and "operator" in journal


def test_shelve_without_comment_is_refused_with_message(operator_client, alarm):
    response = operator_client.post(f"/alarms/{alarm.pk}/shelve/", {"minutes": "15", "comment": ""}, follow=True)
    assert "comment" in response.content.decode() and Alarm.objects.get().state == AlarmState.ACTIVE_UNACK


def test_page_requires_login(client, db):
    assert client.get("/alarms/").status_code == 302
