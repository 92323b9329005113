"""Order tracking in FaultClassifier: captures at another shaft speed (or sampling rate) are
resampled to the reference speed's samples per revolution before windows are cut."""

from __future__ import annotations

import numpy as np
import pytest

from models.classification import VIBRATION_DEFAULTS, FaultClassifier, order_resample

FS = 12_000.0
#: Impacts per revolution. At 87 % of the training speed, class "B" impacts at the rate (in Hz)
#: that class "A" had in training: only the speed tells them apart.
ORDERS = {"A": 4.0, "B": 4.6}


def impacts(label: str, *, rpm: float, n: int, seed: int, fs: float = FS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(60 * fs / FS)) / fs
    burst = np.sin(2 * np.pi * 3000 * t) * np.exp(-t * 1500)
    signal = rng.normal(0, 0.2, n + len(t))
    period = 60.0 / (ORDERS[label] * rpm)
    for start in np.arange(rng.uniform(0, period), n / fs, period):
        index = int(start * fs)
        signal[index : index + len(t)] += burst * rng.uniform(1.5, 2.5)
    return signal[:n].astype(np.float32)


def data(rpm: float, count: int, seed: int, *, n: int = 8192, fs: float = FS) -> tuple[np.ndarray, np.ndarray]:
    X, y = [], []
    for k in range(count):
        for label in ORDERS:
            X.append(impacts(label, rpm=rpm, n=n, seed=seed + 2 * k + (label == "B"), fs=fs))
            y.append(label)
    return np.asarray(X)[:, None, :], np.asarray(y)


def fitted(*, track: bool) -> FaultClassifier:
    X, y = data(1800.0, 16, seed=0)
    classifier = FaultClassifier("features", sampling_rate=FS, window_length=2048, window_stride=1024, n_estimators=80)
    return classifier.fit(X, y, speed_rpm=1800.0 if track else None)


def test_order_tracking_recognises_faults_at_another_speed():
    X_test, y_test = data(1800.0 * 0.87, 10, seed=500)
    tracked = fitted(track=True)
    assert tracked.reference_rpm == 1800.0
    assert np.mean(tracked.predict(X_test, speed_rpm=1800.0 * 0.87) == y_test) >= 0.9
    # The same model without the speed, and a model fitted without speeds, are fooled.
    assert np.mean(tracked.predict(X_test) == y_test) <= 0.6
    assert np.mean(fitted(track=False).predict(X_test) == y_test) <= 0.6


def test_order_tracking_also_brings_other_sampling_rates_to_the_classifiers_grid():
    X_test, y_test = data(1800.0, 6, seed=900, n=int(8192 * 25_600 / FS), fs=25_600.0)
    tracked = fitted(track=True)
    assert np.mean(tracked.predict(X_test, speed_rpm=1800.0, sample_rate_hz=25_600.0) == y_test) >= 0.9


def test_reference_speed_survives_save_and_load(tmp_path):
    classifier = fitted(track=True)
    X_test, _ = data(1700.0, 2, seed=77)
    loaded = FaultClassifier.load(classifier.save(tmp_path / "clf"))
    assert loaded.reference_rpm == 1800.0
    np.testing.assert_allclose(loaded.predict_proba(X_test, speed_rpm=1700.0), classifier.predict_proba(X_test, speed_rpm=1700.0), atol=1e-6)


def test_speed_errors_name_the_problem():
    with pytest.raises(ValueError, match="fitted without speeds"):
        fitted(track=False).predict(data(1800.0, 1, seed=3)[0], speed_rpm=1800.0)
    X, y = data(1800.0, 4, seed=5)
    with pytest.raises(ValueError, match="speed_rpm must be positive and finite; example 1"):
        FaultClassifier("features", window_length=2048, n_estimators=5).fit(X, y, speed_rpm=[1800.0, -1.0] + [1800.0] * 6)
    with pytest.raises(ValueError, match="one per example"):
        FaultClassifier("features", window_length=2048, n_estimators=5).fit(X, y, speed_rpm=[1800.0, 1700.0])
    with pytest.raises(ValueError, match="needs window_length"):
        FaultClassifier("features", n_estimators=5).fit(X, y, speed_rpm=1800.0)
    with pytest.raises(ValueError, match="reference_rpm must be a positive"):
        FaultClassifier("features", reference_rpm=0.0)


def test_order_resample_changes_length_by_the_factor_and_leaves_factor_one_alone():
    example = np.random.default_rng(0).normal(size=(2, 12_000)).astype(np.float32)
    assert order_resample(example, 1.0) is example
    assert order_resample(example, 1772 / 1797).shape == (2, round(12_000 * 1772 / 1797))


def test_vibration_defaults_build_a_classifier():
    classifier = FaultClassifier(**VIBRATION_DEFAULTS)
    assert classifier.method == "inceptiontime" and classifier.window_length == 2048


def test_unknown_params_names_keys_a_method_would_ignore():
    from models.classification import unknown_params

    assert unknown_params("inceptiontime", {"epochs": 3, "nf": 8, "window_length": 2048, "epoch": 1}) == ["epoch"]
    assert unknown_params("features", {"n_estimators": 10, "noise_std": 0.1}) == ["noise_std"]
    assert unknown_params("wdcnn", {"noise_std": 0.1}) == [] and unknown_params("reprogram", {"anything": 1}) == []
