"""FaultClassifier: contract, windowing, class weights, calibration, persistence, each method."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.classification import (
    FaultClassifier,
    balanced_class_weights,
    fit_temperature,
    sliding_windows,
    softmax,
)
from models.metrics.classification import accuracy, expected_calibration_error, macro_f1

FS = 12_000.0
RATES = {"inner": 160.0, "outer": 105.0, "ball": 70.0}


def bearing_waveforms(label_counts: dict[str, int], *, length: int = 2048, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Resonance bursts at a class-specific impact rate (random phase and amplitude) in noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(60) / FS
    burst = np.sin(2 * np.pi * 3000 * t) * np.exp(-t * 1500)
    waveforms, labels = [], []
    for label, count in label_counts.items():
        for _ in range(count):
            signal = rng.normal(0, 0.2, length + 60)
            for start in np.arange(rng.uniform(0, 1 / RATES[label]), length / FS, 1 / RATES[label]):
                index = int(start * FS)
                signal[index : index + 60] += burst * rng.uniform(1.5, 2.5)
            waveforms.append(signal[:length])
            labels.append(label)
    return np.asarray(waveforms, dtype=np.float32)[:, None, :], np.asarray(labels)


@pytest.fixture(scope="module")
def train_test() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = bearing_waveforms({"inner": 24, "outer": 24, "ball": 24}, seed=1)
    X_test, y_test = bearing_waveforms({"inner": 10, "outer": 10, "ball": 10}, seed=2)
    return X, y, X_test, y_test


@pytest.fixture(scope="module")
def fitted_features(train_test) -> FaultClassifier:
    X, y, _, _ = train_test
    return FaultClassifier("features", sampling_rate=FS, n_estimators=60).fit(X, y)


def test_feature_method_separates_impact_rates(fitted_features, train_test):
    _, _, X_test, y_test = train_test
    assert accuracy(y_test, fitted_features.predict(X_test)) >= 0.9


def test_classes_are_the_column_order_of_predict_proba(fitted_features, train_test):
    _, _, X_test, _ = train_test
    probabilities = fitted_features.predict_proba(X_test)
    assert fitted_features.classes_.tolist() == ["ball", "inner", "outer"]
    assert probabilities.shape == (30, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    assert np.array_equal(fitted_features.classes_[probabilities.argmax(axis=1)], fitted_features.predict(X_test))


def test_saved_feature_model_is_json_and_safetensors_and_predicts_the_same(fitted_features, train_test, tmp_path):
    _, _, X_test, _ = train_test
    folder = fitted_features.save(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "weights.safetensors"]
    assert "tree" in json.loads((folder / "config.json").read_text())["method_state"]["booster"]
    restored = FaultClassifier.load(folder)
    np.testing.assert_allclose(restored.predict_proba(X_test), fitted_features.predict_proba(X_test), atol=1e-12)


def test_sliding_windows_cover_the_tail_and_remember_owners():
    X = np.arange(2 * 10, dtype=np.float32).reshape(2, 1, 10)
    windows, owners = sliding_windows(X, length=4, stride=4)
    assert windows.shape == (6, 1, 4)  # starts 0, 4 and the tail-aligned 6, per example
    assert owners.tolist() == [0, 0, 0, 1, 1, 1]
    assert windows[2, 0].tolist() == [6, 7, 8, 9]


def test_long_examples_are_windowed_and_windows_vote(train_test):
    X, y, X_test, y_test = train_test
    long_X = np.concatenate([X[:, :, :1024], X[:, :, 1024:]], axis=2)  # same content, windowed inside
    classifier = FaultClassifier("features", sampling_rate=FS, window_length=1024, window_stride=512, n_estimators=40).fit(long_X, y)
    probabilities = classifier.predict_proba(X_test)  # 2048 samples -> 3 windows each, one row per example
    assert probabilities.shape == (len(X_test), 3)
    assert accuracy(y_test, classifier.predict(X_test)) >= 0.8


def test_balanced_class_weights_equalise_class_mass():
    targets = np.array([0] * 90 + [1] * 10)
    weights = balanced_class_weights(targets, 2)
    assert weights[0] * 90 == pytest.approx(weights[1] * 10)
    assert weights.tolist() == pytest.approx([100 / 180, 100 / 20])


def test_class_weights_make_a_rare_fault_recognisable():
    X, y = bearing_waveforms({"inner": 60, "outer": 6}, seed=4)
    X_test, y_test = bearing_waveforms({"inner": 10, "outer": 10}, seed=5)
    classifier = FaultClassifier("features", sampling_rate=FS, n_estimators=40, calibrate=False).fit(X, y)
    predicted = classifier.predict(X_test)
    assert (predicted[y_test == "outer"] == "outer").mean() >= 0.8


def test_temperature_scaling_recovers_the_overconfidence_factor():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 1.5, (4000, 4))
    targets = np.array([rng.choice(4, p=p) for p in softmax(true_logits)])
    assert fit_temperature(true_logits * 3.0, targets) == pytest.approx(3.0, rel=0.15)


def test_calibrated_probabilities_have_small_calibration_error(fitted_features, train_test):
    _, _, X_test, y_test = train_test
    probabilities = fitted_features.predict_proba(X_test)
    assert expected_calibration_error(y_test, probabilities, fitted_features.classes_) < 0.2


def test_macro_f1_averages_over_classes_present_in_the_truth():
    # "Normal" never occurs in the truth: predicting it is an error but it adds no zero-F1 class.
    assert macro_f1(["a", "a", "b", "b"], ["a", "a", "b", "Normal"]) == pytest.approx((1.0 + 2 / 3) / 2)


def test_inceptiontime_trains_and_round_trips(train_test, tmp_path):
    X, y, X_test, _ = train_test
    classifier = FaultClassifier("inceptiontime", sampling_rate=FS, nf=4, epochs=2, batch_size=32).fit(X[::2], y[::2])
    assert classifier.training_log.epochs_run == 2
    restored = FaultClassifier.load(classifier.save(tmp_path / "it"))
    np.testing.assert_allclose(restored.predict_proba(X_test), classifier.predict_proba(X_test), atol=1e-6)


def test_resnet_method_fits(train_test):
    X, y, X_test, _ = train_test
    classifier = FaultClassifier("resnet", sampling_rate=FS, epochs=1, batch_size=64, calibrate=False).fit(X[::3], y[::3])
    assert classifier.predict_proba(X_test[:4]).shape == (4, 3)


def test_progress_callback_reports_each_epoch(train_test):
    X, y, _, _ = train_test
    records: list[dict[str, float]] = []
    FaultClassifier("inceptiontime", sampling_rate=FS, nf=4, epochs=2, progress=records.append).fit(X[::2], y[::2])
    assert [r["epoch"] for r in records] == [1.0, 2.0]
    assert {"loss", "validation_loss", "elapsed_s", "eta_s"} <= set(records[0])


def test_reprogram_trains_on_the_trunk_and_saves_only_trained_weights(train_test, tmp_path):
    X, y, X_test, _ = train_test
    classifier = FaultClassifier("reprogram", sampling_rate=FS, backbone_mode="tiny", epochs=1, batch_size=32).fit(X[::3], y[::3])
    trainable, total = classifier.parameter_counts()
    assert 0 < trainable < total  # the backbone stays frozen
    folder = classifier.save(tmp_path / "rp")
    restored = FaultClassifier.load(folder)
    np.testing.assert_allclose(restored.predict_proba(X_test[:6]), classifier.predict_proba(X_test[:6]), atol=1e-5)


def test_reprogram_without_language_model_is_the_small_ablation(train_test):
    X, y, _, _ = train_test
    classifier = FaultClassifier("reprogram", sampling_rate=FS, backbone_mode="none", epochs=1).fit(X[::2], y[::2])
    trainable, total = classifier.parameter_counts()
    assert trainable == total < 20_000


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.zeros((4, 2048), dtype=np.float32), r"shape \[n, channels, length\]"),
        (np.full((4, 1, 2048), np.nan, dtype=np.float32), "NaN or inf"),
    ],
)
def test_fit_rejects_malformed_waveforms(X, message):
    with pytest.raises(ValueError, match=message):
        FaultClassifier("features").fit(X, ["a", "b", "a", "b"])


def test_fit_rejects_label_count_mismatch(train_test):
    X, y, _, _ = train_test
    with pytest.raises(ValueError, match="one label per example"):
        FaultClassifier("features").fit(X, y[:-1])


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown method 'svm'"):
        FaultClassifier("svm")


def test_predict_before_fit_says_what_to_do(train_test):
    with pytest.raises(RuntimeError, match="not fitted"):
        FaultClassifier("features").predict(train_test[2])


def test_predict_rejects_a_different_channel_count(fitted_features, train_test):
    _, _, X_test, _ = train_test
    with pytest.raises(ValueError, match="2 channels; the classifier was fitted on 1"):
        fitted_features.predict(np.concatenate([X_test, X_test], axis=1))


def test_wdcnn_seed_ensemble_learns_impact_rates_and_round_trips(train_test, tmp_path):
    X, y, X_test, y_test = train_test
    classifier = FaultClassifier("wdcnn", sampling_rate=FS, epochs=12, batch_size=16, learning_rate=3e-3, n_models=2).fit(X, y)
    assert accuracy(y_test, classifier.predict(X_test)) >= 0.8
    assert classifier.training_log.epochs_run == 24  # two members, 12 epochs each
    restored = FaultClassifier.load(classifier.save(tmp_path / "wd"))
    np.testing.assert_allclose(restored.predict_proba(X_test), classifier.predict_proba(X_test), atol=1e-6)


def test_wdcnn_on_the_envelope_ignores_the_overall_level(train_test):
    X, y, X_test, _ = train_test
    classifier = FaultClassifier("wdcnn", sampling_rate=FS, epochs=2, representation="envelope", calibrate=False).fit(X[::2], y[::2])
    # Per-window normalisation inside the network: a window 5x louder gets the same class scores.
    np.testing.assert_allclose(classifier.predict_proba(5 * X_test[:6]), classifier.predict_proba(X_test[:6]), atol=1e-4)


def test_waveform_augmentation_is_off_in_eval_mode():
    import torch

    from models.wdcnn import WaveformAugment

    augment = WaveformAugment(noise_std=0.5, scale_jitter=0.2, spectral_jitter_db=6.0)
    x = torch.randn(4, 1, 256)
    assert torch.equal(augment.eval()(x), x)
    assert not torch.allclose(augment.train()(x), x)
