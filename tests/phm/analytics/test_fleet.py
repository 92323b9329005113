"""Fleet detectors: created through the API with scope 'fleet', trained once for every member
(pooled model, per-member calibration and ranges), scored live per member by the usual path."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

pytest.importorskip("models.detectors")

from phm.alarms.models import Alarm
from phm.analytics import scoring, training
from phm.analytics.fleet import fleet_members
from phm.analytics.models import DetectorConfig, JobStatus, ModelVersion
from phm.assets.models import Equipment, EquipmentType, Sensor
from tests.phm.analytics.helpers import healthy_values, ingest

PARAMS = {"smooth": 3, "min_duration": 2}


@pytest.fixture
def fleet(plant):
    """P-101 (the plant fixture) and P-102: same measurements, other tags, other offsets."""
    pump, sensors = plant
    twin = Equipment.objects.create(line=pump.line, tag="P-102", name="Feed pump 2", equipment_type=EquipmentType.PUMP)
    twin_sensors = {
        key: Sensor.objects.create(equipment=twin, tag=s.tag.replace("P-101", "P-102"), name=s.name, measurement=s.measurement)
        for key, s in sensors.items()
    }
    return {"P-101": sensors, "P-102": twin_sensors}


def create(client, tag: str, sensors: dict, **extra) -> dict:
    body = {"equipment": tag, "name": "pca-fleet", "method": "pca", "params": PARAMS, "sensors": [s.tag for s in sensors.values()],
            "stride_s": 1.0, "window_s": 30, "scope": "fleet", "fleet_group": "feed-pumps", **extra}
    response = client.post("/api/v1/detectors/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_fleet_training_versions_every_member_with_its_own_range_columns_and_threshold(engineer_client, fleet, t0):
    later = t0 + timedelta(hours=2)  # P-102's history is elsewhere in time: member_ranges says where
    ingest(fleet["P-101"], t0, healthy_values(400, seed=1))
    ingest(fleet["P-102"], later, healthy_values(400, seed=2) + np.array([1.0, 5.0, 0.5]))
    first = create(engineer_client, "P-101", fleet["P-101"])
    second = create(engineer_client, "P-102", fleet["P-102"])
    assert first["scope"] == "fleet" and first["fleet_group"] == "feed-pumps"
    body = {"start": t0.isoformat(), "end": (t0 + timedelta(seconds=400)).isoformat(),
            "member_ranges": {"P-102": [later.isoformat(), (later + timedelta(seconds=400)).isoformat()]}}
    response = engineer_client.post(f"/api/v1/detectors/{first['id']}/train", body, format="json")
    assert response.status_code == 202, response.content
    job = training.run_training(job_id=response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    versions = {v.config.equipment.tag: v for v in ModelVersion.objects.filter(is_active=True).select_related("config__equipment")}
    assert set(versions) == {"P-101", "P-102"} and job.result == versions["P-101"]
    assert versions["P-102"].config_id == second["id"] and versions["P-102"].train_start == later
    assert versions["P-101"].metrics["fleet_members"] == ["P-101", "P-102"] and versions["P-101"].metrics["fleet_train_steps"] == 800
    detector = scoring.loaded_detector(versions["P-102"])
    assert detector.columns == sorted(s.tag for s in fleet["P-102"].values())
    assert not np.allclose(detector.standardizer.mean, scoring.loaded_detector(versions["P-101"]).standardizer.mean)


def test_fleet_member_scores_live_through_the_usual_path(engineer_client, fleet, t0):
    ingest(fleet["P-101"], t0, healthy_values(400, seed=1))
    ingest(fleet["P-102"], t0, healthy_values(400, seed=2))
    first = create(engineer_client, "P-101", fleet["P-101"])
    create(engineer_client, "P-102", fleet["P-102"])
    job = training.run_training(job_id=training.start_training(
        config=DetectorConfig.objects.get(pk=first["id"]), train_start=t0, train_end=t0 + timedelta(seconds=400)).pk)
    assert job.status == JobStatus.SUCCEEDED, job.error
    twin = DetectorConfig.objects.get(equipment__tag="P-102")
    ingest(fleet["P-102"], t0 + timedelta(seconds=400), healthy_values(200, seed=3), fault_from=100)
    result = scoring.score_incremental(config=twin)
    assert result.steps > 150 and result.transitions >= 1
    assert Alarm.objects.filter(equipment__tag="P-102").exists() and not Alarm.objects.filter(equipment__tag="P-101").exists()


def test_members_without_group_are_the_same_name_on_the_same_equipment_type(engineer_client, fleet, t0):
    first = create(engineer_client, "P-101", fleet["P-101"], fleet_group="")
    create(engineer_client, "P-102", fleet["P-102"], fleet_group="")
    create(engineer_client, "P-102", fleet["P-102"], fleet_group="", name="other-name")
    members = fleet_members(DetectorConfig.objects.get(pk=first["id"]))
    assert [(m.equipment.tag, m.name) for m in members] == [("P-101", "pca-fleet"), ("P-102", "pca-fleet")]


def test_a_member_measuring_other_things_fails_the_job_naming_it(engineer_client, fleet, t0):
    Sensor.objects.filter(tag="P-102.TEMP").update(measurement="casing_temperature")
    ingest(fleet["P-101"], t0, healthy_values(100))
    ingest(fleet["P-102"], t0, healthy_values(100))
    first = create(engineer_client, "P-101", fleet["P-101"])
    create(engineer_client, "P-102", fleet["P-102"])
    job = training.run_training(job_id=training.start_training(
        config=DetectorConfig.objects.get(pk=first["id"]), train_start=t0, train_end=t0 + timedelta(seconds=100)).pk)
    assert job.status == JobStatus.FAILED and "P-102" in job.error and "casing_temperature" in job.error


def test_bad_member_range_is_refused_by_the_api(engineer_client, fleet, t0):
    first = create(engineer_client, "P-101", fleet["P-101"])
    body = {"start": t0.isoformat(), "end": (t0 + timedelta(seconds=100)).isoformat(),
            "member_ranges": {"P-102": [t0.isoformat(), t0.isoformat()]}}
    response = engineer_client.post(f"/api/v1/detectors/{first['id']}/train", body, format="json")
    assert response.status_code == 400 and "P-102" in response.content.decode()


def test_reprogram_detectors_of_one_process_share_one_language_model(monkeypatch):
    import models.backbone

    loads = []
    monkeypatch.setattr(models.backbone, "load_backbone", lambda *a, **k: loads.append(k) or object())
    monkeypatch.setattr(scoring, "_BACKBONES", {})
    first = scoring.shared_backbone("reprogram", {"num_layers": 2})
    assert scoring.shared_backbone("reprogram", {"num_layers": 2, "epochs": 5}) is first and len(loads) == 1
    assert scoring.shared_backbone("reprogram", {"num_layers": 4}) is not first and len(loads) == 2
    assert scoring.shared_backbone("reprogram", {"llm": "none"}) is None and scoring.shared_backbone("pca", {}) is None
