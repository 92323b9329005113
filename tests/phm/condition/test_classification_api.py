"""Fault-classification API with data in it, for every role: classifiers (create + train, versions,
activate, rollback), jobs, classifications, capture labels and labelled-recording upload."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
from rest_framework.test import APIClient

pytest.importorskip("models.classification")

from phm.condition import classification
from phm.condition.models import CaptureClassifier, WaveformCapture
from tests.conftest import make_plant, user_in_role
from tests.phm.condition.classification_helpers import FAST, add_capture, capture_signal, labelled_set, make_point


@pytest.fixture
def point(db):
    pump, _ = make_plant()
    return make_point(pump)


@pytest.fixture
def clients(db):
    out = {"anonymous": APIClient()}
    for role in ("operator", "engineer", None):
        client = APIClient()
        client.force_authenticate(user_in_role(f"u-{role}", role))
        out[role or "nogroup"] = client
    return out


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def create_and_train(client, point, name="bearings"):
    response = client.post("/api/v1/classifiers/", {"name": name, "equipment": [point.equipment.tag], "params": FAST,
                                                     "alarm_probability": 0.7}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["job"]["status"] == "queued" and body["labelled_captures"] == 24
    classification.run_training(job_id=body["job"]["id"])  # as the worker runs it
    return body


def test_engineer_creates_trains_and_manages_versions(clients, point, t0):
    labelled_set(point, t0)
    engineer = clients["engineer"]
    body = create_and_train(engineer, point)
    detail = engineer.get(f"/api/v1/classifiers/{body['id']}/").json()
    assert detail["active_version"] == 1 and detail["equipment"] == ["P-101"] and detail["alarm_probability"] == 0.7
    job = engineer.get(f"/api/v1/classifier-jobs/{body['job']['id']}/").json()
    assert job["status"] == "succeeded" and job["version"] == 1 and job["progress"][-1]["stage"] == "done"
    assert engineer.post(f"/api/v1/classifiers/{body['id']}/rollback").status_code == 409
    retrain = engineer.post(f"/api/v1/classifiers/{body['id']}/train", {"activate": False}, format="json")
    assert retrain.status_code == 202
    classification.run_training(job_id=retrain.json()["id"])
    versions = engineer.get(f"/api/v1/classifiers/{body['id']}/versions").json()
    assert [(v["version"], v["is_active"]) for v in versions] == [(2, False), (1, True)]
    assert versions[0]["classes"] == ["IR", "Normal", "OR"] and versions[0]["metrics"]["order_tracking"] is True
    activated = engineer.post(f"/api/v1/classifiers/{body['id']}/activate", {"version": 2}, format="json")
    assert activated.status_code == 200 and activated.json()["is_active"]
    assert engineer.post(f"/api/v1/classifiers/{body['id']}/activate", {"version": 9}, format="json").status_code == 404
    patched = engineer.patch(f"/api/v1/classifiers/{body['id']}/", {"alarm_probability": 0.95, "enabled": False}, format="json")
    assert patched.status_code == 200 and patched.json()["alarm_probability"] == 0.95 and not patched.json()["enabled"]


def test_bad_create_requests_name_what_is_wrong(clients, point, t0):
    engineer = clients["engineer"]
    no_labels = engineer.post("/api/v1/classifiers/", {"name": "x", "equipment": ["P-101"]}, format="json")
    assert no_labels.status_code == 400 and "label captures first" in str(no_labels.json())
    assert not CaptureClassifier.objects.exists()  # refused as a whole: no classifier without its job
    unknown = engineer.post("/api/v1/classifiers/", {"name": "x", "equipment": ["NOPE"]}, format="json")
    assert unknown.status_code == 400 and "NOPE" in str(unknown.json()["detail"]["equipment"])
    bad_params = engineer.post("/api/v1/classifiers/", {"name": "x", "equipment": ["P-101"], "params": {"method": "magic"}, "train": False}, format="json")
    assert bad_params.status_code == 400 and "magic" in str(bad_params.json())


def test_operator_reads_classifiers_and_classifications_but_cannot_change_them(clients, point, t0):
    labelled_set(point, t0)
    body = create_and_train(clients["engineer"], point)
    capture = add_capture(point, at=t0 + timedelta(hours=1), signal_label="IR", seed=21)
    classification.classify_capture(capture_id=capture.pk)
    operator = clients["operator"]
    assert operator.get("/api/v1/classifiers/").json()["results"][0]["name"] == "bearings"
    rows = operator.get("/api/v1/capture-classifications/", {"equipment": "P-101"}).json()["results"]
    assert len(rows) == 1 and rows[0]["capture"] == capture.pk and rows[0]["label"] == "IR" and rows[0]["point"] == "DE"
    assert set(rows[0]["probabilities"]) == {"IR", "Normal", "OR"}
    assert operator.get("/api/v1/capture-classifications/", {"capture": capture.pk + 1000}).json()["results"] == []
    assert operator.get(f"/api/v1/capture-classifications/{rows[0]['id']}/").json()["version"] == 1
    assert operator.get(f"/api/v1/classifier-jobs/{body['job']['id']}/").status_code == 200
    for path, payload in ((f"/api/v1/classifiers/{body['id']}/train", {}), (f"/api/v1/classifiers/{body['id']}/rollback", {}),
                          ("/api/v1/classifiers/", {"name": "y", "equipment": ["P-101"]}), ("/api/v1/capture-labels", {"labels": {str(capture.pk): "OR"}})):
        assert operator.post(path, payload, format="json").status_code == 403, path
    assert operator.delete(f"/api/v1/classifiers/{body['id']}/").status_code == 403


def test_no_group_and_anonymous_get_nothing(clients, point, t0):
    labelled_set(point, t0)
    create_and_train(clients["engineer"], point)
    for path in ("/api/v1/classifiers/", "/api/v1/classifier-jobs/", "/api/v1/capture-classifications/"):
        assert clients["nogroup"].get(path).status_code == 403
        assert clients["anonymous"].get(path).status_code in (401, 403)


def test_engineer_sets_labels_through_the_api(clients, point, t0):
    a = add_capture(point, at=t0)
    b = add_capture(point, at=t0 + timedelta(seconds=1))
    response = clients["engineer"].post("/api/v1/capture-labels", {"labels": {str(a.pk): "OR_014", str(b.pk): "Normal"}}, format="json")
    assert response.status_code == 200 and response.json() == {"labelled": 2}
    assert WaveformCapture.objects.get(pk=a.pk).label == "OR_014"
    bad = clients["engineer"].post("/api/v1/capture-labels", {"labels": {"abc": "x"}}, format="json")
    assert bad.status_code == 400 and "abc" in str(bad.json())
    missing = clients["engineer"].post("/api/v1/capture-labels", {"labels": {"999999": "x"}}, format="json")
    assert missing.status_code == 400 and "999999" in str(missing.json())


def test_labelled_recording_upload_cuts_captures(clients, point, t0):
    signal = capture_signal("IR", rpm=1797, seconds=2.5)
    form = {"equipment": "P-101", "point": "DE", "label": "IR_007", "sample_rate_hz": 12000, "speed_rpm": 1797, "capture_seconds": 1.0,
            "start": t0.isoformat()}
    upload = io.BytesIO(npz_bytes(DE=signal[:, None].astype(np.float64)))
    upload.name = "1797_IR_7_DE12.npz"
    response = clients["engineer"].post("/api/v1/labelled-captures", {**form, "file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    captures = WaveformCapture.objects.filter(pk__in=response.json()["captures"]).order_by("captured_at")
    assert [(c.n_samples, c.label, c.speed_rpm, c.source) for c in captures] == [(12000, "IR_007", 1797.0, "upload")] * 2
    assert np.allclose(captures[1].waveform(), signal[12000:24000])
    upload.seek(0)
    assert clients["operator"].post("/api/v1/labelled-captures", {**form, "file": upload}, format="multipart").status_code == 403


@pytest.mark.parametrize(
    ("content", "fields", "expected"),
    [
        (b"not a zip", {}, "not a readable .npz"),
        (npz_bytes(FE=np.zeros(30000)), {}, "no array 'DE'"),
        (npz_bytes(DE=np.full(30000, np.nan)), {}, "NaN or inf"),
        (npz_bytes(DE=np.array([{"a": 1}], dtype=object)), {}, "not a readable .npz"),
        (npz_bytes(DE=np.zeros((100, 3))), {}, "one numeric column"),
        (npz_bytes(DE=np.zeros(30000)), {"point": "NDE"}, "no measurement point 'NDE'"),
        (npz_bytes(DE=np.zeros(1000)), {}, "hold no capture"),
    ],
)
def test_bad_labelled_uploads_are_refused_naming_the_problem(clients, point, t0, content, fields, expected):
    form = {"equipment": "P-101", "point": "DE", "label": "B_007", "sample_rate_hz": 12000, "start": t0.isoformat(), **fields}
    upload = io.BytesIO(content)
    upload.name = "bad.npz"
    response = clients["engineer"].post("/api/v1/labelled-captures", {**form, "file": upload}, format="multipart")
    assert response.status_code == 400 and expected in str(response.json()), response.json()
    assert not WaveformCapture.objects.exists()


def test_openapi_schema_lists_the_classification_endpoints(clients):
    import json

    response = clients["operator"].get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    for path in ("/api/v1/classifiers/", "/api/v1/classifiers/{id}/train", "/api/v1/capture-classifications/", "/api/v1/capture-labels",
                 "/api/v1/labelled-captures", "/api/v1/classifier-jobs/{id}/"):
        assert any(p.rstrip("/") == path.rstrip("/") for p in paths), path
