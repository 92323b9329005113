"""Operators see the diagnosis on the equipment page, in the alarm console and on its own page;
only engineers get the confirm / correct form."""

from __future__ import annotations

import re

import pytest

from phm.analytics import diagnosis
from tests.phm.analytics.diagnosis_helpers import (  # noqa: F401  (fixtures)
    demo_plant,
    diagnoser_version,
    fresh_knowledge_indexes,
    load_procedures,
    played_alarm,
    tiny_diagnoser_folder,
    tiny_models,
)


@pytest.fixture
def stored(diagnoser_version, demo_plant):
    load_procedures()
    return diagnosis.run_diagnosis(alarm_id=played_alarm(tag="P-101", fault="bearing_wear").pk)


def test_equipment_page_shows_the_diagnosis_with_its_evidence(stored, operator_user, client):
    client.force_login(operator_user)
    page = client.get("/equipment/P-101/").content.decode()
    panel = page[page.index('data-testid="diagnosis"'):]
    assert stored.fault.replace("_", " ") in panel and stored.result["explanation"][:40].replace("'", "&#x27;") in panel
    sensors = panel[panel.index('data-testid="diagnosis-sensors"'):panel.index('data-testid="diagnosis-logs"')]
    top = stored.result["evidence"]["sensors"][0]
    assert f"<code>{top['sensor']}</code>" in sensors and f"{round(100 * top['share'])} %" in sensors
    assert 'data-testid="diagnosis-image"' in panel and f"/media/images/P-101/" in panel
    # Actions cite knowledge-base passages; the citation opens the passage.
    citation = stored.result["actions"][0]["citations"][0]
    assert stored.result["actions"][0]["text"][:30] in panel and f'href="/knowledge/passages/{citation["chunk_id"]}/"' in panel
    passage = client.get(f"/knowledge/passages/{citation['chunk_id']}/").content.decode()
    assert citation["locator"].split(",")[0] in passage
    assert 'data-testid="diagnosis-feedback-form"' not in panel  # operators do not label


def test_console_lists_the_diagnosis_of_each_alarm(stored, operator_user, client):
    client.force_login(operator_user)
    rows = client.get("/console/rows/").content.decode()
    cell = re.search(r'data-testid="alarm-diagnosis">(.*?)</td>', rows, re.S).group(1)
    assert f'href="/diagnoses/{stored.pk}/"' in cell and stored.fault in cell


def test_diagnosis_page_renders_for_an_operator_and_has_the_form_for_an_engineer(stored, operator_user, engineer_user, client):
    client.force_login(operator_user)
    page = client.get(f"/diagnoses/{stored.pk}/")
    assert page.status_code == 200 and f"Diagnosis {stored.pk}" in page.content.decode()
    assert 'data-testid="diagnosis-similar"' in page.content.decode()
    client.force_login(engineer_user)
    form = client.get(f"/diagnoses/{stored.pk}/").content.decode()
    assert 'data-testid="diagnosis-feedback-form"' in form
    assert all(f'<option value="{f}">' in form for f in stored.model_version.classes("pump"))


def test_a_diagnosis_without_a_model_says_what_to_run(tiny_models, demo_plant, operator_user, client):
    stored = diagnosis.run_diagnosis(alarm_id=played_alarm(image=False).pk)
    client.force_login(operator_user)
    page = client.get("/equipment/P-101/").content.decode()
    assert 'data-status="no_model"' in page and "phm_diagnose --train-demo" in page
