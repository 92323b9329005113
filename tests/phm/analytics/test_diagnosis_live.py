"""The assistant's live context includes the latest diagnosis of the equipment asked about."""

from __future__ import annotations

from phm.analytics import diagnosis
from phm.assistant import live
from tests.phm.analytics.diagnosis_helpers import (  # noqa: F401  (fixtures)
    demo_plant,
    diagnoser_version,
    fresh_knowledge_indexes,
    load_procedures,
    played_alarm,
    tiny_diagnoser_folder,
    tiny_models,
)


def test_live_passages_carry_the_latest_diagnosis_with_evidence_and_feedback(diagnoser_version, demo_plant, django_user_model):
    load_procedures()
    alarm = played_alarm(tag="P-101", fault="bearing_wear")
    stored = diagnosis.run_diagnosis(alarm_id=alarm.pk)
    diagnosis.submit_feedback(diagnosis=stored, verdict="confirm", comment="outer race spalling", user=django_user_model.objects.create(username="e"))
    passages = live.live_passages(alarm.equipment, question="why did P-101 alarm?")
    text = next(p.text for p in passages if p.document == "live: latest diagnosis of P-101")
    assert f"{stored.fault.replace('_', ' ')} with probability {stored.probability:.2f}" in text
    assert f"alarm {alarm.pk}" in text and "Explanation: " in text and "Contributing sensors: " in text
    top = stored.result["evidence"]["sensors"][0]["sensor"]
    assert top in text
    assert "Engineer feedback: confirmed as" in text and "outer race spalling" in text
    assert stored.fault != "normal" and "Recommended actions: 1. " in text


def test_no_diagnosis_passage_before_a_diagnosis_is_done(tiny_models, demo_plant):
    alarm = played_alarm(image=False)
    diagnosis.run_diagnosis(alarm_id=alarm.pk)  # no model: status no_model, nothing to tell
    passages = live.live_passages(alarm.equipment, question="what is wrong with P-101 now?")
    assert not any("diagnosis" in p.document for p in passages)
