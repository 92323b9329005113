"""Synthetic plant data for analytics tests: three correlated healthy channels at 1 Hz, and a
vibration fault that breaks the correlation."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from connectors.records import Reading
from phm.telemetry.services import ingest_readings


def healthy_values(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    load = np.sin(np.arange(n) / 30.0) + 0.1 * rng.standard_normal(n)
    vibration = 2.0 + 0.5 * load + 0.05 * rng.standard_normal(n)
    temperature = 40.0 + 3.0 * load + 0.2 * rng.standard_normal(n)
    pressure = 6.0 - 0.8 * load + 0.05 * rng.standard_normal(n)
    return np.stack([vibration, temperature, pressure], axis=1)


def ingest(sensors: dict, start: datetime, values: np.ndarray, *, fault_from: int | None = None, step_s: float = 1.0) -> None:
    values = values.copy()
    if fault_from is not None:
        values[fault_from:, 0] += 6.0  # vibration jumps while load is unchanged
    tags = [sensors["vibration"].tag, sensors["temperature"].tag, sensors["pressure"].tag]
    batch = [
        Reading(tag, start + timedelta(seconds=i * step_s), float(row[c]))
        for i, row in enumerate(values)
        for c, tag in enumerate(tags)
    ]
    ingest_readings(readings=batch)
