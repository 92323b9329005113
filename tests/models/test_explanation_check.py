"""The explanation check refuses wording that contradicts the diagnosis or its evidence, and the
independent slot reader (models.diagnosis.faithfulness) agrees claim by claim. No model needed:
the check and the reader work on a DiagnosisResult."""

from __future__ import annotations

import json

import pytest

from models.diagnosis import NO_KNOWN_FAULT, DiagnosisResult, Evidence, ImageEvidence, LogEvidence
from models.diagnosis.explain import evidence_items, prefill, template_explanation, validate
from models.diagnosis.faithfulness import read_claims
from models.diagnosis.taxonomy import DEFAULT_TAXONOMY
from models.diagnosis.types import SensorEvidence

ALL_FAULTS = sorted({c for cs in DEFAULT_TAXONOMY.values() for c in cs})
PUMP_SENSORS = ["VIB", "TEMP_BRG", "CURRENT", "PRESS_DIS", "PRESS_SUC", "FLOW", "SPEED"]


def cavitation(fault: str = "cavitation") -> DiagnosisResult:
    evidence = Evidence(
        sensors=[SensorEvidence("PRESS_SUC", 0.52, "low"), SensorEvidence("FLOW", 0.3, "mixed"), SensorEvidence("PRESS_DIS", 0.18, "low")],
        log_templates=[LogEvidence("Suction pressure <NUM> bar below NPSH margin <NUM> bar", 3, 0.0, 6.0, "WARN")],
        image=ImageEvidence("sim:P-201", "uneven_inlet_pattern", 0.81),
    )
    return DiagnosisResult(fault=fault, probability=0.84, probabilities={fault: 0.84}, modalities=("sensors", "logs", "image"), evidence=evidence)


def check(summary: str, result: DiagnosisResult) -> str | None:
    items = evidence_items(result.evidence)
    raw = prefill(result.fault, items) + json.dumps(summary)[1:] + "}"
    return validate(raw, fault=result.fault, items=items, other_faults=ALL_FAULTS, all_sensors=PUMP_SENSORS, equipment="P-201")


FAITHFUL = "Suction pressure PRESS_SUC is low and the controller logged suction pressure below the NPSH margin."


def test_a_faithful_summary_passes_the_check_and_the_slot_reader():
    result = cavitation()
    assert check(FAITHFUL, result) == FAITHFUL
    reading = read_claims(FAITHFUL, result)
    assert reading.faithful, reading.problems()
    assert {c.slot for c in reading.claims} >= {"sensor", "log"}


def test_a_normal_deviation_for_a_fault_alarm_is_refused():
    sentence = "The controller logged a normal deviation from the PRESS_SUC sensor."
    result = cavitation()
    assert check(sentence, result) is None
    reading = read_claims(sentence, result)
    assert not reading.faithful
    assert any(c.slot == "fault" and c.verdict == "contradicted" for c in reading.claims)


def test_a_normal_deviation_is_refused_for_a_no_known_fault_alarm_too():
    result = cavitation(NO_KNOWN_FAULT)
    assert check("The controller logged a normal deviation from the PRESS_SUC sensor.", result) is None


def test_a_sensor_named_with_the_wrong_direction_is_refused():
    sentence = "Suction pressure PRESS_SUC is high and the controller logged suction pressure below the NPSH margin."
    result = cavitation()
    assert check(sentence, result) is None
    reading = read_claims(sentence, result)
    assert [c.reason for c in reading.problems()] == ["PRESS_SUC is low"]


def test_a_sensor_named_by_its_words_with_the_wrong_direction_is_refused():
    assert check("The suction pressure rose while the flow was unstable.", cavitation()) is None


def test_a_fault_the_diagnosis_did_not_give_is_refused():
    sentence = "Suction pressure PRESS_SUC is low, which points to bearing wear."
    result = cavitation()
    assert check(sentence, result) is None
    assert any(c.slot == "fault" and c.verdict == "contradicted" for c in read_claims(sentence, result).claims)


