"""Hand-crafted vibration features: time-domain statistics, spectrum bands and envelope spectrum.

These are the classical bearing-diagnosis features (Randall & Antoni, "Rolling element bearing
diagnostics - a tutorial", 2011): impulsiveness statistics (kurtosis, crest factor, ...) catch
the impacts a defect produces; the *envelope spectrum* of a band-passed signal shows the rate of
those impacts, which is the defect's characteristic frequency (BPFI, BPFO, ball spin, cage).
All functions are vectorised over windows: input ``[n_windows, n_channels, length]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import butter, hilbert, sosfiltfilt
from scipy.stats import kurtosis, skew

_EPS = 1e-12


@dataclass(frozen=True)
class FeatureConfig:
    """What to extract. Frequencies are in Hz; ``shaft_hz`` + ``fault_orders`` are optional.

    ``envelope_band`` is the band-pass applied before demodulation (default: fs/12 .. 5 fs/12,
    1-5 kHz at 12 kHz, where CWRU's structural resonances carry the impacts).
    """

    sampling_rate: float
    n_spectrum_bands: int = 16
    n_envelope_bands: int = 24
    envelope_max_hz: float = 600.0
    envelope_band: tuple[float, float] | None = None
    shaft_hz: float | None = None
    fault_orders: Mapping[str, float] = field(default_factory=dict)
    n_harmonics: int = 3
    # Absolute vibration level (mean, std, RMS, peak, peak-to-peak, total power) changes with load
    # and sensor mounting; off by default because it does not transfer: on CWRU 1797 -> 1772 rpm,
    # LightGBM reached 0.763 accuracy with the level features and 0.945 without (00:55 UTC run).
    level_features: bool = False
    # Power shares in spectrum bands describe which structural resonances the impacts excite,
    # which shifts with load (CWRU B_021: the 2.1-3.4 kHz band holds 0.30 of the power at 1797 rpm,
    # 0.12 at 1772 rpm); off for transfer across operating points.
    spectrum_features: bool = True
    # Relative search tolerance around a characteristic frequency: covers slip and small speed
    # changes (1797 -> 1772 rpm is 1.4 %) without a tachometer.
    frequency_tolerance: float = 0.04

    def __post_init__(self) -> None:
        if self.sampling_rate <= 0:
            raise ValueError(f"sampling_rate must be > 0 Hz, got {self.sampling_rate}")
        if self.envelope_max_hz >= self.sampling_rate / 2:
            raise ValueError(f"envelope_max_hz {self.envelope_max_hz} must be below Nyquist ({self.sampling_rate / 2})")
        if self.fault_orders and not self.shaft_hz:
            raise ValueError("fault_orders need shaft_hz to turn orders into frequencies")

    @property
    def band(self) -> tuple[float, float]:
        if self.envelope_band is not None:
            return self.envelope_band
        return self.sampling_rate / 12.0, 5.0 * self.sampling_rate / 12.0


TIME_FEATURES = (
    "mean", "std", "rms", "peak", "peak_to_peak", "skewness", "kurtosis",
    "crest_factor", "shape_factor", "impulse_factor", "clearance_factor",
)
LEVEL_FEATURES = frozenset({"mean", "std", "rms", "peak", "peak_to_peak", "log_total_power"})


def time_domain_features(windows: np.ndarray) -> np.ndarray:
    """``[n, c, L]`` -> ``[n, c, 11]`` in the order of :data:`TIME_FEATURES`."""
    x = windows.astype(np.float64, copy=False)
    mean = x.mean(axis=-1)
    std = x.std(axis=-1)
    rms = np.sqrt((x**2).mean(axis=-1))
    absolute = np.abs(x)
    peak = absolute.max(axis=-1)
    peak_to_peak = x.max(axis=-1) - x.min(axis=-1)
    mean_abs = absolute.mean(axis=-1)
    sqrt_mean = np.sqrt(absolute).mean(axis=-1) ** 2
    return np.stack(
        [
            mean, std, rms, peak, peak_to_peak,
            skew(x, axis=-1), kurtosis(x, axis=-1),
            peak / (rms + _EPS), rms / (mean_abs + _EPS), peak / (mean_abs + _EPS), peak / (sqrt_mean + _EPS),
        ],
        axis=-1,
    )


def _band_means(spectrum: np.ndarray, frequencies: np.ndarray, edges: np.ndarray) -> np.ndarray:
    index = np.clip(np.searchsorted(edges, frequencies, side="right") - 1, 0, len(edges) - 2)
    inside = (frequencies >= edges[0]) & (frequencies <= edges[-1])
    sums = np.zeros(spectrum.shape[:-1] + (len(edges) - 1,))
    counts = np.bincount(index[inside], minlength=len(edges) - 1).astype(np.float64)
    for band in range(len(edges) - 1):
        sums[..., band] = spectrum[..., inside & (index == band)].sum(axis=-1)
    return sums / np.maximum(counts, 1.0)


def spectrum_band_features(windows: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Share of power in log-spaced bands from 10 Hz to Nyquist, plus log total power: ``[n, c, B+1]``."""
    x = windows - windows.mean(axis=-1, keepdims=True)
    power = np.abs(np.fft.rfft(x * np.hanning(x.shape[-1]), axis=-1)) ** 2
    frequencies = np.fft.rfftfreq(x.shape[-1], d=1.0 / config.sampling_rate)
    edges = np.geomspace(10.0, config.sampling_rate / 2, config.n_spectrum_bands + 1)
    bands = _band_means(power, frequencies, edges)
    total = power.sum(axis=-1, keepdims=True) + _EPS
    return np.concatenate([bands / total * power.shape[-1], np.log10(total)], axis=-1)


def envelope_spectrum(windows: np.ndarray, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude spectrum of the Hilbert envelope of the band-passed signal: (frequencies, ``[n, c, F]``)."""
    low, high = config.band
    nyquist = config.sampling_rate / 2
    if not 0 < low < high < nyquist:
        raise ValueError(f"envelope band {config.band} Hz must satisfy 0 < low < high < Nyquist ({nyquist})")
    sos = butter(4, [low, high], btype="bandpass", fs=config.sampling_rate, output="sos")
    filtered = sosfiltfilt(sos, windows.astype(np.float64, copy=False), axis=-1)
    envelope = np.abs(hilbert(filtered, axis=-1))
    envelope -= envelope.mean(axis=-1, keepdims=True)
    amplitude = np.abs(np.fft.rfft(envelope * np.hanning(envelope.shape[-1]), axis=-1)) / envelope.shape[-1]
    frequencies = np.fft.rfftfreq(envelope.shape[-1], d=1.0 / config.sampling_rate)
    return frequencies, amplitude


def envelope_features(windows: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Envelope-spectrum band levels (+ characteristic-frequency peaks when the shaft speed is known).

    Levels are divided by the spectrum's median so they describe *shape* (which impact rates
    dominate) rather than vibration level, which changes with load.
    """
    frequencies, amplitude = envelope_spectrum(windows, config)
    usable = (frequencies > 0) & (frequencies <= config.envelope_max_hz)
    reference = np.median(amplitude[..., usable], axis=-1, keepdims=True) + _EPS
    edges = np.linspace(0.0, config.envelope_max_hz, config.n_envelope_bands + 1)
    parts = [np.log1p(_band_means(amplitude, frequencies, edges) / reference)]
    for order in config.fault_orders.values():
        for harmonic in range(1, config.n_harmonics + 1):
            centre = order * harmonic * float(config.shaft_hz)
            near = np.abs(frequencies - centre) <= config.frequency_tolerance * centre
            if not near.any() or centre >= config.sampling_rate / 2:
                parts.append(np.zeros(amplitude.shape[:-1] + (1,)))
                continue
            parts.append(np.log1p(amplitude[..., near].max(axis=-1, keepdims=True) / reference))
    return np.concatenate(parts, axis=-1)


def _per_channel_names(config: FeatureConfig) -> list[str]:
    return [
        *TIME_FEATURES,
        *(f"spectrum_band_{b}" for b in range(config.n_spectrum_bands)),
        "log_total_power",
        *(f"envelope_band_{b}" for b in range(config.n_envelope_bands)),
        *(f"envelope_{name}_x{h}" for name in config.fault_orders for h in range(1, config.n_harmonics + 1)),
    ]


def _kept(config: FeatureConfig) -> np.ndarray:
    return np.array([
        (config.level_features or name not in LEVEL_FEATURES) and (config.spectrum_features or not name.startswith("spectrum_band_"))
        for name in _per_channel_names(config)
    ])


def feature_names(config: FeatureConfig, n_channels: int) -> list[str]:
    per_channel = [name for name, keep in zip(_per_channel_names(config), _kept(config)) if keep]
    return [f"ch{c}_{name}" for c in range(n_channels) for name in per_channel]


def signal_features(windows: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """All features for ``[n, c, L]`` windows, flattened per window: ``[n, c * n_features]``."""
    if windows.ndim != 3:
        raise ValueError(f"windows must be [n_windows, n_channels, length], got shape {windows.shape}")
    if windows.shape[-1] < 64:
        raise ValueError(f"windows of {windows.shape[-1]} samples are too short for spectral features (need >= 64)")
    if not np.isfinite(windows).all():
        raise ValueError("windows contain NaN or inf")
    per_channel = np.concatenate(
        [time_domain_features(windows), spectrum_band_features(windows, config), envelope_features(windows, config)],
        axis=-1,
    )
    return per_channel[..., _kept(config)].reshape(len(windows), -1).astype(np.float32)


def envelope_waveform(windows: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Hilbert envelope of the band-passed windows, mean removed: ``[n, c, L]`` -> ``[n, c, L]``.

    Keeps *when* impacts happen and how sharp they are (rate and impulsiveness, which are set by
    the defect) and drops the carrier, whose spectrum is set by which resonances the impacts
    excite -- that part changes with load and mounting and does not transfer between them.
    """
    low, high = config.band
    sos = butter(4, [low, high], btype="bandpass", fs=config.sampling_rate, output="sos")
    filtered = sosfiltfilt(sos, windows.astype(np.float64, copy=False), axis=-1)
    envelope = np.abs(hilbert(filtered, axis=-1))
    return (envelope - envelope.mean(axis=-1, keepdims=True)).astype(np.float32)


def spectral_representation(
    windows: np.ndarray, config: FeatureConfig, *, n_bins: int = 256, envelope_max_hz: float = 1500.0
) -> np.ndarray:
    """Compact frequency-domain input for neural classifiers: ``[n, c, L]`` -> ``[n, 2c, n_bins]``.

    Channel ``2k`` is the log power spectrum of input channel ``k`` averaged into ``n_bins``
    equal bands from 0 Hz to Nyquist; channel ``2k+1`` is its envelope spectrum from 0 to
    ``envelope_max_hz`` resampled to ``n_bins`` points (log1p of amplitude over its median).
    Why: on this CPU a 1-D CNN on raw 2048-sample windows trains at about a second per window,
    and the spectra keep what separates bearing faults (resonance bands, impact rates) in 8x
    fewer steps while being insensitive to the phase at which a window starts.
    """
    if windows.ndim != 3:
        raise ValueError(f"windows must be [n_windows, n_channels, length], got shape {windows.shape}")
    if envelope_max_hz >= config.sampling_rate / 2:
        raise ValueError(f"envelope_max_hz {envelope_max_hz} must be below Nyquist ({config.sampling_rate / 2})")
    x = windows.astype(np.float64, copy=False)
    x = x - x.mean(axis=-1, keepdims=True)
    power = np.abs(np.fft.rfft(x * np.hanning(x.shape[-1]), axis=-1)) ** 2
    frequencies = np.fft.rfftfreq(x.shape[-1], d=1.0 / config.sampling_rate)
    if len(frequencies) < n_bins:
        raise ValueError(f"windows of {x.shape[-1]} samples give {len(frequencies)} frequencies, fewer than n_bins={n_bins}")
    edges = np.linspace(0.0, config.sampling_rate / 2, n_bins + 1)
    log_power = np.log10(_band_means(power, frequencies, edges) + _EPS)
    envelope_frequencies, amplitude = envelope_spectrum(windows, config)
    grid = np.linspace(0.0, envelope_max_hz, n_bins)
    reference = np.median(amplitude[..., 1:], axis=-1, keepdims=True) + _EPS
    flat = (amplitude / reference).reshape(-1, amplitude.shape[-1])
    resampled = np.stack([np.interp(grid, envelope_frequencies, row) for row in flat]).reshape(amplitude.shape[:-1] + (n_bins,))
    stacked = np.stack([log_power, np.log1p(resampled)], axis=2)  # [n, c, 2, bins]
    return stacked.reshape(len(windows), -1, n_bins).astype(np.float32)


def resample_to_speed(signal: np.ndarray, *, rpm: float, reference_rpm: float) -> np.ndarray:
    """Order-domain resampling at constant speed: make a recording at ``rpm`` look as if the shaft
    turned at ``reference_rpm`` (same samples per revolution), by Fourier resampling of the 1-D
    ``signal`` to ``len * rpm / reference_rpm`` samples.

    Why: bearing defect frequencies are fixed multiples of shaft speed (orders), so after this a
    fault at 1772 rpm impacts at the same sample spacing as at 1797 rpm and a classifier trained
    at one speed sees the same impact rates at the other. Needs the speed of each recording (a
    tachometer, or the nameplate at a known load), which CWRU gives per file.
    """
    if rpm <= 0 or reference_rpm <= 0:
        raise ValueError(f"speeds must be > 0 rpm, got {rpm} and {reference_rpm}")
    signal = np.asarray(signal)
    if signal.ndim != 1:
        raise ValueError(f"signal must be 1-D, got shape {signal.shape}")
    if rpm == reference_rpm:
        return signal
    from scipy.signal import resample

    target = int(round(signal.size * rpm / reference_rpm))
    return resample(signal.astype(np.float64), target).astype(signal.dtype)
