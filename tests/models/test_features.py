"""Signal features: known statistics of known signals, envelope peaks at the impact rate."""

from __future__ import annotations

import numpy as np
import pytest

from models.features import (
    FeatureConfig,
    envelope_spectrum,
    feature_names,
    signal_features,
    spectral_representation,
    time_domain_features,
    TIME_FEATURES,
)

FS = 12_000.0


def impact_train(rate_hz: float, *, length: int = 4096, resonance_hz: float = 3000.0, seed: int = 0) -> np.ndarray:
    """Decaying resonance bursts repeated at ``rate_hz`` plus a little noise: a bearing defect's signature."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / FS
    burst_t = t[:60]
    burst = np.sin(2 * np.pi * resonance_hz * burst_t) * np.exp(-burst_t * 1500)
    signal = rng.normal(0, 0.05, length + 60)
    for start in np.arange(0.0, t[-1], 1.0 / rate_hz):
        index = int(start * FS)
        signal[index : index + 60] += burst
    return signal[:length]


def test_time_features_of_a_sine_match_theory():
    t = np.arange(12_000) / FS
    sine = np.sin(2 * np.pi * 50 * t)[None, None, :]
    values = dict(zip(TIME_FEATURES, time_domain_features(sine)[0, 0]))
    assert values["rms"] == pytest.approx(1 / np.sqrt(2), rel=1e-3)
    assert values["crest_factor"] == pytest.approx(np.sqrt(2), rel=1e-3)
    assert values["kurtosis"] == pytest.approx(-1.5, abs=1e-2)  # excess kurtosis of a sine


def test_envelope_spectrum_peaks_at_the_impact_rate():
    config = FeatureConfig(sampling_rate=FS)
    frequencies, amplitude = envelope_spectrum(impact_train(107.0, length=12_000)[None, None, :], config)
    usable = (frequencies > 20) & (frequencies < 600)
    peak = frequencies[usable][amplitude[0, 0, usable].argmax()]
    assert peak == pytest.approx(107.0, abs=2.0)


def test_fault_order_feature_is_larger_at_the_matching_frequency():
    shaft_hz = 30.0
    config = FeatureConfig(sampling_rate=FS, shaft_hz=shaft_hz, fault_orders={"BPFO": 3.5848, "BPFI": 5.4152})
    outer = signal_features(impact_train(3.5848 * shaft_hz)[None, None, :], config)[0]
    names = feature_names(config, 1)
    bpfo, bpfi = outer[names.index("ch0_envelope_BPFO_x1")], outer[names.index("ch0_envelope_BPFI_x1")]
    assert bpfo > bpfi + 0.5


def test_signal_features_shape_matches_names():
    config = FeatureConfig(sampling_rate=FS, shaft_hz=30.0, fault_orders={"BPFO": 3.58})
    windows = np.stack([impact_train(100.0, seed=s, length=2048) for s in range(6)]).reshape(3, 2, 2048)
    features = signal_features(windows, config)
    assert features.shape == (3, len(feature_names(config, 2)))
    assert np.isfinite(features).all()


def test_signal_features_reject_nan_and_bad_shape():
    config = FeatureConfig(sampling_rate=FS)
    with pytest.raises(ValueError, match="n_windows, n_channels, length"):
        signal_features(np.zeros((4, 2048)), config)
    bad = np.zeros((1, 1, 2048))
    bad[0, 0, 7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        signal_features(bad, config)


def test_fault_orders_need_a_shaft_speed():
    with pytest.raises(ValueError, match="shaft_hz"):
        FeatureConfig(sampling_rate=FS, fault_orders={"BPFO": 3.58})


def test_spectral_representation_shape_and_resonance_band():
    config = FeatureConfig(sampling_rate=FS)
    windows = impact_train(100.0, length=2048, resonance_hz=3000.0)[None, None, :]
    representation = spectral_representation(windows, config, n_bins=128)
    assert representation.shape == (1, 2, 128)
    band_of_peak = representation[0, 0].argmax()
    assert band_of_peak == pytest.approx(3000.0 / (FS / 2) * 128, abs=2)


def test_level_features_are_left_out_unless_asked_for():
    windows = np.stack([impact_train(100.0, seed=s, length=2048) for s in range(2)])[:, None, :]
    shape_only = FeatureConfig(sampling_rate=FS)
    with_levels = FeatureConfig(sampling_rate=FS, level_features=True)
    assert "ch0_rms" not in feature_names(shape_only, 1) and "ch0_rms" in feature_names(with_levels, 1)
    # Scaling the signal changes level features only: the default set is invariant to it.
    np.testing.assert_allclose(signal_features(windows * 3, shape_only), signal_features(windows, shape_only), rtol=1e-4, atol=1e-4)
    assert signal_features(windows, with_levels).shape[1] == len(feature_names(with_levels, 1))
