"""Live data for questions about the present: equipment lookup, windows, sensor statistics, alarms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from phm.assistant import live

pytestmark = pytest.mark.django_db


def test_equipment_resolves_from_tag_path_and_sensor_tag(plant):
    pump, _ = plant
    assert live.resolve_equipment("p-101") == pump
    assert live.resolve_equipment("north/water/ps1/P-101") == pump
    assert live.resolve_equipment("P-101.VIB") == pump
    assert live.resolve_equipment("south/water/ps1/P-101") is None
    assert live.resolve_equipment("X-1") is None


def test_equipment_mentioned_in_a_question(plant):
    pump, _ = plant
    assert live.mentioned_equipment("why is pump P-101 alarming?") == pump
    assert live.mentioned_equipment("what about p101 today") == pump
    assert live.mentioned_equipment("what happened to the pump last night?") == pump  # the only pump
    assert live.mentioned_equipment("how do I align a coupling?") is None


def test_last_night_window_in_plant_time():
    start, end, label = live.question_window("what happened last night?", now=datetime(2026, 3, 2, 9, 30, tzinfo=UTC), time_zone="UTC")
    assert (start, end) == (datetime(2026, 3, 1, 18, tzinfo=UTC), datetime(2026, 3, 2, 6, tzinfo=UTC))
    start, end, _ = live.question_window("status?", now=datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    assert end - start == timedelta(hours=24)


def test_live_passages_summarise_sensors_and_warnings(plant, t0):
    from phm.telemetry import services as telemetry

    pump, _ = plant
    telemetry.ingest_readings(
        readings=[{"sensor": "P-101.VIB", "ts": (t0 + timedelta(minutes=i)).isoformat(), "value": 2.0 + i} for i in range(5)], channel="test"
    )
    telemetry.ingest_logs(records=[{"source": "P-101", "ts": (t0 + timedelta(minutes=3)).isoformat(), "level": "WARN", "message": "vibration high"}], channel="test")
    passages = {p.document: p for p in live.live_passages(pump, question="status now?")}
    stats = passages["live: sensor statistics of P-101"].text
    assert "P-101.VIB (Vibration, mm/s): mean 4, min 2, max 6, start 2 -> end 6, 5 readings" in stats
    assert "P-101.TEMP (Bearing temperature, degC): no readings in the window" in stats
    assert "vibration high" in passages["live: log events of P-101"].text


def test_open_alarms_are_cited_when_the_alarms_app_has_them(plant, t0):
    from django.apps import apps

    try:
        alarm_model = apps.get_model("alarms", "Alarm")
        point_model = apps.get_model("alarms", "AlarmPoint")
    except LookupError:
        pytest.skip("phm.alarms has no Alarm model yet")
    pump, _ = plant
    point = point_model.objects.create(equipment=pump, source="detector:test")
    alarm_model.objects.create(point=point, equipment=pump, source="detector:test", severity=700, score=3.2, peak_score=4.0, message="Vibration anomaly", raised_at=t0)
    passages = {p.document: p for p in live.live_passages(pump, question="why is it alarming?")}
    assert "Vibration anomaly" in passages["live: alarms of P-101"].text


def test_no_alarm_passage_without_alarms(plant):
    pump, _ = plant
    assert all("alarms" not in p.document for p in live.live_passages(pump, question="why is it alarming?"))
