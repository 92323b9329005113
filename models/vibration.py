"""Vibration analysis of one waveform capture: amplitude spectrum, envelope spectrum, integration of
acceleration to velocity, overall velocity RMS with the ISO 10816-3 / 20816-3 evaluation zones, and the
rolling-bearing defect frequencies (BPFO, BPFI, BSF, FTF) from bearing geometry and shaft speed.

No Django: the application (``phm.condition``) stores captures and calls these functions.

Conventions:

- A spectrum is single-sided amplitude (peak), scaled so that a sine of amplitude ``A`` on a bin
  centre reads ``A`` (Hann) or reads ``A`` within 0.01 dB anywhere (``window="flattop"``).
- Acceleration in ``g`` is converted with standard gravity 9.80665 m/s².
- Velocity RMS is the RMS of the velocity waveform band-limited to ``band_hz`` (ISO 10816-3's
  broad band, 10-1,000 Hz for machines above 600 rpm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal
from scipy.fft import irfft, rfft, rfftfreq

STANDARD_GRAVITY = 9.80665  # m/s² per g
#: Units a waveform may be in, and the factor to m/s² (acceleration) or mm/s (velocity).
ACCELERATION_TO_M_S2 = {"g": STANDARD_GRAVITY, "m/s2": 1.0}
VELOCITY_UNITS = frozenset({"mm/s"})
ISO_BAND_HZ = (10.0, 1000.0)


@dataclass(frozen=True, slots=True)
class Spectrum:
    """Single-sided amplitude spectrum: ``amplitude[i]`` at ``freq_hz[i]`` (same unit as the input)."""

    freq_hz: np.ndarray
    amplitude: np.ndarray

    @property
    def resolution_hz(self) -> float:
        return float(self.freq_hz[1] - self.freq_hz[0]) if len(self.freq_hz) > 1 else 0.0

    def peak_near(self, freq_hz: float, *, tolerance_hz: float) -> tuple[float, float]:
        """(frequency, amplitude) of the largest line within ``freq_hz ± tolerance_hz``."""
        mask = np.abs(self.freq_hz - freq_hz) <= tolerance_hz
        if not mask.any():
            raise ValueError(f"{freq_hz:.2f} Hz ± {tolerance_hz} is outside the spectrum (0-{self.freq_hz[-1]:.1f} Hz)")
        index = np.flatnonzero(mask)[np.argmax(self.amplitude[mask])]
        return float(self.freq_hz[index]), float(self.amplitude[index])

    def truncated(self, max_hz: float) -> Spectrum:
        keep = self.freq_hz <= max_hz
        return Spectrum(self.freq_hz[keep], self.amplitude[keep])


def _check_waveform(samples: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    values = np.asarray(samples, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"a waveform is one-dimensional, got shape {values.shape}")
    if len(values) < 16:
        raise ValueError(f"a waveform needs at least 16 samples, got {len(values)}")
    if not (np.isfinite(sample_rate_hz) and sample_rate_hz > 0):
        raise ValueError(f"sample rate must be a positive number, got {sample_rate_hz!r}")
    if not np.isfinite(values).all():
        raise ValueError("waveform has NaN or infinite samples")
    return values


def amplitude_spectrum(samples: np.ndarray, sample_rate_hz: float, *, window: str = "hann") -> Spectrum:
    """Windowed FFT of the whole waveform (mean removed), single-sided peak amplitude."""
    values = _check_waveform(samples, sample_rate_hz)
    values = values - values.mean()
    weights = signal.get_window(window, len(values), fftbins=True)
    # Coherent gain: dividing by sum(w) makes a bin-centred sine read its amplitude; x2 folds the
    # negative frequencies onto the positive ones (not for DC and Nyquist).
    amplitude = np.abs(rfft(values * weights)) * 2.0 / weights.sum()
    amplitude[0] /= 2.0
    if len(values) % 2 == 0:
        amplitude[-1] /= 2.0
    return Spectrum(rfftfreq(len(values), 1.0 / sample_rate_hz), amplitude)


def default_envelope_band(sample_rate_hz: float) -> tuple[float, float]:
    """A demodulation band above the shaft harmonics and below the anti-alias roll-off: 10 %-40 % of
    the sample rate (1.2-4.8 kHz at 12 kHz, 2.6-10.2 kHz at 25.6 kHz), where impacts from a local
    bearing defect excite the structure's resonances and the running-speed lines are small."""
    return 0.10 * sample_rate_hz, 0.40 * sample_rate_hz