def test_an_image_finding_the_image_does_not_show_is_contradicted_by_the_slot_reader():
    reading = read_claims("Suction pressure PRESS_SUC is low and the image shows a bearing hot spot.", cavitation())
    assert [(c.slot, c.verdict) for c in reading.problems()] == [("image", "contradicted")]


def test_a_log_message_the_evidence_lacks_is_unsupported_for_the_slot_reader():
    reading = read_claims("PRESS_SUC is low and the controller logged a winding overload trip.", cavitation())
    assert [(c.slot, c.verdict) for c in reading.problems()] == [("log", "unsupported")]


@pytest.mark.parametrize("fault", ["cavitation", NO_KNOWN_FAULT])
def test_the_template_is_faithful_for_the_slot_reader(fault):
    result = cavitation(fault)
    text = template_explanation(result.fault, result.probability, "P-201", result.evidence)
    reading = read_claims(text, result)
    assert reading.faithful, reading.problems()


def test_a_comparison_with_normal_is_not_a_claim_of_normal():
    sentence = "Sensor PRESS_SUC deviates most from normal, consistent with cavitation."
    result = cavitation()
    assert check(sentence, result) == sentence
    assert read_claims(sentence, result).faithful


def test_a_comparison_with_its_normal_behaviour_is_not_a_claim_of_normal():
    sentence = "Sensor PRESS_SUC deviates from its normal behaviour the most."
    assert check(sentence, cavitation()) == sentence and read_claims(sentence, cavitation()).faithful


def test_a_fault_explanation_that_restates_no_evidence_is_not_faithful_for_the_slot_reader():
    reading = read_claims("The valve was worn out.", cavitation())
    assert [c.slot for c in reading.problems()] == ["evidence"]


def test_a_log_template_cut_at_its_commas_still_matches():
    result = cavitation()
    result.evidence.log_templates.append(LogEvidence("PLC heartbeat OK, scan time <NUM> ms", 2, 8.0, 4.0, "INFO"))
    text = template_explanation("cavitation", 0.84, "P-201", result.evidence)
    assert read_claims(text, result).faithful, read_claims(text, result).problems()


@pytest.mark.parametrize("fault", ["cavitation", NO_KNOWN_FAULT])
def test_the_lora_reference_summaries_pass_the_check_and_the_slot_reader(fault):
    from models.diagnosis.explainer_tuning import make_pairs, reference_summary

    result = cavitation(fault)
    summary = reference_summary(result)
    assert "PRESS_SUC is low" in summary and "NPSH margin" in summary
    assert check(summary, result) == summary
    assert read_claims(summary, result).faithful, read_claims(summary, result).problems()
    pairs = make_pairs([(result, "P-201")], other_faults=ALL_FAULTS, all_sensors=PUMP_SENSORS)
    assert [p.target for p in pairs] == [summary] and pairs[0].prefill.endswith('"summary": "')


def test_a_lora_adapter_is_tuned_and_saved_in_the_diagnoser_folder(tmp_path):
    """peft on a tiny real Llama (SmolLM2's tokenizer and chat template): the loss falls on the
    pairs it learns, and the adapter lands where FaultDiagnoser.load looks for it."""
    from models.diagnosis.explainer_tuning import ADAPTER_DIR, make_pairs, tune_explainer
    from tests.phm.assistant.helpers import tiny_language_model

    pairs = make_pairs([(cavitation(), "P-201"), (cavitation(NO_KNOWN_FAULT), "P-201")], other_faults=ALL_FAULTS, all_sensors=PUMP_SENSORS)
    report = tune_explainer(pairs, tmp_path, epochs=12, grad_accumulation=1, learning_rate=5e-3, lm=tiny_language_model())
    assert report["pairs"] == 2 and report["last_loss"] < report["first_loss"]
    assert (tmp_path / ADAPTER_DIR / "adapter_config.json").exists()
    assert json.loads((tmp_path / ADAPTER_DIR / "tuning.json").read_text())["steps"] == 24


def test_an_explanation_that_restates_nothing_is_not_faithful_for_an_unknown_fault_either():
    assert [c.slot for c in read_claims("No", cavitation(NO_KNOWN_FAULT)).problems()] == ["evidence"]


