"""Synthetic vibration captures for the fault-classification tests: resonance bursts at a
class-specific impact order (multiple of shaft speed) in noise; "Normal" is noise only."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

FS = 12_000.0
#: Impacts per shaft revolution, like bearing defect orders.
ORDERS = {"IR": 5.4, "OR": 3.6}


def capture_signal(label: str, *, rpm: float, seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    signal = rng.normal(0, 0.2, n + 80)
    if label in ORDERS:
        t = np.arange(60) / FS
        burst = np.sin(2 * np.pi * 3000 * t) * np.exp(-t * 1500)
        period = 1.0 / (ORDERS[label] * rpm / 60.0)
        for start in np.arange(rng.uniform(0, period), n / FS, period):
            index = int(start * FS)
            signal[index : index + 60] += burst * rng.uniform(1.5, 2.5)
    return signal[:n].astype(np.float32)


def make_point(equipment, name: str = "DE"):
    from phm.assets.models import MeasurementPoint

    return MeasurementPoint.objects.get_or_create(equipment=equipment, name=name)[0]


def add_capture(point, *, at: datetime, label: str = "", signal_label: str | None = None, rpm: float | None = 1797.0, seed: int = 0):
    from phm.condition.models import WaveformCapture

    signal = capture_signal(signal_label or label or "Normal", rpm=rpm or 1797.0, seed=seed)
    return WaveformCapture.objects.create(
        equipment=point.equipment, point=point, captured_at=at, sample_rate_hz=FS, n_samples=signal.size,
        samples=WaveformCapture.pack(signal), speed_rpm=rpm, label=label,
    )


def labelled_set(point, t0: datetime, *, per_class: int = 8, classes=("Normal", "IR", "OR"), rpms=(1797.0, 1730.0)):
    """``per_class`` labelled captures of each class, alternating between the speeds."""
    captures, k = [], 0
    for label in classes:
        for i in range(per_class):
            captures.append(add_capture(point, at=t0 + timedelta(seconds=k), label=label, rpm=rpms[i % len(rpms)], seed=100 + k))
            k += 1
    return captures


#: Fast FaultClassifier settings for tests (gradient boosting on features; the neural default has its own test).
FAST = {"method": "features", "n_estimators": 60}
