"""Each measure's last minutes against what its own inertia and the unit's other measures explain
(models.diagnosis.dynamics). A bearing thermocouple a quarter of a degree off five minutes into a
drift wanders no more than it does with the pump's speed behind its thermal lag; run free from
the measured speed, the thermal model says where it should be, and the drift stands out."""

from __future__ import annotations

import numpy as np

from models.diagnosis.dynamics import DYNAMICS_HORIZONS, dynamics_summary, dynamics_summary_size, fit_dynamics
from models.diagnosis.features import BinnedWindow, NormalStats, bin_window, fit_normal_stats, trend_summary
from tests.models.simulated_windows import simulated_window

MEASURES = ["VIB", "TEMP_BRG", "CURRENT", "PRESS_DIS", "PRESS_SUC", "FLOW", "SPEED"]
BRG = MEASURES.index("TEMP_BRG")


def _fitted(n: int = 40) -> NormalStats:
    windows = [bin_window(simulated_window("normal", 100 + s, tag=("P-101", "P-201")[s % 2]), MEASURES, 32) for s in range(n)]
    stats = fit_normal_stats(windows)
    stats.dynamics, stats.dynamics_scale = fit_dynamics(windows, stats)
    return stats


def _brg_error(summary: np.ndarray, horizon: int) -> float:
    return float(summary[BRG * len(DYNAMICS_HORIZONS) + horizon])


def test_a_thermocouple_drifting_five_minutes_stands_out_better_than_on_its_own_line():
    stats = _fitted()
    shorter = DYNAMICS_HORIZONS.index(min(DYNAMICS_HORIZONS))
    drifting = [bin_window(simulated_window("sensor_drift", 200 + s), MEASURES, 32) for s in range(12)]
    healthy = [bin_window(simulated_window("normal", 300 + s), MEASURES, 32) for s in range(12)]
    drift = np.array([_brg_error(dynamics_summary(w, stats), shorter) for w in drifting])
    normal = np.array([_brg_error(dynamics_summary(w, stats), shorter) for w in healthy])
    # compressed log1p(z): 1.1 is two normal scales off the free run, 0.7 is one
    assert np.median(drift) > 1.1, drift
    assert np.median(np.abs(normal)) < 0.7, normal
    ranked = np.mean(drift[:, None] > np.abs(normal)[None, :])  # a drift above a healthy window (either sign)
    assert ranked > 0.9, ranked
    # the thermocouple's own line (features.trend_summary, its shortest tail) ranks the same windows less well
    own_line = np.array([trend_summary(w, stats)[BRG * 2] for w in drifting])
    own_line_normal = np.array([trend_summary(w, stats)[BRG * 2] for w in healthy])
    assert ranked > np.mean(own_line[:, None] > np.abs(own_line_normal)[None, :])


def test_a_unit_that_runs_warmer_than_its_type_is_not_a_drift():
    stats = _fitted(20)
    window = bin_window(simulated_window("normal", 400), MEASURES, 32)
    warmer = BinnedWindow(window.level.copy(), window.spread, window.present)
    warmer.level[BRG] += 4.0  # a whole window off the type's centre: a unit, not a fault
    assert np.allclose(dynamics_summary(warmer, stats), dynamics_summary(window, stats), atol=0.05)


def test_absent_measures_and_statistics_without_a_model_give_zeros_and_round_trip():
    stats = _fitted(8)
    level = np.vstack([np.linspace(40, 41, 32), np.full((len(MEASURES) - 1, 32), np.nan)])
    level[[0, BRG]] = level[[BRG, 0]]
    present = np.zeros(len(MEASURES), dtype=bool)
    present[BRG] = True
    summary = dynamics_summary(BinnedWindow(level, np.zeros_like(level), present), stats)
    assert summary.shape == (dynamics_summary_size(len(MEASURES)),) and np.isfinite(summary).all()
    assert not summary.reshape(-1)[: len(MEASURES) * len(DYNAMICS_HORIZONS)].reshape(len(MEASURES), -1)[~present].any()
    old = NormalStats.from_dict({"centre": stats.centre.tolist(), "scale": stats.scale.tolist(), "typical_deviation": [1] * len(MEASURES)})
    assert old.dynamics is None and "dynamics" not in old.to_dict()
    assert not dynamics_summary(bin_window(simulated_window("normal", 401), MEASURES, 32), old).any()
    again = NormalStats.from_dict(stats.to_dict())
    assert np.array_equal(again.dynamics, stats.dynamics) and np.array_equal(again.dynamics_scale, stats.dynamics_scale)
    assert fit_dynamics([bin_window(simulated_window("normal", 402 + s), MEASURES, 32) for s in range(3)], stats) is None
