"""Health / RUL API and pages with data, for every role: GET /equipment/<tag>/rul, work orders,
RUL models (train, list, activate, roll back) and jobs, the equipment page's panel, the overview's
RUL column."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from phm.assets.models import Equipment
from phm.condition import health, rul
from tests.conftest import user_in_role
from tests.phm.condition.rul_helpers import FAST_PARAMS, NOW, SMALL_FLEET, demo_plant_with_histories

ROLES = ("operator", "engineer", "superuser")


@pytest.fixture
def fleet(db, settings, tmp_path):
    settings.DATA_ROOT = tmp_path
    demo_plant_with_histories()


@pytest.fixture
def clients(db):
    out = {}
    for role in (*ROLES, None):
        client = APIClient()
        client.force_login(user_in_role(f"rul-{role}", role))
        out[role] = client
    return out


def trained_with_estimates() -> None:
    job = rul.run_rul_training(job_id=rul.start_rul_training(equipment_type="pump", params=FAST_PARAMS, enqueue=False).pk)
    assert job.status == "succeeded", job.error
    for tag in ("P-101", "P-201"):
        equipment = Equipment.objects.get(tag=tag)
        health.update_health(equipment=equipment, now=NOW)
        rul.estimate_rul(equipment=equipment, now=NOW)


def test_equipment_rul_for_every_role_with_its_interval_and_history_count(fleet, clients):
    trained_with_estimates()
    for role in ROLES:
        body = clients[role].get("/api/v1/equipment/P-101/rul").json()
        assert body["status"] == "ok" and body["equipment"] == "P-101"
        estimate = body["estimate"]
        assert estimate["lower_days"] <= estimate["rul_days"] <= estimate["upper_days"] and estimate["level"] == 0.8
        assert estimate["histories"] == SMALL_FLEET.sister_pumps
        assert f"from {SMALL_FLEET.sister_pumps} run-to-failure histories (few failures" in body["message"]
        assert 0 <= body["health"]["health"] <= 1
    assert clients[None].get("/api/v1/equipment/P-101/rul").status_code == 403
    assert clients["operator"].get("/api/v1/equipment/NO-SUCH/rul").status_code == 404


def test_equipment_rul_says_plainly_when_there_is_no_model_or_history(fleet, clients):
    fan = clients["operator"].get("/api/v1/equipment/F-401/rul")
    assert fan.status_code == 200
    assert fan.json()["status"] == "not_enough_history" and fan.json()["estimate"] is None
    assert "not enough history: 0 run-to-failure histories" in fan.json()["message"]
    pump = clients["operator"].get("/api/v1/equipment/P-101/rul").json()
    assert pump["status"] == "no_model" and f"{SMALL_FLEET.sister_pumps} run-to-failure histories" in pump["message"]


def test_work_orders_are_read_by_everyone_and_written_by_engineers(fleet, clients):
    for role in ROLES:
        listed = clients[role].get("/api/v1/work-orders/?equipment=SP-01").json()
        assert [w["number"] for w in listed["results"]] == ["WO-DEMO-SP-01"]
    body = {"equipment": "P-101", "number": "WO-2026-0001", "opened_at": "2026-02-01T00:00:00Z", "failed_at": "2026-02-01T00:00:00Z",
            "closed_at": "2026-02-02T00:00:00Z", "ends_run": True, "fault": "bearing_wear"}
    assert clients["operator"].post("/api/v1/work-orders/", body, format="json").status_code == 403
    created = clients["engineer"].post("/api/v1/work-orders/", body, format="json")
    assert created.status_code == 201, created.content
    assert len(rul.run_to_failure_histories(equipment_type="pump")) == SMALL_FLEET.sister_pumps + 1
    bad = clients["engineer"].patch(f"/api/v1/work-orders/{created.json()['id']}/", {"failed_at": "2026-03-01T00:00:00Z"}, format="json")
    assert bad.status_code == 400 and "a machine fails before its repair ends" in str(bad.json())
    unknown = clients["engineer"].post("/api/v1/work-orders/", {**body, "number": "WO-2", "equipment": "NOPE"}, format="json")
    assert unknown.status_code == 400 and "equipment" in str(unknown.json())


def test_rul_models_train_list_activate_and_roll_back_through_the_api(fleet, clients, django_capture_on_commit_callbacks):
    engineer = clients["engineer"]
    assert clients["operator"].post("/api/v1/rul-models/train", {"equipment_type": "pump"}, format="json").status_code == 403
    assert clients["operator"].get("/api/v1/rul-models/").status_code == 403
    refused = engineer.post("/api/v1/rul-models/train", {"equipment_type": "fan"}, format="json")
    assert refused.status_code == 400 and "0 run-to-failure histories" in str(refused.json())
    typo = engineer.post("/api/v1/rul-models/train", {"equipment_type": "pump", "params": {"n_estimator": 10}}, format="json")
    assert typo.status_code == 400 and "unknown RULEstimator parameter(s) ['n_estimator']" in str(typo.json())
    versions = []
    for seed in (0, 1):
        queued = engineer.post("/api/v1/rul-models/train", {"equipment_type": "pump", "params": {**FAST_PARAMS, "seed": seed}}, format="json")
        assert queued.status_code == 202 and queued.json()["status"] == "queued"
        rul.run_rul_training(job_id=queued.json()["id"])  # what the cpu worker does with the queued job
        job = engineer.get(f"/api/v1/rul-jobs/{queued.json()['id']}").json()
        assert job["status"] == "succeeded" and job["progress"][-1]["stage"] == "done"
        versions.append(job["result"])
    listed = engineer.get("/api/v1/rul-models/?equipment_type=pump").json()["results"]
    assert [(v["version"], v["is_active"], v["histories"]) for v in listed] == [(2, True, 6), (1, False, 6)]
    assert engineer.post("/api/v1/rul-models/rollback", {"equipment_type": "pump"}, format="json").json()["version"] == 1
    assert engineer.post(f"/api/v1/rul-models/{versions[1]}/activate").json()["is_active"] is True
    assert clients["superuser"].get("/api/v1/rul-jobs/").status_code == 200


def test_equipment_page_shows_health_and_rul_for_every_role(fleet, clients):
    trained_with_estimates()
    for role in ROLES:
        page = clients[role].get("/equipment/P-101/")
        html = page.content.decode()
        assert page.status_code == 200
        assert 'data-testid="rul-panel"' in html and f"from {SMALL_FLEET.sister_pumps} run-to-failure histories" in html
        panel = html.split('data-testid="rul-panel"', 1)[1].split('<div class="card"', 1)[0]
        # Plotly's inline script carries this response's CSP nonce; no other inline script is allowed.
        assert "Health indicator" in panel and f'<script nonce="{page.wsgi_request.csp_nonce}"' in panel
        assert "<script>" not in panel
    assert clients[None].get("/equipment/P-101/").status_code == 403


def test_equipment_page_says_why_there_is_no_rul(fleet, clients):
    html = clients["operator"].get("/equipment/F-401/").content.decode()
    assert 'data-testid="rul-reason"' in html and "not enough history" in html


def test_overview_has_an_rul_column(fleet, clients):
    trained_with_estimates()
    for role in ROLES:
        html = clients[role].get("/").content.decode()
        assert "<th>RUL</th>" in html and html.count('data-testid="rul-cell"') == Equipment.objects.count()
        assert f"({SMALL_FLEET.sister_pumps} failures)" in html