def test_an_invented_code_is_unsupported_for_the_slot_reader():
    reading = read_claims("The current CVR was high and PRESS_SUC is low.", cavitation())
    assert ("sensor", "CVR") in [(c.slot, c.text) for c in reading.problems()]


def test_a_logged_message_is_refused_when_the_evidence_has_no_log_change():
    result = cavitation()
    result.evidence.log_templates.clear()
    sentence = "Suction pressure PRESS_SUC is low and the controller logged pressure unsteady."
    assert check(sentence, result) is None
    assert [c.slot for c in read_claims(sentence, result).problems()] == ["log"]


def test_a_quoted_log_template_matches_despite_the_cue_words():
    result = cavitation()
    result.evidence.log_templates.insert(0, LogEvidence("PLC heartbeat OK, scan time <NUM> ms", 2, 1.0, 4.0, "INFO"))
    sentence = "Suction pressure PRESS_SUC is low, the controller logged 'PLC heartbeat OK, scan time ms'."
    assert read_claims(sentence, result).faithful, read_claims(sentence, result).problems()


CHILLER_SENSORS = ["CHW_SUPPLY", "CHW_RETURN", "COND_PRESS", "EVAP_PRESS", "COMP_CURRENT", "POWER"]


def drifting_supply_with_a_vanished_log() -> DiagnosisResult:
    """The trial's CH-501 supply-temperature drift (seed 1, +5 min): the condenser-pressure warning
    that the controller logged 5.1 times an hour stopped (0 in the window); COND_PRESS reads low."""
    directions = {"CHW_SUPPLY": "high", "CHW_RETURN": "mixed", "COND_PRESS": "low", "EVAP_PRESS": "mixed", "COMP_CURRENT": "high", "POWER": "high"}
    evidence = Evidence(
        sensors=[SensorEvidence(s, 1.0 if s == "CHW_SUPPLY" else 0.0, d) for s, d in directions.items()],
        log_templates=[LogEvidence("Condenser pressure <NUM> bar high, check condenser tubes", 0, 5.1063829787234045, 0.0, "WARNING")],
    )
    return DiagnosisResult(fault="sensor_drift", probability=0.9981632828712463, probabilities={"sensor_drift": 0.9981632828712463},
                           modalities=("sensors", "logs"), evidence=evidence)


def test_a_quoted_log_template_is_not_read_as_a_sensor_claim():
    result = drifting_supply_with_a_vanished_log()
    text = template_explanation(result.fault, result.probability, "CH-501", result.evidence)
    assert text == ("CH-501: Abnormal instrument reading / sensor drift (AIR), probability 100%. Sensors: CHW_SUPPLY high "
                    "(100% of the deviation). Logs: 'Condenser pressure <NUM> bar high, check condenser tubes' 0x in the window "
                    "(stopped, normally 5.1/h).")
    reading = read_claims(text, result)
    assert reading.faithful, reading.problems()
    assert ("log", "condenser pressure <num> bar high, check condenser tubes") in [(c.slot, c.text) for c in reading.claims]


def test_a_sensor_below_the_listed_share_given_the_opposite_direction_is_refused():
    """COND_PRESS (share 0, low) is not an evidence item, but the check knows its direction."""
    result = drifting_supply_with_a_vanished_log()
    for sentence in ("The condenser pressure is high and CHW_SUPPLY is high.",
                     "CHW_SUPPLY is high and the controller logged condenser pressure high, check condenser tubes."):
        items = evidence_items(result.evidence)
        raw = prefill(result.fault, items) + json.dumps(sentence)[1:] + "}"
        assert validate(raw, fault=result.fault, items=items, other_faults=ALL_FAULTS, all_sensors=CHILLER_SENSORS, equipment="CH-501",
                        directions={s.sensor: s.direction for s in result.evidence.sensors}) is None, sentence
        assert any(c.verdict == "contradicted" for c in read_claims(sentence, result).claims)


