"""The slow-drift check (``drift_s``): a transmitter walking away slowly, inside the training spread,
is invisible to a model of values but not to its residual from what the other sensors predict,
averaged over a trailing window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.detectors import AnomalyDetector

HOURS = 8
WINDOW_S = 600.0


def plant(seconds: int, *, seed: int, drift_per_hour: float = 0.0, drift_from_s: int = 0) -> pd.DataFrame:
    """A pump-like unit at 1 s: speed follows a slow demand cycle, flow is proportional to it,
    current follows its cube (affinity law); ``drift_per_hour`` makes the flow transmitter walk
    away from ``drift_from_s`` on."""
    rng = np.random.default_rng(seed)
    t = np.arange(seconds, dtype=float)
    demand = 0.85 + 0.1 * np.sin(2 * np.pi * t / (4 * 3600)) + 0.01 * np.cumsum(rng.normal(0, 0.002, seconds))
    speed = 1480 * demand + rng.normal(0, 1.5, seconds)
    flow = 320 * demand + rng.normal(0, 1.0, seconds)
    current = 100 * demand**3 + rng.normal(0, 0.3, seconds)
    flow = flow + drift_per_hour * np.clip(t - drift_from_s, 0, None) / 3600
    index = pd.date_range("2026-01-05", periods=seconds, freq="s")
    return pd.DataFrame({"current": current, "flow": flow, "speed": speed}, index=index)


@pytest.fixture(scope="module")
def trained() -> AnomalyDetector:
    return AnomalyDetector("pca", smooth=3, drift_s=WINDOW_S).fit(plant(HOURS * 3600, seed=0))


def test_a_slow_drift_inside_the_training_spread_is_flagged_and_the_model_of_values_misses_it(trained):
    # 1 m3/h an hour on a flow that swings by about 60 m3/h over the cycle, with 1 m3/h of noise:
    # after an hour the transmitter is still well inside the training spread.
    frame = plant(3 * 3600, seed=1, drift_per_hour=1.0, drift_from_s=3600)
    drift = trained.drift_scores(frame)
    values = trained.raw_scores(frame) / trained.calibration.threshold
    one_hour_in = slice(2 * 3600 - 60, 2 * 3600)
    assert drift[one_hour_in].min() > 2.0  # twice the largest trailing mean of a normal day
    assert values[one_hour_in].max() < 1.0
    assert (trained.score(frame).to_numpy()[one_hour_in] >= drift[one_hour_in]).all()  # part of the score
    # Before the drift, normal data of another seed: under twice the limit (the product's threshold
    # is twice the 99.9th percentile of training scores, and the limit is the largest of them).
    assert drift[:3600].max() < 2.0


def test_normal_data_of_another_seed_stays_under_twice_the_limit(trained):
    drift = trained.drift_scores(plant(HOURS * 3600, seed=2))
    assert drift.max() < 2.0 and np.mean(drift >= 1.0) < 0.05


def test_steps_without_a_full_window_of_history_score_zero_on_the_drift_check(trained):
    frame = plant(3 * 3600, seed=1, drift_per_hour=60.0, drift_from_s=0)
    drift = trained.drift_scores(frame)
    assert (drift[: int(WINDOW_S)] == 0).all() and drift[int(WINDOW_S) + 60] > 1.0


def test_save_and_load_keep_the_drift_model(trained, tmp_path):
    frame = plant(2 * 3600, seed=3, drift_per_hour=6.0, drift_from_s=1800)
    loaded = AnomalyDetector.load(trained.save(tmp_path / "det"))
    np.testing.assert_allclose(loaded.drift_scores(frame), trained.drift_scores(frame))
    np.testing.assert_allclose(loaded.score(frame), trained.score(frame))


def test_recalibrating_learns_the_limits_again(trained):
    noisier = plant(HOURS * 3600, seed=4)
    noisier["flow"] += np.random.default_rng(5).normal(0, 3.0, len(noisier)).cumsum() / 300  # a wandering transmitter
    clone = trained.recalibrate(noisier)
    assert clone.drift is not trained.drift
    assert clone.drift.limits[1] > trained.drift.limits[1]


def test_training_shorter_than_the_window_is_a_clear_error():
    with pytest.raises(ValueError, match=r"drift_s = 600 s needs a training stretch at least that long; the longest is 299 s"):
        AnomalyDetector("pca", drift_s=WINDOW_S).fit(plant(300, seed=0))


def test_off_by_default_and_then_the_score_is_what_it_was():
    frame = plant(2 * 3600, seed=6)
    plain = AnomalyDetector("pca", smooth=3).fit(frame.iloc[:3600])
    assert plain.drift is None and (plain.drift_scores(frame) == 0).all()
    np.testing.assert_allclose(plain.score(frame).to_numpy(), np.maximum(plain.raw_scores(frame) / plain.calibration.threshold, 0))


def thermometer_unit(seconds: int, *, seed: int, drift_per_hour: float = 0.0, drift_from_s: int = 0) -> pd.DataFrame:
    """The pump plus a bearing thermometer that follows the load and the ambient temperature's
    daily swing (±6 °C), which no sensor of the unit measures."""
    frame = plant(seconds, seed=seed)
    t = np.arange(seconds, dtype=float)
    ambient = 18 + 6 * np.sin(2 * np.pi * (t / 3600 - 9) / 24)
    load = (frame["speed"].to_numpy() / 1480) ** 3
    temp = ambient + 12 + 30 * load + np.random.default_rng(seed + 100).normal(0, 0.15, seconds)
    frame["temp"] = temp + drift_per_hour * np.clip(t - drift_from_s, 0, None) / 3600
    return frame


def test_time_of_day_predictors_take_an_unmeasured_daily_swing_out_of_the_limit(tmp_path):
    day = 24 * 3600
    plain = AnomalyDetector("pca", smooth=3, drift_s=WINDOW_S).fit(thermometer_unit(day, seed=0))
    daily = AnomalyDetector("pca", smooth=3, drift_s=WINDOW_S, drift_daily=True).fit(thermometer_unit(day, seed=0))
    temp = plain.model_columns.index("temp")
    assert daily.drift.limits[temp] < plain.drift.limits[temp] / 3
    # The next day, from 06:00: the thermometer walks away at 2 °C an hour.
    frame = thermometer_unit(day, seed=1, drift_per_hour=2.0, drift_from_s=6 * 3600)
    frame.index = frame.index + pd.Timedelta(days=1)
    two_hours_in = slice(8 * 3600 - 60, 8 * 3600)
    assert daily.drift_scores(frame)[two_hours_in].min() > 2.0 > plain.drift_scores(frame)[two_hours_in].max()
    assert daily.drift_scores(frame)[: 6 * 3600].max() < 2.0  # before it: the daily swing is predicted
    loaded = AnomalyDetector.load(daily.save(tmp_path / "det"))
    np.testing.assert_allclose(loaded.drift_scores(frame), daily.drift_scores(frame))
