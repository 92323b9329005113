"""Re-diagnosis of an open alarm as evidence grows: follow-ups after the raise and on a severity
escalation, each a new stored row, a ``diagnosis`` webhook event only when the top fault or its
confidence band changes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from phm.alarms.models import Alarm, EventType, OutboxMessage
from phm.analytics import diagnosis, rediagnosis
from phm.analytics.models import Diagnosis, DiagnosisStatus, DiagnosisTrigger
from tests.phm.analytics.diagnosis_helpers import (  # noqa: F401  (fixtures)
    alarm_end,
    demo_plant,
    diagnoser_version,
    fresh_knowledge_indexes,
    tiny_diagnoser_folder,
    tiny_models,
)


def alarm_with_data_after_it(minutes_after: float = 6.0) -> Alarm:
    """A fault played 25 min (the last 15 faulty) and its alarm raised ``minutes_after`` before the
    played data ends: the evidence of a +5 min re-diagnosis has arrived, that of +15 min has not."""
    from phm.analytics import diagnosis_demo

    injection = diagnosis_demo.play_fault(equipment_tag="P-101", fault="bearing_wear", end=alarm_end(), fault_minutes=15,
                                          history_minutes=25, image=False)
    return diagnosis_demo.raise_alarm(injection=injection, at=injection.end - timedelta(minutes=minutes_after))


def diagnosis_events(alarm: Alarm) -> int:
    return OutboxMessage.objects.filter(alarm=alarm, event_type=EventType.DIAGNOSIS).count()


def test_a_follow_up_is_owed_once_its_evidence_has_arrived(diagnoser_version, demo_plant):
    alarm = alarm_with_data_after_it()
    assert rediagnosis.due_rediagnoses() == []  # not diagnosed at the raise yet: the raise comes first
    diagnosis.run_diagnosis(alarm_id=alarm.pk)
    due = rediagnosis.due_rediagnoses()
    assert due == [rediagnosis.DueRediagnosis(alarm.pk, DiagnosisTrigger.FOLLOW_UP, "+300s")]  # +900 s: no data yet


def test_a_follow_up_is_a_new_row_with_evidence_up_to_its_offset(diagnoser_version, demo_plant):
    alarm = alarm_with_data_after_it()
    first = diagnosis.run_diagnosis(alarm_id=alarm.pk)
    later = diagnosis.run_diagnosis(alarm_id=alarm.pk, trigger=DiagnosisTrigger.FOLLOW_UP, stage="+300s")
    assert later.pk != first.pk and later.status == DiagnosisStatus.DONE, later.error
    assert first.window_end == alarm.raised_at
    assert later.window_end == alarm.raised_at + timedelta(seconds=300)
    assert rediagnosis.due_rediagnoses() == []  # the stage is stored: not owed again


def test_a_stage_delivered_twice_stores_one_row(diagnoser_version, demo_plant):
    alarm = alarm_with_data_after_it()
    diagnosis.run_diagnosis(alarm_id=alarm.pk)
    assert diagnosis.run_diagnosis(alarm_id=alarm.pk, trigger=DiagnosisTrigger.FOLLOW_UP, stage="+300s") is not None
    assert diagnosis.run_diagnosis(alarm_id=alarm.pk, trigger=DiagnosisTrigger.FOLLOW_UP, stage="+300s") is None
    assert Diagnosis.objects.filter(alarm=alarm, stage="+300s").count() == 1


def test_an_escalation_of_the_severity_band_is_owed_a_re_diagnosis(diagnoser_version, demo_plant):
    alarm = alarm_with_data_after_it()
    diagnosis.run_diagnosis(alarm_id=alarm.pk, trigger=DiagnosisTrigger.RAISE)
    Diagnosis.objects.filter(alarm=alarm).update(alarm_severity=200)  # diagnosed while the alarm was 'low'
    Alarm.objects.filter(pk=alarm.pk).update(severity=800)  # now 'urgent'
    stages = {d.stage for d in rediagnosis.due_rediagnoses()}
    assert "escalation:urgent" in stages
    stored = diagnosis.run_diagnosis(alarm_id=alarm.pk, trigger=DiagnosisTrigger.ESCALATION, stage="escalation:urgent")
    assert stored.status == DiagnosisStatus.DONE and stored.window_end > alarm.raised_at
    assert "escalation:urgent" not in {d.stage for d in rediagnosis.due_rediagnoses()}


def test_a_re_diagnosis_with_the_same_fault_and_band_is_stored_but_not_announced(diagnoser_version, demo_plant):
    alarm = alarm_with_data_after_it()
    first = diagnosis.run_diagnosis(alarm_id=alarm.pk)
    assert first.announced and diagnosis_events(alarm) == 1
    again = diagnosis.run_diagnosis(alarm_id=alarm.pk, trigger=DiagnosisTrigger.MANUAL)  # the same evidence: the same answer
    assert (again.fault, diagnosis.confidence_band(again.probability)) == (first.fault, diagnosis.confidence_band(first.probability))
    assert not again.announced and diagnosis_events(alarm) == 1


def test_a_re_diagnosis_with_another_fault_is_announced(diagnoser_version, demo_plant):
    alarm = alarm_with_data_after_it()
    first = diagnosis.run_diagnosis(alarm_id=alarm.pk)
    other = "misalignment" if first.fault != "misalignment" else "cavitation"
    Diagnosis.objects.filter(pk=first.pk).update(fault=other)  # what SCADA was told last differs from what the model says now
    again = diagnosis.run_diagnosis(alarm_id=alarm.pk, trigger=DiagnosisTrigger.MANUAL)
    assert again.announced and diagnosis_events(alarm) == 2


def test_a_re_diagnosis_whose_band_changed_is_announced(diagnoser_version, demo_plant):
    alarm = alarm_with_data_after_it()
    first = diagnosis.run_diagnosis(alarm_id=alarm.pk)
    elsewhere = 0.3 if diagnosis.confidence_band(first.probability) != "low" else 0.95
    Diagnosis.objects.filter(pk=first.pk).update(probability=elsewhere)
    again = diagnosis.run_diagnosis(alarm_id=alarm.pk, trigger=DiagnosisTrigger.MANUAL)
    assert again.announced and diagnosis_events(alarm) == 2
    payload = OutboxMessage.objects.filter(alarm=alarm, event_type=EventType.DIAGNOSIS).order_by("-pk").first().payload["data"]
    assert payload["trigger"] == "manual" and payload["confidence_band"] == diagnosis.confidence_band(again.probability)


@pytest.mark.parametrize(("probability", "band"), [(0.2, "low"), (0.5, "medium"), (0.79, "medium"), (0.8, "high"), (1.0, "high")])
def test_confidence_bands(probability, band):
    assert diagnosis.confidence_band(probability) == band


def test_follow_up_offsets_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("PHM_REDIAGNOSE_AFTER_S", "900, 120")
    assert diagnosis.DiagnosisConfig.from_env().follow_up_s == (120.0, 900.0)
    monkeypatch.setenv("PHM_REDIAGNOSE_AFTER_S", "5 min")
    with pytest.raises(ValueError, match="PHM_REDIAGNOSE_AFTER_S"):
        diagnosis.DiagnosisConfig.from_env()
