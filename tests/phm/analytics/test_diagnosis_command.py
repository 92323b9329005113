"""``phm_diagnose``: train the demo diagnoser, register a trained folder, inject a demo fault and
print its stored diagnosis."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from phm.analytics.models import DiagnoserVersion, Diagnosis
from tests.phm.analytics.diagnosis_helpers import (  # noqa: F401  (fixtures)
    demo_plant,
    fresh_knowledge_indexes,
    load_procedures,
    tiny_diagnoser_folder,
    tiny_models,
)


def run(*args) -> str:
    out = io.StringIO()
    call_command("phm_diagnose", *args, stdout=out)
    return out.getvalue()


def test_train_demo_trains_once(tiny_models, demo_plant, monkeypatch):
    monkeypatch.setenv("PHM_DIAGNOSIS_DEMO", '{"equipment_types": ["pump"], "per_class": 1}')
    monkeypatch.setenv("PHM_DIAGNOSIS_MODEL", '{"num_layers": 2, "epochs": 1, "image_epochs": 1}')
    assert "diagnoser v1 active (Trained on simulated incidents" in run("--train-demo")
    version = DiagnoserVersion.objects.get()
    assert version.is_active and version.trained_on["simulated"] == 6 and "pump" in version.taxonomy
    assert version.trained_on["booster_simulated"] == 18  # the trees also learn from three times as many faults
    assert "v1 is active already" in run("--train-demo")
    assert DiagnoserVersion.objects.count() == 1


def test_inject_plays_the_fault_and_prints_the_stored_diagnosis(tiny_models, tiny_diagnoser_folder, demo_plant):
    load_procedures()
    assert "diagnoser v1 active, registered from" in run("--register", str(tiny_diagnoser_folder))
    output = run("--inject", "bearing_wear", "--equipment", "P-101", "--minutes", "15")
    stored = Diagnosis.objects.get()
    assert f"alarm {stored.alarm_id} raised" in output
    assert f"diagnosis {stored.pk} of alarm {stored.alarm_id} on P-101: done; fault {stored.fault}" in output
    assert "  sensors: " in output and "  action: " in output and "chunk " in output
    assert stored.alarm.source.startswith("demo:bearing_wear:") and stored.image_id is not None


def test_a_second_fault_of_the_same_unit_is_played_just_before_the_first(tiny_models, tiny_diagnoser_folder, demo_plant):
    run("--register", str(tiny_diagnoser_folder))
    run("--inject", "cavitation", "--equipment", "P-201", "--minutes", "15")
    run("--inject", "misalignment", "--equipment", "P-201", "--minutes", "15")
    first, second = Diagnosis.objects.order_by("pk").select_related("alarm")
    assert second.alarm.raised_at < first.window_start  # its own data, before the first fault's history
    assert second.status == "done" and second.alarm.source.startswith("demo:misalignment:")


def test_inject_without_a_diagnoser_says_what_to_run(tiny_models, demo_plant):
    with pytest.raises(CommandError, match="phm_diagnose --train-demo"):
        run("--inject", "cavitation", "--equipment", "P-101")


def test_register_refuses_a_folder_that_is_not_a_diagnoser(tiny_models, demo_plant, tmp_path):
    with pytest.raises(CommandError, match="is not a saved FaultDiagnoser"):
        run("--register", str(tmp_path))


def test_the_trees_extra_incidents_follow_the_demo_options_and_refuse_a_bad_count():
    from phm.analytics.diagnoser_training import DiagnoserTrainingError, booster_per_class

    assert booster_per_class({}) == 288  # three times the default 96 per class
    assert booster_per_class({"per_class": 4}) == 12
    assert booster_per_class({"per_class": 4, "booster_per_class": 0}) == 0
    assert booster_per_class({"alarm_at": "fixed"}) == 0  # the old 45-90-minute incidents: none
    for bad in (-1, 2.5, "many", True):
        with pytest.raises(DiagnoserTrainingError, match="booster_per_class must be a whole number"):
            booster_per_class({"booster_per_class": bad})
