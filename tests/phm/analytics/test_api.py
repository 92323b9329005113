"""REST API for detectors, training jobs, versions and scores."""

from __future__ import annotations

from datetime import timedelta

import pytest

pytest.importorskip("models.detectors")

from phm.analytics import training
from phm.analytics.models import DetectorConfig, TrainingJob
from tests.phm.analytics.helpers import healthy_values, ingest

BODY = {"equipment": "P-101", "name": "pca-main", "method": "pca", "params": {"smooth": 3},
        "sensors": ["P-101.VIB", "P-101.TEMP", "P-101.PRESS"], "stride_s": 1, "window_s": 30}


def test_create_detector(api_client, plant):
    response = api_client.post("/api/v1/detectors", BODY, format="json")
    assert response.status_code == 201, response.json()
    assert sorted(response.json()["sensors"]) == ["P-101.PRESS", "P-101.TEMP", "P-101.VIB"] and response.json()["active_version"] is None


@pytest.mark.parametrize(
    ("change", "field", "needle"),
    [
        ({"method": "magic"}, "method", "unknown method"),
        ({"params": {"bogus": 1}}, "params", "bogus"),
        ({"sensors": []}, "sensors", "at least one"),
        ({"stride_s": 0}, "stride_s", "positive"),
        ({"threshold_kind": "fixed"}, "threshold_value", "required"),
    ],
)
def test_bad_detector_config_is_400(api_client, plant, change, field, needle):
    response = api_client.post("/api/v1/detectors", {**BODY, **change}, format="json")
    assert response.status_code == 400 and needle in str(response.json()["detail"][field])


def test_train_runs_job_and_versions_are_listed(api_client, plant, t0):
    ingest(plant[1], t0, healthy_values(200))
    detector = api_client.post("/api/v1/detectors", BODY, format="json").json()
    queued = api_client.post(f"/api/v1/detectors/{detector['id']}/train", {"start": t0.isoformat(), "end": (t0 + timedelta(seconds=200)).isoformat()}, format="json")
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    training.run_training(job_id=queued.json()["id"])  # what the worker does
    job = api_client.get(f"/api/v1/training-jobs/{queued.json()['id']}").json()
    assert job["status"] == "succeeded" and job["percent"] == 100 and job["version"] == 1
    assert [p["stage"] for p in job["progress"]][-1] == "done"
    versions = api_client.get(f"/api/v1/detectors/{detector['id']}/versions").json()
    assert [(v["version"], v["is_active"]) for v in versions] == [(1, True)]


def test_train_with_reversed_range_is_400(api_client, plant, t0):
    detector = api_client.post("/api/v1/detectors", BODY, format="json").json()
    response = api_client.post(f"/api/v1/detectors/{detector['id']}/train", {"start": t0.isoformat(), "end": t0.isoformat()}, format="json")
    assert response.status_code == 400 and not TrainingJob.objects.exists()


def test_activate_unknown_version_is_404_and_rollback_without_history_is_409(api_client, plant, t0):
    ingest(plant[1], t0, healthy_values(100))
    detector = api_client.post("/api/v1/detectors", BODY, format="json").json()
    config = DetectorConfig.objects.get(pk=detector["id"])
    training.run_training(job_id=training.start_training(config=config, train_start=t0, train_end=t0 + timedelta(seconds=100)).pk)
    assert api_client.post(f"/api/v1/detectors/{detector['id']}/activate", {"version": 7}, format="json").status_code == 404
    response = api_client.post(f"/api/v1/detectors/{detector['id']}/rollback")
    assert response.status_code == 409 and "oldest version" in response.json()["error"]
