"""Every detector method on the channels real plants have besides smooth noise: flat (a setpoint, a
stuck transmitter), a step (a setpoint change), sparse (mostly zero, rare pulses) and integer-valued
(counts, discrete states). Each must fit, give finite scores, stay mostly quiet on more of the same
normal data and still see a shift in an ordinary channel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from models.detectors import FORECASTING_METHODS as FORECASTERS
from models.detectors import METHODS, AnomalyDetector

torch.set_num_threads(1)

FAST_FORECASTER = dict(seq_len=24, horizon=8, patch_len=8, stride=4, epochs=3, train_stride=2, seed=0)
PARAMS = {
    "reprogram": dict(llm="none", **FAST_FORECASTER),
    "patchtst": dict(patchtst_d_model=16, **FAST_FORECASTER),
}
N, TRAIN = 900, 450
SHIFT = slice(750, 850)


def special_channel(kind: str, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(N)
    if kind == "flat":
        return np.full(N, 42.0)
    if kind == "step":  # a setpoint changed once in training, stays at the new value
        return np.where(t < 200, 10.0, 15.0) + 0.01 * rng.standard_normal(N)
    if kind == "sparse":  # mostly zero, a pulse now and then
        return np.where(rng.random(N) < 0.03, rng.uniform(1, 5, N), 0.0)
    if kind == "integer":  # a count
        return rng.poisson(2.0, N).astype(np.int64)
    raise ValueError(kind)


def frame_with(kind: str, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((N, 3))
    base[:, 2] = np.sin(np.arange(N) * 2 * np.pi / 150) + 0.2 * base[:, 2]
    base[SHIFT, 1] -= 5.0  # the anomaly, on an ordinary channel
    index = pd.date_range("2024-01-01", periods=N, freq="s")
    frame = pd.DataFrame(base, index=index, columns=["vib", "flow", "temp"])
    frame["special"] = special_channel(kind, rng)
    return frame


@pytest.mark.parametrize("kind", ["flat", "step", "sparse", "integer"])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_fits_and_scores_special_channels(method, kind):
    frame = frame_with(kind)
    detector = AnomalyDetector(method, **PARAMS.get(method, {})).fit(frame.iloc[:TRAIN])
    scores = detector.score(frame)
    assert np.isfinite(scores).all()
    normal = detector.predict(frame).iloc[TRAIN : SHIFT.start]
    assert normal.mean() < 0.1, f"{method} alarms on {normal.mean():.0%} of normal {kind} data"
    # A forecaster sees a sustained level shift mostly at its onset (later contexts hold the new
    # level), so it only has to score the shift higher; the static methods by half again.
    factor = 1.0 if method in FORECASTERS else 1.5
    assert scores.iloc[SHIFT].mean() > factor * scores.iloc[TRAIN : SHIFT.start].mean()


@pytest.mark.parametrize("method", METHODS)
def test_a_flat_channel_is_left_out_of_the_model_and_scored_as_a_deviation_from_its_constant(method):
    frame = frame_with("flat")
    frame.iloc[600:640, frame.columns.get_loc("special")] = 43.0  # the setpoint moves
    detector = AnomalyDetector(method, **PARAMS.get(method, {})).fit(frame.iloc[:TRAIN])
    assert detector.constant_columns == {"special": 42.0}
    assert detector.model_columns == ["vib", "flow", "temp"]
    assert detector.predict(frame).iloc[610:640].all()
    assert (detector.constant_scores(frame.iloc[TRAIN:600]) == 0).all()  # at its constant: no evidence


@pytest.mark.parametrize("method", METHODS)
def test_a_frame_of_flat_channels_only_needs_no_model(method):
    index = pd.date_range("2024-01-01", periods=400, freq="s")
    frame = pd.DataFrame({"setpoint": np.full(400, 5.0), "mode": np.full(400, 2, dtype=np.int64)}, index=index)
    detector = AnomalyDetector(method, **PARAMS.get(method, {})).fit(frame.iloc[:200])
    scores = detector.score(frame)
    assert (scores == 0).all()
    frame.iloc[300:, 1] = 3
    assert detector.predict(frame).iloc[310:].all()


def test_near_constant_noise_counts_as_constant():
    index = pd.date_range("2024-01-01", periods=300, freq="s")
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.standard_normal(300), "b": 7.0 + 1e-9 * rng.standard_normal(300)}, index=index)
    detector = AnomalyDetector("pca").fit(frame)
    assert list(detector.constant_columns) == ["b"]


@pytest.mark.parametrize("method", ["pca", "zscore", "reprogram"])
def test_constant_columns_survive_save_and_load(method, tmp_path):
    frame = frame_with("flat")
    detector = AnomalyDetector(method, **PARAMS.get(method, {})).fit(frame.iloc[:TRAIN])
    restored = AnomalyDetector.load(detector.save(tmp_path / method))
    assert restored.constant_columns == detector.constant_columns
    np.testing.assert_allclose(restored.score(frame).to_numpy(), detector.score(frame).to_numpy(), rtol=1e-5, atol=1e-6)


def test_recalibrate_takes_the_constant_from_the_new_frame():
    frame = frame_with("flat")
    detector = AnomalyDetector("pca").fit(frame.iloc[:TRAIN])
    other = frame_with("flat", seed=2)
    other["special"] = 40.0
    recalibrated = detector.recalibrate(other.iloc[:TRAIN])
    assert recalibrated.constant_columns == {"special": 40.0}
    assert not recalibrated.predict(other).iloc[TRAIN : SHIFT.start].any()


@pytest.mark.parametrize("method", METHODS)
def test_a_channel_that_freezes_at_a_plausible_value_is_flagged_when_the_stuck_check_is_on(method):
    frame = frame_with("integer")
    frame.iloc[600:700, frame.columns.get_loc("vib")] = frame["vib"].iloc[599]  # the transmitter freezes
    detector = AnomalyDetector(method, stuck_s=30, **PARAMS.get(method, {})).fit(frame.iloc[:TRAIN])
    # The integer channel repeats values now and then in training: its limit grows to twice its longest hold.
    assert detector.stuck_limits["vib"] == 30 and detector.stuck_limits["special"] >= 30
    stuck = detector.stuck_scores(frame)
    assert stuck[629] >= 1.0 > stuck[627] and (stuck[TRAIN:600] < 1).all()
    assert detector.predict(frame).iloc[640:700].all()


def test_the_stuck_limit_is_in_seconds_whatever_the_sampling():
    index = pd.date_range("2024-01-01", periods=600, freq="10s")  # a slow channel: one value per 10 s
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"a": rng.standard_normal(600), "b": rng.standard_normal(600)}, index=index)
    frame.iloc[400:460, 1] = frame["b"].iloc[399]
    detector = AnomalyDetector("pca", stuck_s=120).fit(frame.iloc[:300])
    assert detector.stuck_limits == {"a": 120.0, "b": 120.0}
    stuck = detector.stuck_scores(frame)
    assert stuck[399 + 12] == pytest.approx(1.0) and stuck[399 + 11] < 1.0  # 120 s = 12 samples of 10 s


def test_the_stuck_check_is_off_by_default_and_survives_save_and_load(tmp_path):
    frame = frame_with("step")
    assert AnomalyDetector("pca").fit(frame.iloc[:TRAIN]).stuck_limits == {}
    detector = AnomalyDetector("pca", stuck_s=40).fit(frame.iloc[:TRAIN])
    restored = AnomalyDetector.load(detector.save(tmp_path / "stuck"))
    assert restored.stuck_limits == detector.stuck_limits
    np.testing.assert_allclose(restored.score(frame).to_numpy(), detector.score(frame).to_numpy(), rtol=1e-5, atol=1e-6)