def envelope_spectrum(
    samples: np.ndarray,
    sample_rate_hz: float,
    *,
    band_hz: tuple[float, float] | None = None,
    max_hz: float | None = 1000.0,
    order: int = 4,
) -> Spectrum:
    """Band-pass (Butterworth, zero phase), Hilbert envelope, mean removed, amplitude spectrum up to
    ``max_hz``. Repetitive impacts (a defect struck by each rolling element) show at their repetition
    frequency and harmonics, with sidebands at the modulating shaft or cage speed."""
    values = _check_waveform(samples, sample_rate_hz)
    low, high = band_hz if band_hz is not None else default_envelope_band(sample_rate_hz)
    nyquist = sample_rate_hz / 2.0
    if not 0 < low < high < nyquist:
        raise ValueError(f"envelope band {low:g}-{high:g} Hz must satisfy 0 < low < high < Nyquist ({nyquist:g} Hz)")
    sos = signal.butter(order, [low, high], btype="bandpass", fs=sample_rate_hz, output="sos")
    filtered = signal.sosfiltfilt(sos, values - values.mean())
    envelope = np.abs(signal.hilbert(filtered))
    spectrum = amplitude_spectrum(envelope, sample_rate_hz)
    return spectrum.truncated(max_hz) if max_hz is not None else spectrum


def to_velocity_mm_s(samples: np.ndarray, sample_rate_hz: float, *, unit: str, highpass_hz: float = ISO_BAND_HZ[0],
                     lowpass_hz: float | None = None) -> np.ndarray:
    """Velocity waveform in mm/s. Acceleration (g, m/s²) is integrated in the frequency domain
    (divide by j·2πf); lines below ``highpass_hz`` are dropped, since integration turns the
    accelerometer's low-frequency noise and any offset into large, meaningless drift. Velocity input
    is band-limited the same way."""
    values = _check_waveform(samples, sample_rate_hz)
    if unit not in ACCELERATION_TO_M_S2 and unit not in VELOCITY_UNITS:
        raise ValueError(f"unit {unit!r} is neither acceleration ({', '.join(ACCELERATION_TO_M_S2)}) nor velocity (mm/s)")
    if highpass_hz <= 0:
        raise ValueError(f"highpass_hz must be positive, got {highpass_hz}")
    n = len(values)
    freqs = rfftfreq(n, 1.0 / sample_rate_hz)
    spectrum = rfft(values - values.mean())
    keep = freqs >= highpass_hz
    if lowpass_hz is not None:
        keep &= freqs <= lowpass_hz
    out = np.zeros_like(spectrum)
    if unit in ACCELERATION_TO_M_S2:
        # m/s² -> m/s by 1/(j·2πf), then m/s -> mm/s.
        out[keep] = spectrum[keep] * ACCELERATION_TO_M_S2[unit] * 1000.0 / (2j * np.pi * freqs[keep])
    else:
        out[keep] = spectrum[keep]
    return irfft(out, n)


def velocity_rms_mm_s(samples: np.ndarray, sample_rate_hz: float, *, unit: str, band_hz: tuple[float, float] = ISO_BAND_HZ) -> float:
    """Overall vibration severity: RMS of the velocity in ``band_hz`` (10-1,000 Hz by default)."""
    low, high = band_hz
    if not 0 < low < high:
        raise ValueError(f"band {low}-{high} Hz must satisfy 0 < low < high")
    velocity = to_velocity_mm_s(samples, sample_rate_hz, unit=unit, highpass_hz=low, lowpass_hz=high)
    return float(np.sqrt(np.mean(velocity**2)))


# --- ISO 10816-3 / 20816-3 ---------------------------------------------------------------------

#: Zone boundaries A/B, B/C, C/D in mm/s RMS (ISO 10816-3:2009 Table A.1 / A.2; ISO 20816-3:2022
#: keeps the same values for these groups). Group 1: large machines 300 kW-50 MW; group 2: medium
#: machines 15-300 kW.
ISO_10816_3_BOUNDARIES: dict[tuple[str, str], tuple[float, float, float]] = {
    ("group1", "rigid"): (2.3, 4.5, 7.1),
    ("group1", "flexible"): (3.5, 7.1, 11.0),
    ("group2", "rigid"): (1.4, 2.8, 4.5),
    ("group2", "flexible"): (2.3, 4.5, 7.1),
}
ZONE_MEANING = {
    "A": "newly commissioned machine",
    "B": "unrestricted long-term operation",
    "C": "not suitable for long-term continuous operation",
    "D": "severe enough to cause damage",
}


