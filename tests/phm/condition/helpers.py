"""Captures for the condition tests: a pump with a bearing-geometry point and simulated waveforms."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from connectors.vibration_sim import CaptureSettings, simulate_capture
from connectors.waveforms import WaveformRecord
from models.vibration import BearingGeometry

#: SKF 6309 (the demo pumps' drive-end bearing).
GEOMETRY = {"pitch_diameter_mm": 72.5, "ball_diameter_mm": 17.462, "rolling_elements": 8}
SPEED_RPM = 1480.0
RATE = 25_600.0


def orders() -> dict[str, float]:
    return BearingGeometry(GEOMETRY["pitch_diameter_mm"], GEOMETRY["ball_diameter_mm"], GEOMETRY["rolling_elements"]).orders()


def waveform(*, wear: float = 0.0, misalignment: float = 0.0, seed: int = 0, seconds: float = 1.0) -> np.ndarray:
    return simulate_capture(np.random.default_rng(seed), speed_rpm=SPEED_RPM, defect_orders=orders(), bearing_wear=wear,
                            misalignment=misalignment, settings=CaptureSettings(seconds=seconds))


def record(at: datetime, *, point: str = "DE", equipment: str = "P-101", samples: np.ndarray | None = None, **changes) -> WaveformRecord:
    values = waveform() if samples is None else samples
    fields = {"equipment": equipment, "point": point, "captured_at": at, "sample_rate_hz": RATE, "samples": values, "unit": "g",
              "speed_rpm": SPEED_RPM, "origin": "test"}
    fields.update(changes)
    return WaveformRecord(**fields)


def add_point(equipment, name: str = "DE", using: str = "default"):
    from phm.assets.models import MeasurementPoint

    return MeasurementPoint.objects.using(using).create(equipment=equipment, name=name, bearing_designation="6309", **GEOMETRY)


def store_series(equipment, t0: datetime, *, count: int = 3, wear_from: int | None = None) -> list:
    """``count`` captures 10 min apart on point DE (bearing wear growing from index ``wear_from``)."""
    from phm.condition.captures import ingest_capture

    add_point(equipment)
    out = []
    for i in range(count):
        wear = 0.0 if wear_from is None or i < wear_from else 0.5 * (i - wear_from + 1)
        out.append(ingest_capture(record=record(t0 + timedelta(minutes=10 * i), samples=waveform(wear=wear, seed=i))).capture)
    return out
