"""A demo unit's last 30 minutes straight from the plant simulator, healthy or ``minutes`` into a
sensor fault on its bearing thermocouple (severity 1): the windows the trend and dynamics tests
compare."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from connectors.simulator import DEMO_PLANT, PlantSimulator, ScheduledFault
from models.diagnosis.simulate import EPOCH


def simulated_window(kind: str, seed: int, *, tag: str = "P-101", minutes: float = 5.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = EPOCH + timedelta(days=int(rng.integers(60)), seconds=int(rng.integers(86_400)))
    fault_start = start + timedelta(minutes=60)
    end = fault_start + timedelta(minutes=minutes)
    faults = [] if kind == "normal" else [ScheduledFault(tag, kind, fault_start, end + timedelta(hours=1), 1.0, "TEMP_BRG")]
    frames, _ = PlantSimulator(DEMO_PLANT, seed=seed, faults=faults).sample_frames(start, end, equipment=[tag])
    frame = frames[tag]
    return frame[frame.index >= end - timedelta(minutes=30)]
