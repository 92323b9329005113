"""/api/v1/captures and /api/v1/measurement-points with data in them, for each role."""

from __future__ import annotations

import base64
import io
from datetime import timedelta

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from phm.condition.models import WaveformCapture
from phm.telemetry.models import QuarantinedRecord
from tests.conftest import make_plant, token_client, user_in_role
from tests.phm.condition.helpers import GEOMETRY, SPEED_RPM, orders, store_series, waveform

pytestmark = pytest.mark.django_db


@pytest.fixture
def pump(db):
    pump, _ = make_plant()
    pump.running_speed_rpm = SPEED_RPM
    pump.save()
    return pump


def body(t0, **changes) -> dict:
    samples = waveform()
    out = {"equipment": "P-101", "point": "DE", "captured_at": t0.isoformat(), "sample_rate_hz": 25600, "unit": "g", "speed_rpm": SPEED_RPM,
           "samples_b64": base64.b64encode(samples.astype("<f4").tobytes()).decode()}
    out.update(changes)
    return out


def test_engineer_posts_a_capture_as_base64_and_again_as_a_duplicate(engineer_client, pump, t0):
    first = engineer_client.post("/api/v1/captures", body(t0), format="json")
    assert first.status_code == 201, first.content
    assert first.json()["n_samples"] == 25_600 and first.json()["duplicate"] is False and first.json()["point"] == "DE"
    again = engineer_client.post("/api/v1/captures", body(t0), format="json")
    assert again.status_code == 200 and again.json()["duplicate"] is True and again.json()["id"] == first.json()["id"]


def test_capture_as_a_json_list(engineer_client, pump, t0):
    data = body(t0)
    del data["samples_b64"]
    data["samples"] = [float(v) for v in waveform()[:4096]]
    response = engineer_client.post("/api/v1/captures", data, format="json")
    assert response.status_code == 201 and response.json()["n_samples"] == 4096


