"""The demo's vibration captures: points with bearing geometry, BPFO growing with the bearing_wear
fault (with +-1x sidebands), 2x up under misalignment, only 1x and noise when healthy; a re-run
stores nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from connectors.simulator import DEMO_PLANT, ScheduledFault
from models.vibration import amplitude_spectrum, envelope_spectrum, line_prominence
from phm.assets.services import create_plant
from phm.condition.demo import DEMO_POINTS, capture_times, simulate_captures
from phm.condition.models import WaveformCapture

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)


def analyse(capture: WaveformCapture, defect: str = "BPFO") -> dict:
    from phm.condition.spectra import markers

    values = capture.waveform()
    m = markers(capture)
    shaft = m["running_speed_hz"][0]
    env = envelope_spectrum(values, capture.sample_rate_hz)
    spec = amplitude_spectrum(values, capture.sample_rate_hz)
    line = m["defect_hz"][defect][0]
    return {
        "defect_amp": env.peak_near(line, tolerance_hz=2)[1], "defect_prom": line_prominence(env, line, tolerance_hz=2),
        "sideband_prom": line_prominence(env, line + shaft, tolerance_hz=2),
        "two_x": spec.peak_near(2 * shaft, tolerance_hz=1)[1] / spec.peak_near(shaft, tolerance_hz=1)[1],
        "rms": capture.velocity_rms_mm_s,
    }


def test_capture_times_are_aligned():
    times = capture_times(start=T0 + timedelta(seconds=1), end=T0 + timedelta(minutes=31), every_s=600)
    assert times == [T0 + timedelta(minutes=10), T0 + timedelta(minutes=20), T0 + timedelta(minutes=30)]


def test_bearing_wear_grows_bpfo_with_sidebands_and_misalignment_raises_2x(db):
    create_plant(plant=DEMO_PLANT)
    faults = [
        ScheduledFault("P-101", "bearing_wear", T0 + timedelta(minutes=30), T0 + timedelta(hours=3), ramp_s=7200),
        ScheduledFault("P-201", "misalignment", T0 + timedelta(minutes=30), T0 + timedelta(hours=3), ramp_s=600),
    ]
    stored, _ = simulate_captures(start=T0, end=T0 + timedelta(hours=2, minutes=1), faults=faults, every_s=1800)
    assert stored == 5 * len(DEMO_POINTS)
    de = list(WaveformCapture.objects.filter(equipment__tag="P-101", point__name="DE").order_by("captured_at"))
    results = [analyse(c) for c in de]
    assert results[0]["defect_prom"] < 4 and results[1]["defect_prom"] < 4  # healthy (the fault starts at 06:30 at level 0)
    amplitudes = [r["defect_amp"] for r in results[2:]]
    assert amplitudes == sorted(amplitudes) and amplitudes[-1] > 10 * results[0]["defect_amp"]  # growing
    assert results[-1]["defect_prom"] > 20 and results[-1]["sideband_prom"] > 4
    healthy = analyse(WaveformCapture.objects.filter(equipment__tag="P-201", point__name="DE").order_by("captured_at").first())
    misaligned = analyse(WaveformCapture.objects.filter(equipment__tag="P-201", point__name="DE").order_by("captured_at").last())
    assert healthy["two_x"] < 0.6 < 2.0 < misaligned["two_x"] and misaligned["rms"] > 2.8 > healthy["rms"]  # into ISO zone C
    motor = analyse(WaveformCapture.objects.filter(equipment__tag="M-101", point__name="DE").order_by("captured_at").last(), "BPFI")
    assert motor["defect_prom"] < 4  # no fault scheduled on the motor
    again, duplicates = simulate_captures(start=T0, end=T0 + timedelta(hours=2, minutes=1), faults=faults, every_s=1800)
    assert (again, duplicates) == (0, 5 * len(DEMO_POINTS))
    assert np.isfinite([c.velocity_rms_mm_s for c in WaveformCapture.objects.all()]).all()


def test_the_live_stream_adds_the_captures_due_and_resumes_after_a_failure(db, monkeypatch):
    from phm.telemetry import simulation

    create_plant(plant=DEMO_PLANT)
    start = T0
    resumed = simulation._stream_captures(start=start, end=T0 + timedelta(minutes=21), every_s=600, seed=7, plant=DEMO_PLANT)
    assert resumed == T0 + timedelta(minutes=21)
    assert WaveformCapture.objects.count() == 3 * len(DEMO_POINTS)  # 06:00, 06:10, 06:20

    def broken(**kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr("phm.condition.demo.simulate_captures", broken)
    assert simulation._stream_captures(start=resumed, end=resumed + timedelta(minutes=10), every_s=600, seed=7, plant=DEMO_PLANT) == resumed
