"""The detector's per-sensor residuals as diagnosis evidence: a transmitter walking away moves its
own residual alone, a process fault moves several (``AnomalyDetector.drift_residuals``,
``models.diagnosis.features.residual_summary``, ``Incident.residuals`` in training incidents)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from connectors.simulator import DEMO_PLANT
from models.detectors import AnomalyDetector
from models.diagnosis.features import N_RESIDUAL_CROSS, residual_summary, residual_summary_size
from models.diagnosis.onset import AlarmDetector, fit_detectors, simulate_onset_incident

torch.set_num_threads(1)
MEASURES = ["current", "flow", "speed"]


def unit(seconds: int, *, seed: int, drift_per_hour: float = 0.0) -> pd.DataFrame:
    """Flow and current follow speed (affinity laws); ``drift_per_hour`` walks the flow transmitter
    away from the first second on."""
    rng = np.random.default_rng(seed)
    t = np.arange(seconds, dtype=float)
    demand = 0.85 + 0.1 * np.sin(2 * np.pi * t / (4 * 3600))
    frame = pd.DataFrame({
        "current": 100 * demand**3 + rng.normal(0, 0.3, seconds),
        "flow": 320 * demand + rng.normal(0, 1.0, seconds) + drift_per_hour * t / 3600,
        "speed": 1480 * demand + rng.normal(0, 1.5, seconds),
    }, index=pd.date_range("2026-01-05", periods=seconds, freq="s"))
    return frame


@pytest.fixture(scope="module")
def detector() -> AnomalyDetector:
    return AnomalyDetector("pca", smooth=3, drift_s=600.0).fit(unit(6 * 3600, seed=0))


def test_a_walking_transmitter_leaves_its_own_residual_alone_with_its_sign(detector):
    residuals = detector.drift_residuals(unit(2 * 3600, seed=1, drift_per_hour=-6.0))
    assert list(residuals.columns) == MEASURES
    assert residuals.iloc[:599].isna().all().all()  # the trailing window is not full yet
    last = residuals.iloc[-1]
    assert last["flow"] < -2.0  # below its prediction, past twice the largest trailing mean of training
    assert abs(last["current"]) < abs(last["flow"]) / 2 and abs(last["speed"]) < abs(last["flow"]) / 2


def test_no_drift_check_no_residuals():
    plain = AnomalyDetector("pca", smooth=3).fit(unit(3600, seed=0))
    assert plain.drift_residuals(unit(1200, seed=1)) is None


def test_the_summary_sees_one_sensor_alone_against_several_together():
    index = pd.date_range("2026-01-05", periods=1800, freq="s")
    alone = pd.DataFrame({"current": 0.2, "flow": 4.0, "speed": 0.1}, index=index)
    together = pd.DataFrame({"current": 3.0, "flow": 4.0, "speed": 0.1}, index=index)
    a, b = residual_summary(alone, MEASURES, 32), residual_summary(together, MEASURES, 32)
    assert a.shape == (residual_summary_size(3),) == (2 * 3 + N_RESIDUAL_CROSS,)
    largest, second, flag = a[-5], a[-3], a[-1]
    assert flag == 1.0 and largest == pytest.approx(np.log1p(4.0))
    assert second == pytest.approx(np.log1p(0.2)) and b[-3] == pytest.approx(np.log1p(3.0))
    assert a[2] == pytest.approx(np.log1p(4.0))  # flow's tail mean, second measure
    negative = residual_summary(-alone, MEASURES, 32)
    assert negative[-4] == pytest.approx(-np.log1p(4.0))  # the signed largest keeps the direction


def test_no_residuals_are_zeros_with_the_flag_down():
    assert not residual_summary(None, MEASURES, 32).any()
    index = pd.date_range("2026-01-05", periods=10, freq="s")
    assert not residual_summary(pd.DataFrame({"other": 1.0}, index=index), MEASURES, 32).any()


def test_training_incidents_carry_the_detectors_residuals_over_their_window():
    spec = AlarmDetector(params={"smooth": 3, "drift_s": 900.0, "drift_daily": True})
    fitted = fit_detectors(DEMO_PLANT, ["F-401"], spec, seed=3)
    incidents = simulate_onset_incident(DEMO_PLANT, "F-401", "sensor_drift", seed=5, detector=fitted["F-401"], image_share=0.0)
    assert incidents
    for incident in incidents:
        assert set(incident.residuals.columns) == set(incident.sensors.columns)
        assert incident.residuals.index[0] >= incident.sensors.index[0]
        assert incident.residuals.index[-1] == incident.sensors.index[-1]
    none = simulate_onset_incident(DEMO_PLANT, "F-401", "sensor_drift", seed=5, detector=fitted["F-401"], image_share=0.0,
                                   residual_share=0.0)
    assert all(i.residuals is None for i in none)


def test_the_evidence_names_the_sensor_past_its_residual_limit_with_its_sign():
    """Live check, 6 December: a drifting bearing thermocouple, twice its limit against the others'
    prediction, was listed last and "mixed" behind sensors wandering with the day."""
    from models.diagnosis.features import NormalStats, residual_tails, sensor_evidence

    z = np.random.default_rng(0).normal(0, 0.3, (3, 3, 32))
    z[0, 0, 16:] += 1.5  # the current's window level wanders off: it leads the window's ranking
    present = np.ones(3, dtype=bool)
    stats = NormalStats(np.zeros((3, 3)), np.ones((3, 3)), np.full(3, 0.2))  # every sensor a little over typical
    plain = sensor_evidence(z, present, MEASURES, stats)
    assert plain[0].sensor == "current"
    index = pd.date_range("2026-01-05", periods=1800, freq="s")
    residuals = pd.DataFrame({"current": 0.3, "flow": 2.0, "speed": -0.2}, index=index)
    led = sensor_evidence(z, present, MEASURES, stats, residual_tails(residuals, MEASURES, 32))
    assert led[0].sensor == "flow" and led[0].direction == "high"  # its window alone reads "mixed"
    assert sum(e.share for e in led) == pytest.approx(1.0)
    low = sensor_evidence(z, present, MEASURES, stats, residual_tails(-residuals, MEASURES, 32))
    assert low[0].sensor == "flow" and low[0].direction == "low"
    within = sensor_evidence(z, present, MEASURES, stats, residual_tails(residuals * 0.4, MEASURES, 32))
    assert [(e.sensor, e.share) for e in within] == [(e.sensor, e.share) for e in plain]  # none past its limit
    assert residual_tails(None, MEASURES, 32) is None
