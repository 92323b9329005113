"""Alarm console, plant health from alarms and scores, chat pre-fill, models page actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from phm.alarms.models import Alarm, AlarmState
from phm.alarms.services import AlarmPolicy, Sample, evaluate_scores
from phm.assets.models import Equipment, EquipmentType


def raise_alarm(equipment, *, score: float, source: str = "detector:pca", minutes_ago: float = 1.0) -> Alarm:
    at = timezone.now() - timedelta(minutes=minutes_ago)
    evaluate_scores(equipment=equipment, source=source, samples=[Sample(at, score)], policy=AlarmPolicy(threshold=1.0))
    return Alarm.objects.get(equipment=equipment, source=source)


@pytest.fixture
def two_alarms(plant):
    pump, _ = plant
    fan = Equipment.objects.create(line=pump.line, tag="F-401", name="Cooling fan", equipment_type=EquipmentType.FAN)
    mild = raise_alarm(fan, score=1.2, minutes_ago=1)  # newer, lower severity
    severe = raise_alarm(pump, score=6.0, minutes_ago=5)
    return mild, severe


def test_console_lists_most_severe_first_with_band_text(client, operator_user, two_alarms):
    mild, severe = two_alarms
    assert severe.severity > mild.severity
    client.force_login(operator_user)
    page = client.get("/console/").content.decode()
    assert page.index(f'data-alarm="{severe.pk}"') < page.index(f'data-alarm="{mild.pk}"')
    assert f"{severe.band.upper()} {severe.severity}" in page  # the band is written, not only coloured


def test_console_filters_by_equipment(client, operator_user, two_alarms):
    mild, severe = two_alarms
    client.force_login(operator_user)
    rows = client.get("/console/rows/?equipment=F-401").content.decode()
    assert f'data-alarm="{mild.pk}"' in rows and f'data-alarm="{severe.pk}"' not in rows


def test_acknowledge_from_console_writes_the_journal(client, operator_user, two_alarms):
    _, severe = two_alarms
    client.force_login(operator_user)
    response = client.post(f"/alarms/{severe.pk}/ack/", {"comment": "checking the bearing", "next": "/console/"})
    assert response.status_code == 302 and response["Location"] == "/console/"
    severe.refresh_from_db()
    assert severe.state == AlarmState.ACTIVE_ACK
    journal = client.get(f"/console/{severe.pk}/journal/").content.decode()
    assert "checking the bearing" in journal and "op1" in journal


def test_overview_shows_worst_alarm_and_area_counts(client, operator_user, two_alarms):
    _, severe = two_alarms
    client.force_login(operator_user)
    page = client.get("/").content.decode()
    assert f"{severe.band} alarm" in page
    assert "2 active alarms, 2 unacknowledged" in page


def test_chat_is_prefilled_from_an_alarm(client, operator_user, two_alarms):
    _, severe = two_alarms
    client.force_login(operator_user)
    page = client.get(f"/chat/?alarm={severe.pk}").content.decode()
    assert 'value="P-101"' in page and "Alarm on P-101 (detector:pca" in page


def test_operator_cannot_upload_documents_through_the_page_middleware(client, operator_user, settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "phm.dashboard.middleware.PageRoleMiddleware"]
    client.force_login(operator_user)
    assert client.post("/assistant/documents/", {}).status_code == 403
    assert client.get("/assistant/documents/").status_code == 403  # the knowledge base is the engineer's (README)


def test_page_middleware_refuses_ungrouped_users(client, ungrouped_user, settings):
    """Roles fail closed (issue 19): a signed-in user in no role group is refused every page."""
    client.force_login(ungrouped_user)
    assert client.post("/assistant/documents/", {}).status_code == 403
    assert client.get("/").status_code == 403