@dataclass(frozen=True, slots=True)
class ZoneLimits:
    ab: float
    bc: float
    cd: float

    def zone(self, velocity_rms_mm_s: float) -> str:
        """A, B, C or D; a value on a boundary belongs to the worse zone."""
        if not np.isfinite(velocity_rms_mm_s) or velocity_rms_mm_s < 0:
            raise ValueError(f"velocity RMS must be a non-negative number, got {velocity_rms_mm_s!r}")
        if velocity_rms_mm_s < self.ab:
            return "A"
        if velocity_rms_mm_s < self.bc:
            return "B"
        return "C" if velocity_rms_mm_s < self.cd else "D"


def iso_zone_limits(*, machine_group: str, foundation: str) -> ZoneLimits:
    key = (machine_group, foundation)
    if key not in ISO_10816_3_BOUNDARIES:
        known = ", ".join(f"{g}/{f}" for g, f in ISO_10816_3_BOUNDARIES)
        raise ValueError(f"no ISO 10816-3 limits for machine group {machine_group!r} on a {foundation!r} foundation (known: {known})")
    return ZoneLimits(*ISO_10816_3_BOUNDARIES[key])


def iso_zone(velocity_rms_mm_s: float, *, machine_group: str, foundation: str) -> str:
    return iso_zone_limits(machine_group=machine_group, foundation=foundation).zone(velocity_rms_mm_s)


# --- bearing defect frequencies ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BearingGeometry:
    """Rolling-element bearing: pitch and ball diameter (any one unit), number of rolling elements,
    contact angle in degrees."""

    pitch_diameter: float
    ball_diameter: float
    rolling_elements: int
    contact_angle_deg: float = 0.0

    def __post_init__(self) -> None:
        if not (self.pitch_diameter > 0 and self.ball_diameter > 0):
            raise ValueError(f"diameters must be positive, got pitch {self.pitch_diameter}, ball {self.ball_diameter}")
        if self.ball_diameter >= self.pitch_diameter:
            raise ValueError(f"ball diameter {self.ball_diameter} must be smaller than pitch diameter {self.pitch_diameter}")
        if int(self.rolling_elements) != self.rolling_elements or self.rolling_elements < 1:
            raise ValueError(f"rolling_elements must be a positive integer, got {self.rolling_elements!r}")
        if not 0 <= self.contact_angle_deg < 90:
            raise ValueError(f"contact angle must be in [0, 90) degrees, got {self.contact_angle_deg}")

    def orders(self) -> dict[str, float]:
        """Defect frequencies as multiples of shaft speed (outer race fixed, inner race turning):
        BPFO, BPFI, BSF (ball spin, once per revolution of the ball: the convention of SKF's and
        CWRU's published tables; a spall on a ball strikes both races, so 2xBSF shows too) and FTF
        (cage)."""
        ratio = self.ball_diameter / self.pitch_diameter * np.cos(np.radians(self.contact_angle_deg))
        n = self.rolling_elements
        return {
            "BPFO": n / 2.0 * (1.0 - ratio),
            "BPFI": n / 2.0 * (1.0 + ratio),
            "BSF": self.pitch_diameter / (2.0 * self.ball_diameter) * (1.0 - ratio**2),
            "FTF": 0.5 * (1.0 - ratio),
        }


DEFECTS = ("BPFO", "BPFI", "BSF", "FTF")


def defect_frequencies(geometry: BearingGeometry, *, shaft_speed_rpm: float, harmonics: int = 3) -> dict[str, list[float]]:
    """``{"BPFO": [1x, 2x, 3x] Hz, ...}`` at the given shaft speed."""
    if not (np.isfinite(shaft_speed_rpm) and shaft_speed_rpm > 0):
        raise ValueError(f"shaft speed must be a positive number of rpm, got {shaft_speed_rpm!r}")
    if harmonics < 1:
        raise ValueError(f"harmonics must be at least 1, got {harmonics}")
    shaft_hz = shaft_speed_rpm / 60.0
    return {name: [order * shaft_hz * k for k in range(1, harmonics + 1)] for name, order in geometry.orders().items()}


def running_speed_harmonics(*, shaft_speed_rpm: float, harmonics: int = 3) -> list[float]:
    """1x, 2x, 3x ... running speed in Hz."""
    return [shaft_speed_rpm / 60.0 * k for k in range(1, harmonics + 1)]


def line_prominence(spectrum: Spectrum, freq_hz: float, *, tolerance_hz: float, neighbourhood_hz: float = 20.0) -> float:
    """How far the largest line within ``freq_hz ± tolerance_hz`` stands above the median level of
    the spectrum within ``± neighbourhood_hz`` (a ratio; about 1 means no line)."""
    _, peak = spectrum.peak_near(freq_hz, tolerance_hz=tolerance_hz)
    near = np.abs(spectrum.freq_hz - freq_hz) <= neighbourhood_hz
    floor = float(np.median(spectrum.amplitude[near]))
    return peak / floor if floor > 0 else float("inf")
