"""A demo pump with two hours of simulated history (a cavitation in the second hour), its demo PCA
detector trained on the fault-free part, and a tiny real diagnoser: enough for a backtest in seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.phm.analytics.diagnosis_helpers import (  # noqa: F401 (fixtures)
    diagnoser_version,
    fresh_knowledge_indexes,
    tiny_diagnoser_folder,
    tiny_models,
)

HISTORY_START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
TRAIN_END = HISTORY_START + timedelta(hours=1)
HISTORY_END = HISTORY_START + timedelta(hours=2)
FAULT_START = TRAIN_END + timedelta(minutes=20)


@pytest.fixture
def pump_history(db):
    """P-201 of the demo plant: its history, a recorded cavitation and an active detector."""
    from connectors.simulator import DEMO_PLANT
    from phm.analytics.demo import create_demo_detectors
    from phm.assets.services import create_plant
    from phm.telemetry import simulation

    create_plant(plant=DEMO_PLANT)
    fault = simulation.inject_fault(equipment_tag="P-201", fault="cavitation", start=FAULT_START, duration=timedelta(minutes=30),
                                    severity=1.2, source="simulator", ramp_s=120.0)
    simulation.backfill_bulk(start=HISTORY_START, end=HISTORY_END, seed=3, equipment=["P-201"], chunk=timedelta(minutes=30))
    # Trained over the whole history (the trainer leaves the recorded fault out): one hour of a
    # morning alone does not cover the demand the next hour brings.
    lines = create_demo_detectors(train_start=HISTORY_START, train_end=HISTORY_END, equipment_tags=["P-201"])
    assert "active" in lines[0], lines
    return fault
