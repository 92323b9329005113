"""AnomalyDetector on generated pump-like data: iid sensor noise, a slowly cycling temperature,
and a sustained flow drop as the anomaly (the pattern of SKAB's valve experiments)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from models.backbone import tiny_random_backbone
from models.detectors import AnomalyDetector, hysteresis_alarms
from models.metrics.detection import score_detection

# One thread: on a shared, loaded CPU, OpenMP's spin-waiting makes 2 threads ~10x slower for small models.
torch.set_num_threads(1)

FAST = dict(seq_len=24, horizon=8, patch_len=8, stride=4, epochs=3, train_stride=2, seed=0)
TRAIN = 300


def pump_frame(seed: int = 0, n: int = 700, shift_at: int | None = 450, shift_len: int = 150) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((n, 4))
    values[:, 3] = np.sin(np.arange(n) * 2 * np.pi / 150) + 0.2 * values[:, 3]  # slow cycle, like a temperature
    labels = np.zeros(n, dtype=bool)
    if shift_at is not None:
        values[shift_at : shift_at + shift_len, 1] -= 4.0  # the flow drops and stays low
        labels[shift_at : shift_at + shift_len] = True
    index = pd.date_range("2024-01-01", periods=n, freq="s")
    return pd.DataFrame(values, index=index, columns=["vib", "flow", "current", "temp"]), labels


@pytest.fixture(scope="module")
def frame_and_labels():
    return pump_frame()


@pytest.fixture(scope="module")
def no_llm_detector(frame_and_labels):
    frame, _ = frame_and_labels
    return AnomalyDetector("reprogram", llm="none", **FAST).fit(frame.iloc[:TRAIN])


def test_reprogram_flags_a_sustained_shift_and_stays_quiet_before_it(no_llm_detector, frame_and_labels):
    frame, labels = frame_and_labels
    predicted = no_llm_detector.predict(frame).to_numpy()
    scores = score_detection(labels[TRAIN:], predicted[TRAIN:])
    assert scores.f1 > 0.8 and scores.far_percent < 10


def test_predict_returns_bool_series_on_the_input_index(no_llm_detector, frame_and_labels):
    frame, _ = frame_and_labels
    predicted = no_llm_detector.predict(frame)
    assert predicted.dtype == bool and predicted.index.equals(frame.index)


def test_reprogram_runs_through_a_language_model_backbone(frame_and_labels):
    frame, labels = frame_and_labels
    backbone = tiny_random_backbone(hidden_size=32, num_layers=1)
    detector = AnomalyDetector(
        "reprogram", backbone=backbone, n_prototypes=8, **{**FAST, "epochs": 1, "train_stride": 6}
    ).fit(frame.iloc[:TRAIN])
    scores = detector.score(frame)
    assert np.isfinite(scores).all() and scores.iloc[TRAIN:][labels[TRAIN:]].mean() > scores.iloc[TRAIN:][~labels[TRAIN:]].mean()


@pytest.mark.parametrize("method", ["pca", "isolation_forest", "zscore"])
def test_static_baselines_score_the_shift_higher_than_normal_rows(method, frame_and_labels):
    frame, labels = frame_and_labels
    scores = AnomalyDetector(method).fit(frame.iloc[:TRAIN]).score(frame).to_numpy()[TRAIN:]
    assert scores[labels[TRAIN:]].mean() > 1.5 * scores[~labels[TRAIN:]].mean()


def test_patchtst_baseline_scores_through_the_same_residual_pipeline(frame_and_labels):
    frame, labels = frame_and_labels
    detector = AnomalyDetector("patchtst", patchtst_d_model=16, **{**FAST, "epochs": 1, "train_stride": 6}).fit(
        frame.iloc[:TRAIN]
    )
    scores = detector.score(frame).to_numpy()[TRAIN:]
    assert scores[labels[TRAIN:]].mean() > scores[~labels[TRAIN:]].mean()


def test_threshold_depends_on_training_data_only_and_training_is_reproducible(frame_and_labels):
    frame, _ = frame_and_labels
    first = AnomalyDetector("reprogram", llm="none", **FAST).fit(frame.iloc[:TRAIN])
    first.score(frame)  # scoring test data must not move the threshold
    second = AnomalyDetector("reprogram", llm="none", **FAST).fit(frame.iloc[:TRAIN])
    assert first.calibration.threshold == pytest.approx(second.calibration.threshold)


def test_recalibrate_shares_the_model_and_takes_statistics_from_the_new_frame(no_llm_detector):
    other, _ = pump_frame(seed=3, shift_at=None)
    shifted = other + 10.0
    recalibrated = no_llm_detector.recalibrate(shifted.iloc[:TRAIN])
    assert recalibrated.model is no_llm_detector.model
    assert recalibrated.standardizer.mean == pytest.approx(shifted.iloc[:TRAIN].mean().to_numpy())
    assert recalibrated.predict(shifted).iloc[TRAIN:].mean() < 0.1


def test_fit_on_several_recordings_trains_one_model(frame_and_labels):
    frame, _ = frame_and_labels
    other, _ = pump_frame(seed=5, shift_at=None)
    detector = AnomalyDetector("reprogram", llm="none", **FAST).fit([frame.iloc[:TRAIN], other.iloc[:TRAIN]])
    assert detector.history.epochs and np.isfinite(detector.score(other)).all()


def test_hysteresis_ignores_short_spikes_and_holds_through_short_dips():
    scores = np.array([0, 2, 2, 0, 0, 0, 2, 2, 2, 2, 0.5, 2, 2, 0, 0, 0, 0], dtype=float)
    alarms = hysteresis_alarms(scores, release_ratio=0.8, min_duration=3)
    assert not alarms[:8].any()  # the 2-step spike never alarms; the 3-step run confirms at step 8
    assert alarms[8:15].all()  # the one-step dip at 10 does not clear it
    assert not alarms[15:].any()  # three steps below 0.8 clear it


@pytest.mark.parametrize("method", ["pca", "isolation_forest", "zscore", "reprogram"])
def test_save_and_load_give_the_same_scores_without_pickle(method, frame_and_labels, tmp_path):
    frame, _ = frame_and_labels
    params = dict(llm="none", **FAST) if method == "reprogram" else {}
    detector = AnomalyDetector(method, **params).fit(frame.iloc[:TRAIN])
    folder = detector.save(tmp_path / method)
    assert sorted(p.name for p in folder.iterdir()) == ["detector.json", "weights.safetensors"]
    restored = AnomalyDetector.load(folder)
    np.testing.assert_allclose(restored.score(frame).to_numpy(), detector.score(frame).to_numpy(), rtol=1e-5, atol=1e-6)


def test_saved_reprogram_detector_with_backbone_keeps_only_trained_weights(frame_and_labels, tmp_path):
    frame, _ = frame_and_labels
    backbone = tiny_random_backbone(hidden_size=32, num_layers=1)
    detector = AnomalyDetector(
        "reprogram", backbone=backbone, n_prototypes=8, **{**FAST, "epochs": 1, "train_stride": 12}
    ).fit(frame.iloc[:TRAIN])
    folder = detector.save(tmp_path / "r")
    restored = AnomalyDetector.load(folder, backbone=backbone)
    np.testing.assert_allclose(restored.score(frame).to_numpy(), detector.score(frame).to_numpy(), rtol=1e-4, atol=1e-5)


def test_nan_in_input_is_reported_with_the_column(frame_and_labels):
    frame, _ = frame_and_labels
    broken = frame.iloc[:TRAIN].copy()
    broken.iloc[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"\['current'\] contain NaN"):
        AnomalyDetector("pca").fit(broken)


def test_scoring_needs_the_training_columns(frame_and_labels):
    frame, _ = frame_and_labels
    detector = AnomalyDetector("zscore").fit(frame.iloc[:TRAIN])
    with pytest.raises(ValueError, match="differ from the training columns"):
        detector.score(frame[["flow", "vib", "current", "temp"]])


def test_frame_without_datetime_index_is_rejected(frame_and_labels):
    frame, _ = frame_and_labels
    with pytest.raises(TypeError, match="DatetimeIndex"):
        AnomalyDetector("pca").fit(frame.reset_index(drop=True))


def test_unknown_method_and_parameter_are_named():
    with pytest.raises(ValueError, match="unknown method 'lstm'"):
        AnomalyDetector("lstm")
    with pytest.raises(TypeError, match="seq_length"):
        AnomalyDetector("reprogram", seq_length=10)


def test_score_before_fit_says_so(frame_and_labels):
    with pytest.raises(RuntimeError, match="not fitted"):
        AnomalyDetector("pca").score(frame_and_labels[0])
