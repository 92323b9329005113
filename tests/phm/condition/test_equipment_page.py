"""The Vibration section of the equipment page, with captures in it, for every role; the upload."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from phm.condition.models import WaveformCapture
from tests.conftest import make_plant, user_in_role
from tests.phm.condition.helpers import SPEED_RPM, store_series, waveform

pytestmark = pytest.mark.django_db


@pytest.fixture
def captures(db, t0):
    pump, _ = make_plant()
    pump.running_speed_rpm = SPEED_RPM
    pump.save()
    return store_series(pump, t0, count=4, wear_from=2)


def client_for(role: str | None) -> Client:
    client = Client()
    client.force_login(user_in_role(f"page-{role}", role))
    return client


@pytest.mark.parametrize("role", ["operator", "engineer", "superuser"])
def test_every_role_sees_spectra_markers_and_trend(role, captures):
    response = client_for(role).get("/equipment/P-101/")
    assert response.status_code == 200
    html = response.content.decode()
    for part in ("vibration-trend", "vibration-waveform", "vibration-spectrum", "vibration-envelope"):
        assert f'data-testid="{part}"' in html
    # The latest capture by default, with its defect-frequency and running-speed markers drawn.
    assert f'value="{captures[-1].pk}" selected' in html
    envelope = html[html.index('data-testid="vibration-envelope"'):]
    for label in ("BPFO", "2×BPFO", "BPFI", "BSF", "FTF", "1×", "2×"):
        assert f'"text":{json.dumps(label)}' in envelope  # Plotly writes JSON with \u escapes
    assert json.dumps("zone A/B 1.4 mm/s").replace("/", "\\u002f") in html and re.search(r'data-testid="iso-zone">[AB]<', html)
    # Every inline chart script carries the response's CSP nonce.
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    scripts = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
    assert scripts and all(f'nonce="{nonce}"' in attrs for attrs in scripts)
    assert ('data-testid="capture-upload"' in html) == (role != "operator")


def test_an_older_capture_is_chosen_by_id(captures):
    client = client_for("operator")
    html = client.get(f"/equipment/P-101/?capture={captures[0].pk}").content.decode()
    assert f'value="{captures[0].pk}" selected' in html
    html = client.get("/equipment/P-101/?capture=99999999").content.decode()  # unknown: the latest
    assert f'value="{captures[-1].pk}" selected' in html


def test_choosing_another_point_shows_its_latest_capture(captures, t0):
    from phm.condition.captures import ingest_capture
    from tests.phm.condition.helpers import record

    nde = ingest_capture(record=record(t0, point="NDE")).capture
    # The picker submits the point and the capture shown before (a DE one): the new point wins.
    html = client_for("operator").get(f"/equipment/P-101/?point=NDE&capture={captures[-1].pk}").content.decode()
    assert f'value="{nde.pk}" selected' in html and '<option value="NDE" selected>' in html


def test_page_without_captures_says_so(db):
    make_plant()
    html = client_for("operator").get("/equipment/P-101/").content.decode()
    assert "No vibration captures for P-101 yet." in html


def test_engineer_uploads_a_capture_on_the_page(captures, t0):
    buffer = io.BytesIO()
    np.savez(buffer, samples=waveform(seed=9))
    upload = SimpleUploadedFile("route.capture.npz", buffer.getvalue())
    response = client_for("engineer").post("/equipment/P-101/captures/upload/", {
        "file": upload, "point": "NDE", "captured_at": "2026-03-02T08:00:00Z", "sample_rate_hz": "25600", "unit": "g"})
    stored = WaveformCapture.objects.get(point__name="NDE")
    assert response.status_code == 302 and response["Location"].endswith(f"?capture={stored.pk}#vibration")
    assert stored.source == "upload" and stored.equipment.tag == "P-101"


def test_a_bad_upload_is_refused_with_the_reason_on_the_page(captures):
    client = client_for("engineer")
    upload = SimpleUploadedFile("short.csv", b"1\n2\n3\n")
    response = client.post("/equipment/P-101/captures/upload/", {"file": upload, "point": "DE", "captured_at": "2026-03-02T08:00:00Z",
                                                                 "sample_rate_hz": "25600"}, follow=True)
    assert "capture refused: short.csv: samples: 3 samples is outside" in response.content.decode()


@pytest.mark.parametrize(("role", "status"), [("operator", 403), (None, 403)])
def test_only_engineers_upload(captures, role, status):
    upload = SimpleUploadedFile("x.csv", b"1\n" * 5000)
    assert client_for(role).post("/equipment/P-101/captures/upload/", {"file": upload, "point": "DE"}).status_code == status
    assert WaveformCapture.objects.count() == len(captures)
