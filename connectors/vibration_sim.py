"""Simulated vibration captures for the demo plant (no Django): an accelerometer on a bearing
housing of a pump or motor, in g.

What is in the signal, and why (the textbook signatures an analyst looks for):

- running speed: 1x (residual unbalance) with small 2x and 3x; velocity about 2 mm/s peak at 1x,
  so a healthy machine sits in ISO 10816-3 zone A/B;
- misalignment raises 2x (and some 3x), the classic sign, which moves the overall velocity RMS up
  into zone C at full severity;
- a local bearing defect strikes once per rolling element pass (BPFO for the outer race, BPFI for
  the inner race, with +-2 % slip jitter): each strike rings the housing's resonance (4.5 kHz here),
  and the strikes are amplitude-modulated once per shaft turn (load zone / inner race rotation), so
  the envelope spectrum shows the defect frequency, its harmonics and sidebands at +-1x, growing
  with the wear;
- cavitation adds broadband high-frequency noise;
- sensor noise (white) on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import signal

STANDARD_GRAVITY = 9.80665


@dataclass(frozen=True)
class CaptureSettings:
    rate_hz: float = 25_600.0
    seconds: float = 1.0
    resonance_hz: float = 4_500.0
    ring_down_s: float = 0.0008  # decay time constant of a strike's ring-down
    noise_g: float = 0.01


def _velocity_tone_as_g(velocity_peak_mm_s: float, freq_hz: float, t: np.ndarray, phase: float) -> np.ndarray:
    # a = v·2πf: a velocity line of v mm/s peak at f Hz is this acceleration in g.
    amplitude_g = velocity_peak_mm_s / 1000.0 * 2 * np.pi * freq_hz / STANDARD_GRAVITY
    return amplitude_g * np.sin(2 * np.pi * freq_hz * t + phase)


def _strikes(rng: np.random.Generator, *, rate: float, n: int, defect_hz: float, shaft_hz: float, amplitude_g: float,
             settings: CaptureSettings) -> np.ndarray:
    """A train of resonance ring-downs at ``defect_hz`` (with slip jitter), modulated at shaft speed."""
    period = 1.0 / defect_hz
    count = int(n / rate / period) + 2
    times = np.arange(count) * period + rng.uniform(0, period) + rng.normal(0, 0.02 * period, count)
    times = times[(times >= 0) & (times < n / rate)]
    impulses = np.zeros(n)
    index = (times * rate).astype(int)
    impulses[index] = amplitude_g * (1.0 + 0.5 * np.cos(2 * np.pi * shaft_hz * times))
    length = int(6 * settings.ring_down_s * rate)
    k = np.arange(length) / rate
    kernel = np.exp(-k / settings.ring_down_s) * np.sin(2 * np.pi * settings.resonance_hz * k)
    return signal.fftconvolve(impulses, kernel)[:n]


def simulate_capture(
    rng: np.random.Generator,
    *,
    speed_rpm: float,
    defect_orders: Mapping[str, float],
    bearing_wear: float = 0.0,
    defect: str = "BPFO",
    misalignment: float = 0.0,
    cavitation: float = 0.0,
    settings: CaptureSettings = CaptureSettings(),
) -> np.ndarray:
    """One capture in g (float32). Fault levels are 0 (absent) to about 1-3 (severe)."""
    if speed_rpm <= 0:
        raise ValueError(f"speed must be positive, got {speed_rpm}")
    if defect not in defect_orders:
        raise ValueError(f"defect {defect!r} is not in the bearing's orders ({', '.join(defect_orders)})")
    rate = settings.rate_hz
    n = int(round(rate * settings.seconds))
    t = np.arange(n) / rate
    shaft_hz = speed_rpm / 60.0
    phases = rng.uniform(0, 2 * np.pi, 3)
    x = _velocity_tone_as_g(2.0 + 0.5 * misalignment, shaft_hz, t, phases[0])
    x += _velocity_tone_as_g(0.5 + 4.0 * misalignment, 2 * shaft_hz, t, phases[1])
    x += _velocity_tone_as_g(0.2 + 1.0 * misalignment, 3 * shaft_hz, t, phases[2])
    if bearing_wear > 0:
        x += _strikes(rng, rate=rate, n=n, defect_hz=defect_orders[defect] * shaft_hz, shaft_hz=shaft_hz,
                      amplitude_g=1.5 * bearing_wear, settings=settings)
    if cavitation > 0:
        sos = signal.butter(4, [1_000.0, min(8_000.0, 0.45 * rate)], btype="bandpass", fs=rate, output="sos")
        x += 0.25 * cavitation * signal.sosfilt(sos, rng.standard_normal(n)) / 0.5
    x += rng.normal(0, settings.noise_g, n)
    return x.astype(np.float32)
