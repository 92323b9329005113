"""Simulator additions for diagnosis: per-equipment frames and thermal inspection images."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from connectors.simulator import (
    DEMO_PLANT, IMAGE_FINDINGS, PlantSimulator, ScheduledFault, image_finding, render_inspection_image,
)

START = datetime(2026, 3, 1, 8, tzinfo=UTC)
PUMP = DEMO_PLANT.get("P-101")


def fault(kind: str, equipment: str = "P-101", **kwargs) -> ScheduledFault:
    return ScheduledFault(equipment, kind, START, START + timedelta(hours=2), **kwargs)


def test_sample_frames_hold_the_same_values_and_logs_as_generate():
    faults = [fault("cavitation")]
    readings, logs = PlantSimulator(seed=4, faults=faults).generate(START, START + timedelta(minutes=12))
    frames, frame_logs = PlantSimulator(seed=4, faults=faults).sample_frames(START, START + timedelta(minutes=12), equipment=["P-101"])
    table = pd.DataFrame([(r.sensor.split(".", 1)[1], r.ts, r.value) for r in readings if r.sensor.startswith("P-101.")],
                         columns=["measure", "ts", "value"]).pivot(index="ts", columns="measure", values="value")
    frame = frames["P-101"]
    assert list(frames) == ["P-101"]
    np.testing.assert_array_equal(frame[table.columns].to_numpy(), table.to_numpy())
    assert [(r.ts, r.message) for r in frame_logs] == [(r.ts, r.message) for r in logs if r.source == "P-101"]


def test_inspection_image_is_grey_uint8_and_seeded():
    ts = START + timedelta(minutes=80)
    image = render_inspection_image(PUMP, ts, [fault("bearing_wear")], size=48, seed=3)
    assert image.shape == (48, 48) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, render_inspection_image(PUMP, ts, [fault("bearing_wear")], size=48, seed=3))
    assert not np.array_equal(image, render_inspection_image(PUMP, ts, [fault("bearing_wear")], size=48, seed=4))


def test_sensor_faults_and_other_units_faults_leave_the_image_healthy():
    ts = START + timedelta(minutes=80)
    healthy = render_inspection_image(PUMP, ts, [], seed=1)
    for unseen in (fault("stuck_sensor", sensor="FLOW"), fault("sensor_drift"), fault("bearing_wear", "P-201")):
        np.testing.assert_array_equal(render_inspection_image(PUMP, ts, [unseen], seed=1), healthy)


def test_visible_faults_change_the_image_where_their_finding_is():
    ts = START + timedelta(minutes=80)
    for kind, equipment in [("bearing_wear", "P-101"), ("misalignment", "P-101"), ("cavitation", "P-101"),
                            ("condenser_fouling", "CH-501")]:
        unit = DEMO_PLANT.get(equipment)
        differs = [not np.array_equal(render_inspection_image(unit, ts, [fault(kind, equipment)], seed=s),
                                      render_inspection_image(unit, ts, [], seed=s)) for s in range(5)]
        assert all(differs), kind
    assert image_finding("bearing_wear") == IMAGE_FINDINGS["bearing_wear"] and image_finding("stuck_sensor") == "no_visible_anomaly"