def test_explain_refuses_a_direction_the_evidence_of_a_sensor_below_the_listed_share_contradicts():
    from models.diagnosis.explain import explain

    result = drifting_supply_with_a_vanished_log()
    text, source = explain(fault=result.fault, probability=result.probability, equipment="CH-501", evidence=result.evidence,
                           generator=lambda messages, start: 'The condenser pressure is high and CHW_SUPPLY is high."',
                           other_faults=ALL_FAULTS, all_sensors=CHILLER_SENSORS)
    assert source == "template" and read_claims(text, result).faithful


def a_stopped_npsh_warning() -> DiagnosisResult:
    """The live check's P-101 bearing-temperature drift (6 December): the NPSH warning the
    controller logged 2.7 times an hour stopped (0 in the window)."""
    evidence = Evidence(
        sensors=[SensorEvidence("TEMP_BRG", 0.54, "high"), SensorEvidence("PRESS_SUC", 0.25, "low"), SensorEvidence("FLOW", 0.21, "mixed")],
        log_templates=[LogEvidence("Suction pressure <NUM> bar below NPSH margin <NUM> bar", 0, 2.7, 0.0, "WARN")],
    )
    return DiagnosisResult(fault="sensor_drift", probability=0.57, probabilities={"sensor_drift": 0.57},
                           modalities=("sensors", "logs"), evidence=evidence)


def test_a_message_that_stopped_told_as_logged_is_refused_by_the_check_and_contradicted_by_the_reader():
    """The live model wording that both passed: the controller did NOT log it in the window."""
    result = a_stopped_npsh_warning()
    assert check(FAITHFUL, result) is None
    problems = read_claims(FAITHFUL, result).problems()
    assert [(c.slot, c.verdict) for c in problems] == [("log", "contradicted")], problems


def test_a_message_that_thinned_out_told_as_logged_is_unsupported():
    result = a_stopped_npsh_warning()
    result.evidence.log_templates[0] = LogEvidence("Suction pressure <NUM> bar below NPSH margin <NUM> bar", 1, 6.0, 2.0, "WARN")
    assert check(FAITHFUL, result) is None
    assert [(c.slot, c.verdict) for c in read_claims(FAITHFUL, result).problems()] == [("log", "unsupported")]


@pytest.mark.parametrize("sentence", [
    "Bearing temperature TEMP_BRG is high and the controller stopped logging suction pressure below the NPSH margin.",
    "TEMP_BRG is high and the suction pressure below NPSH margin message has stopped (normally 2.7/h).",
])
def test_a_message_that_stopped_told_as_stopped_passes(sentence):
    result = a_stopped_npsh_warning()
    assert check(sentence, result) == sentence
    assert read_claims(sentence, result).faithful, read_claims(sentence, result).problems()


def test_the_lora_reference_tells_a_stopped_message_as_stopped():
    from models.diagnosis.explainer_tuning import reference_summary

    result = a_stopped_npsh_warning()
    reference = reference_summary(result)
    assert "stopped logging" in reference, reference
    assert check(reference, result) == reference
    assert read_claims(reference, result).faithful, read_claims(reference, result).problems()


def test_the_evidence_item_of_a_stopped_message_says_it_stopped():
    items = evidence_items(a_stopped_npsh_warning().evidence)
    assert [i.text for i in items if i.id == "L1"] == ["log 'Suction pressure <NUM> bar below NPSH margin <NUM> bar' 0x in the window "
                                                       "(stopped, normally 2.7/h)"]


def test_a_fault_summary_that_leaves_out_the_leading_sensor_is_refused():
    """The live P-101 wording named only PRESS_SUC (a quarter of the deviation) for a TEMP_BRG
    drift: true, but an operator reads cavitation into it. The leading sensor must be named."""
    result = a_stopped_npsh_warning()
    result.evidence.log_templates[0] = LogEvidence("Suction pressure <NUM> bar below NPSH margin <NUM> bar", 3, 0.0, 6.0, "WARN")
    assert check("Suction pressure PRESS_SUC is low and the controller logged suction pressure below the NPSH margin.", result) is None
    named = "Bearing temperature TEMP_BRG is high and the controller logged suction pressure below the NPSH margin."
    assert check(named, result) == named
