"""Engineer feedback on diagnoses (API and dashboard form) and the retrain job that learns from it."""

from __future__ import annotations

import pytest

from models.diagnosis.taxonomy import training_label
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from phm.analytics import diagnoser_training, diagnosis
from phm.analytics.models import DiagnoserJobKind, DiagnoserVersion, DiagnosisFeedback, JobStatus
from tests.phm.analytics.diagnosis_helpers import (  # noqa: F401  (fixtures)
    demo_plant,
    diagnoser_version,
    fresh_knowledge_indexes,
    played_alarm,
    tiny_diagnoser_folder,
    tiny_models,
)
from tests.phm.dashboard.conftest import engineer_user, operator_user  # noqa: F401  (fixtures)


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def stored(diagnoser_version, demo_plant):
    return diagnosis.run_diagnosis(alarm_id=played_alarm(tag="P-101", fault="bearing_wear", image=False).pk)


def a_wrong_fault(stored) -> str:
    return next(f for f in stored.model_version.classes("pump") if f != stored.fault)


def test_engineer_confirms_over_the_api(stored, engineer_user):
    response = client_for(engineer_user).post(f"/api/v1/diagnoses/{stored.pk}/feedback", {"verdict": "confirm", "comment": "spalling found"}, format="json")
    assert response.status_code == 201, response.json()
    # A confirmation teaches the diagnosed class; a confirmed "no known fault" teaches "normal".
    assert response.json()["label"] == training_label(stored.fault) and response.json()["user"] == "eng1"
    row = DiagnosisFeedback.objects.get(diagnosis=stored)
    assert (row.verdict, row.label, row.comment, row.used_in_training_at) == ("confirm", training_label(stored.fault), "spalling found", None)


def test_correction_names_a_class_of_the_equipment_type(stored, engineer_user):
    wrong = a_wrong_fault(stored)
    response = client_for(engineer_user).post(f"/api/v1/diagnoses/{stored.pk}/feedback", {"verdict": "correct", "fault": wrong}, format="json")
    assert response.status_code == 201 and response.json()["label"] == wrong and response.json()["corrected_fault"] == wrong