def test_capture_as_a_multipart_npz(engineer_client, pump, t0):
    buffer = io.BytesIO()
    np.savez(buffer, DE=waveform().reshape(-1, 1))
    upload = SimpleUploadedFile("cwru_like.npz", buffer.getvalue())
    response = engineer_client.post("/api/v1/captures", {"file": upload, "array": "DE", "equipment": "P-101", "point": "NDE",
                                                         "captured_at": t0.isoformat(), "sample_rate_hz": "25600"}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["origin"] == "cwru_like.npz" and response.json()["point"] == "NDE"


def test_bad_captures_get_400_naming_the_field_and_are_quarantined(engineer_client, pump, t0):
    nan = np.full(4096, np.nan, dtype="<f4")
    response = engineer_client.post("/api/v1/captures", body(t0, samples_b64=base64.b64encode(nan.tobytes()).decode()), format="json")
    assert response.status_code == 400 and response.json()["field"] == "samples"
    assert "NaN" in response.json()["error"]
    response = engineer_client.post("/api/v1/captures", body(t0, sample_rate_hz="fast"), format="json")
    assert response.status_code == 400 and response.json()["field"] == "sample_rate_hz"
    upload = SimpleUploadedFile("broken.npz", b"not an archive")
    response = engineer_client.post("/api/v1/captures", {"file": upload, "sample_rate_hz": "25600"}, format="multipart")
    assert response.status_code == 400 and response.json()["error"].startswith("broken.npz: file: not a readable .npz")
    assert QuarantinedRecord.objects.filter(kind="capture").count() == 3
    assert not WaveformCapture.objects.exists()


def test_capture_too_large_is_413(engineer_client, pump, t0, settings):
    settings.PHM_UPLOAD_MAX_CAPTURE_BYTES = 1000
    upload = SimpleUploadedFile("big.csv", b"1\n" * 1000)
    response = engineer_client.post("/api/v1/captures", {"file": upload, "sample_rate_hz": "25600"}, format="multipart")
    assert response.status_code == 413 and "PHM_UPLOAD_MAX_CAPTURE_BYTES" in response.json()["error"]


@pytest.mark.parametrize("role", ["operator", "engineer", "superuser"])
def test_every_role_lists_and_reads_captures_and_their_spectra(role, pump, t0):
    captures = store_series(pump, t0, count=3, wear_from=2)
    client = token_client(user_in_role(f"reader-{role}", role))
    listing = client.get("/api/v1/captures?equipment=P-101&limit=2")
    assert listing.status_code == 200
    assert listing.json()["count"] == 3 and [c["id"] for c in listing.json()["results"]] == [captures[2].pk, captures[1].pk]
    assert "samples" not in listing.json()["results"][0]
    assert client.get("/api/v1/captures?equipment=P-999").json()["count"] == 0
    detail = client.get(f"/api/v1/captures/{captures[2].pk}")
    assert detail.status_code == 200 and detail.json()["sample_rate_hz"] == 25600
    spectrum = client.get(f"/api/v1/captures/{captures[2].pk}/spectrum").json()
    shaft_hz = SPEED_RPM / 60
    assert spectrum["markers"]["orders"]["BPFO"] == pytest.approx(orders()["BPFO"])
    assert spectrum["markers"]["defect_hz"]["BPFO"][0] == pytest.approx(orders()["BPFO"] * shaft_hz)
    assert spectrum["markers"]["running_speed_hz"] == pytest.approx([shaft_hz, 2 * shaft_hz, 3 * shaft_hz])
    assert spectrum["severity"]["zone"] in ("A", "B") and spectrum["severity"]["zone_limits_mm_s"] == {"A/B": 1.4, "B/C": 2.8, "C/D": 4.5}
    envelope = spectrum["envelope"]
    freqs, amps = np.array(envelope["freq_hz"]), np.array(envelope["amplitude"])
    near = np.abs(freqs - spectrum["markers"]["defect_hz"]["BPFO"][0]) < 2
    assert amps[near].max() > 10 * np.median(amps)  # the worn bearing's BPFO line
    assert spectrum["spectrum"]["freq_hz"][-1] <= 25_600 / 2.56 and spectrum["envelope"]["band_hz"] == [2560.0, 10240.0]


def test_spectrum_is_computed_once_per_capture(operator_client, pump, t0):
    from django.core.cache import cache

    capture = store_series(pump, t0, count=1)[0]
    cache.clear()
    assert operator_client.get(f"/api/v1/captures/{capture.pk}/spectrum").json()["cached"] is False
    assert operator_client.get(f"/api/v1/captures/{capture.pk}/spectrum").json()["cached"] is True


def test_operator_cannot_post_a_capture(operator_client, pump, t0):
    assert operator_client.post("/api/v1/captures", body(t0), format="json").status_code == 403
    assert not WaveformCapture.objects.exists()


def test_measurement_points_engineer_writes_operator_reads(engineer_client, operator_client, pump):
    created = engineer_client.post("/api/v1/measurement-points", {"equipment": "P-101", "name": "DE", "axis": "horizontal",
                                                                  "bearing_designation": "6309", **GEOMETRY}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["has_bearing_geometry"] is True
    point_id = created.json()["id"]
    bad = engineer_client.patch(f"/api/v1/measurement-points/{point_id}", {"ball_diameter_mm": 80.0}, format="json")
    assert bad.status_code == 400 and "ball_diameter_mm" in bad.json()["detail"]
    listing = operator_client.get("/api/v1/measurement-points?equipment=P-101")
    assert listing.status_code == 200 and listing.json()["count"] == 1
    assert operator_client.patch(f"/api/v1/measurement-points/{point_id}", {"rolling_elements": 9}, format="json").status_code == 403
    assert engineer_client.patch(f"/api/v1/measurement-points/{point_id}", {"rolling_elements": 9}, format="json").json()["rolling_elements"] == 9
    assert engineer_client.delete(f"/api/v1/measurement-points/{point_id}").status_code == 405  # a point owns its captures


def test_list_filters_by_point_and_time(operator_client, pump, t0):
    store_series(pump, t0, count=3)
    start = (t0 + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    response = operator_client.get(f"/api/v1/captures?equipment=P-101&point=DE&start={start}")
    assert response.json()["count"] == 2
    assert operator_client.get("/api/v1/captures?start=yesterday").status_code == 400


def test_spectrum_with_another_envelope_band(operator_client, pump, t0):
    capture = store_series(pump, t0, count=1)[0]
    answer = operator_client.get(f"/api/v1/captures/{capture.pk}/spectrum?envelope_low_hz=3000&envelope_high_hz=6000")
    assert answer.status_code == 200 and answer.json()["envelope"]["band_hz"] == [3000.0, 6000.0] and answer.json()["cached"] is False
    too_high = operator_client.get(f"/api/v1/captures/{capture.pk}/spectrum?envelope_low_hz=3000&envelope_high_hz=20000")
    assert too_high.status_code == 400 and "12800 Hz" in str(too_high.json())
    one_edge = operator_client.get(f"/api/v1/captures/{capture.pk}/spectrum?envelope_low_hz=3000")
    assert one_edge.status_code == 400 and "envelope_high_hz" in str(one_edge.json())