def test_unknown_fault_for_the_equipment_type_is_a_400_naming_the_allowed_classes(stored, engineer_user):
    # condenser_fouling is a chiller fault: not a class of a pump.
    response = client_for(engineer_user).post(f"/api/v1/diagnoses/{stored.pk}/feedback", {"verdict": "correct", "fault": "condenser_fouling"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert "unknown fault 'condenser_fouling' for a pump" in body["error"]
    assert body["detail"]["allowed"] == stored.model_version.classes("pump")
    assert "bearing_wear" in body["error"] and "cavitation" in body["error"]
    assert not DiagnosisFeedback.objects.exists()


def test_a_correction_without_a_fault_and_an_unknown_verdict_are_refused(stored, engineer_user):
    client = client_for(engineer_user)
    missing = client.post(f"/api/v1/diagnoses/{stored.pk}/feedback", {"verdict": "correct"}, format="json")
    assert missing.status_code == 400 and "needs the fault" in missing.json()["error"]
    verdict = client.post(f"/api/v1/diagnoses/{stored.pk}/feedback", {"verdict": "maybe"}, format="json")
    assert verdict.status_code == 400 and "verdict" in verdict.json()["detail"]


def test_operators_may_read_but_not_give_feedback(stored, operator_user):
    client = client_for(operator_user)
    assert client.get(f"/api/v1/diagnoses/?alarm={stored.alarm_id}").json()["results"][0]["fault"] == stored.fault
    assert client.post(f"/api/v1/diagnoses/{stored.pk}/feedback", {"verdict": "confirm"}, format="json").status_code == 403


def test_dashboard_form_records_feedback_and_shows_errors(stored, engineer_user, client):
    client.force_login(engineer_user)
    bad = client.post(f"/diagnoses/{stored.pk}/feedback/", {"verdict": "correct", "fault": "condenser_fouling"}, follow=True)
    assert "unknown fault" in bad.content.decode() and not DiagnosisFeedback.objects.exists()
    good = client.post(f"/diagnoses/{stored.pk}/feedback/", {"verdict": "correct", "fault": a_wrong_fault(stored), "comment": "coupling worn"}, follow=True)
    page = good.content.decode()
    assert good.status_code == 200 and "coupling worn" in page and "waiting for the next retraining" in page


def test_operator_cannot_post_the_form(stored, operator_user, client):
    client.force_login(operator_user)
    assert client.post(f"/diagnoses/{stored.pk}/feedback/", {"verdict": "confirm"}).status_code == 403


def test_retrain_learns_from_feedback_marks_it_used_and_activates_a_new_version(stored, engineer_user, monkeypatch):
    from tests.phm.analytics.diagnosis_helpers import TINY_MODEL

    monkeypatch.setenv("PHM_DIAGNOSIS_DEMO", '{"equipment_types": ["pump"]}')  # the simulated replay sample: pumps,
    monkeypatch.setenv("PHM_DIAGNOSIS_REPLAY_SIMULATED", "6")  # one incident per pump class
    monkeypatch.setenv("PHM_DIAGNOSIS_MODEL", f'{{"num_layers": {TINY_MODEL["num_layers"]}}}')
    monkeypatch.setenv("PHM_DIAGNOSIS_RETRAIN_EPOCHS", "2")
    wrong = a_wrong_fault(stored)
    diagnosis.submit_feedback(diagnosis=stored, verdict="correct", fault=wrong, user=engineer_user)
    response = client_for(engineer_user).post("/api/v1/diagnoser/train", {"kind": "retrain"}, format="json")
    assert response.status_code == 202, response.json()
    job = diagnoser_training.run_job(job_id=response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (job.feedback_count, job.replay_count) == (1, 6)  # one corrected incident; one simulated incident per pump class
    new = job.result
    assert new.version == 2 and new.is_active and new.parent == stored.model_version and new.source == "feedback"
    assert not DiagnoserVersion.objects.get(version=1).is_active
    feedback = DiagnosisFeedback.objects.get()
    assert feedback.used_in_training_at is not None and feedback.trained_version == new
    assert (diagnosis.artifacts_root() / new.artifact / "config.json").exists()
    # Nothing new to learn: a second retrain is refused with the reason.
    again = client_for(engineer_user).post("/api/v1/diagnoser/train", {"kind": "retrain"}, format="json")
    assert again.status_code == 409 and "no feedback since the last training" in again.json()["error"]


def test_only_one_diagnoser_job_at_a_time(stored, engineer_user):
    diagnosis.submit_feedback(diagnosis=stored, verdict="confirm", user=engineer_user)
    diagnoser_training.start_job(kind=DiagnoserJobKind.RETRAIN, enqueue=False)
    with pytest.raises(diagnoser_training.DiagnoserTrainingError, match="is still queued"):
        diagnoser_training.start_job(kind=DiagnoserJobKind.DEMO, enqueue=False)


def test_engineer_can_request_a_diagnosis_again(stored, engineer_user, django_capture_on_commit_callbacks):
    from phm.celery import app

    client = client_for(engineer_user)
    previous, app.conf.task_always_eager = app.conf.task_always_eager, True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/api/v1/diagnoses/", {"alarm": stored.alarm_id}, format="json")
    finally:
        app.conf.task_always_eager = previous
    assert response.status_code == 202 and response.json() == {"alarm": stored.alarm_id, "status": "queued"}
    rows = client.get(f"/api/v1/diagnoses/?alarm={stored.alarm_id}").json()["results"]
    assert [r["trigger"] for r in rows] == ["manual", "raise"] and rows[0]["status"] == "done"
    assert client.post("/api/v1/diagnoses/", {"alarm": 999_999}, format="json").status_code == 404
