"""The demo simulator: plausible values and the textbook signature of each fault."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from connectors.simulator import DEMO_PLANT, PlantSimulator, ScheduledFault

START = datetime(2026, 3, 1, 8, tzinfo=UTC)
HOUR = timedelta(hours=1)
FAULT_START, END = START + timedelta(minutes=10), START + timedelta(minutes=40)


def frame(simulator: PlantSimulator, start=START, end=END) -> pd.DataFrame:
    readings, _ = simulator.generate(start, end)
    table = pd.DataFrame([(r.sensor, r.ts, r.value) for r in readings], columns=["tag", "ts", "value"])
    return table.pivot(index="ts", columns="tag", values="value")


@pytest.fixture(scope="module")
def healthy() -> pd.DataFrame:
    return frame(PlantSimulator(seed=3))


def with_fault(kind: str, equipment: str, **kwargs) -> pd.DataFrame:
    fault = ScheduledFault(equipment, kind, FAULT_START, END, **kwargs)
    return frame(PlantSimulator(seed=3, faults=[fault]))


def late(df: pd.DataFrame) -> pd.DataFrame:
    return df[df.index >= START + timedelta(minutes=32)]


def test_every_sensor_reports_within_its_range(healthy):
    tags = {e.sensor_tag(s.measure): s for e in DEMO_PLANT.equipment for s in e.sensors}
    assert set(healthy.columns) == set(tags)
    for tag, sensor in tags.items():
        values = healthy[tag].dropna()
        assert sensor.range_low <= values.min() and values.max() <= sensor.range_high, tag
    assert healthy["CH-501.POWER"].dropna().size == 240  # 10 s sampling over 40 min


def test_pump_follows_affinity_laws(healthy):
    speed, flow, head = healthy["P-101.SPEED"], healthy["P-101.FLOW"], healthy["P-101.PRESS_DIS"] - healthy["P-101.PRESS_SUC"]
    assert speed.corr(flow) > 0.8 and speed.corr(head) > 0.8
    assert 20 < healthy["P-101.CURRENT"].mean() < 120


def test_bearing_wear_raises_vibration_and_bearing_temperature(healthy):
    faulty = with_fault("bearing_wear", "P-101")
    assert late(faulty)["P-101.VIB"].mean() > 3 * late(healthy)["P-101.VIB"].mean()
    assert late(faulty)["P-101.TEMP_BRG"].mean() > late(healthy)["P-101.TEMP_BRG"].mean() + 5
    assert late(faulty)["P-201.VIB"].mean() == pytest.approx(late(healthy)["P-201.VIB"].mean(), rel=0.05)  # other pump untouched


def test_cavitation_drops_suction_and_makes_flow_oscillate(healthy):
    faulty = with_fault("cavitation", "P-201")
    assert late(faulty)["P-201.PRESS_SUC"].mean() < late(healthy)["P-201.PRESS_SUC"].mean() - 0.4
    assert late(faulty)["P-201.FLOW"].diff().std() > 5 * late(healthy)["P-201.FLOW"].diff().std()


def test_condenser_fouling_raises_condenser_pressure_and_power(healthy):
    faulty = with_fault("condenser_fouling", "CH-501")
    assert late(faulty)["CH-501.COND_PRESS"].mean() > late(healthy)["CH-501.COND_PRESS"].mean() + 1
    assert late(faulty)["CH-501.POWER"].mean() > late(healthy)["CH-501.POWER"].mean() * 1.1


def test_stuck_sensor_freezes_and_drift_walks_away(healthy):
    stuck = with_fault("stuck_sensor", "P-101", sensor="FLOW")
    assert late(stuck)["P-101.FLOW"].nunique() == 1
    drift = with_fault("sensor_drift", "M-101", sensor="TEMP_BRG")
    gap = late(drift)["M-101.TEMP_BRG"] - late(healthy)["M-101.TEMP_BRG"]
    assert gap.mean() > 0.5 and (gap.diff().dropna() >= -0.5).all() and drift["M-101.VIB"].equals(healthy["M-101.VIB"])


def test_faults_come_with_controller_log_lines():
    fault = ScheduledFault("P-101", "bearing_wear", FAULT_START, END)
    _, logs = PlantSimulator(seed=3, faults=[fault]).generate(START, END)
    messages = [log.message for log in logs if log.source == "P-101" and log.level in {"WARN", "ALARM"}]
    assert any("Vibration" in m for m in messages)
    assert all(log.ts.tzinfo is not None for log in logs)


def test_stream_in_chunks_equals_one_backfill():
    whole = frame(PlantSimulator(seed=5), START, START + timedelta(minutes=20))
    simulator = PlantSimulator(seed=5)
    parts = [frame(simulator, START + timedelta(minutes=m), START + timedelta(minutes=m + 5)) for m in range(0, 20, 5)]
    pd.testing.assert_frame_equal(whole, pd.concat(parts))


def test_invalid_faults_are_refused():
    with pytest.raises(ValueError, match="unknown fault"):
        ScheduledFault("P-101", "gremlins", START, START + HOUR)
    with pytest.raises(ValueError, match="end must be after"):
        ScheduledFault("P-101", "cavitation", START, START)
    with pytest.raises(KeyError, match="no equipment"):
        PlantSimulator(faults=[ScheduledFault("X-1", "cavitation", START, START + HOUR)])


def test_a_fault_ramp_sets_how_fast_it_reaches_full_severity():
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from connectors.simulator import ScheduledFault

    start = datetime(2026, 1, 1, tzinfo=UTC)
    fast = ScheduledFault("P-101", "cavitation", start, start + timedelta(hours=2), 1.2, ramp_s=600)
    slow = ScheduledFault("P-101", "cavitation", start, start + timedelta(hours=2), 1.2)
    at = np.array([start.timestamp() + 600, start.timestamp() + 7199, start.timestamp() + 7200])
    assert fast.profile(at).tolist() == [1.2, 1.2, 0.0]
    assert 0 < slow.profile(at)[0] < 0.2 and slow.profile(at)[1] == 1.2
    with pytest.raises(ValueError, match="ramp_s"):
        ScheduledFault("P-101", "cavitation", start, start + timedelta(hours=2), ramp_s=0)


def test_a_stuck_sensor_stays_frozen_when_another_stuck_fault_of_it_is_scheduled_later():
    from datetime import UTC, datetime, timedelta

    from connectors.simulator import DEMO_PLANT, PlantSimulator, ScheduledFault

    start = datetime(2026, 1, 1, tzinfo=UTC)
    now = ScheduledFault("P-101", "stuck_sensor", start + timedelta(minutes=5), start + timedelta(minutes=40), sensor="FLOW")
    later = ScheduledFault("P-101", "stuck_sensor", start + timedelta(hours=5), start + timedelta(hours=6), sensor="FLOW")
    frames, _ = PlantSimulator(DEMO_PLANT, seed=1, faults=[now, later]).sample_frames(start, start + timedelta(hours=1), equipment=["P-101"])
    flow = frames["P-101"]["FLOW"]
    stuck = flow[(flow.index >= now.start) & (flow.index < now.end)]
    assert stuck.nunique() == 1 and flow[flow.index >= now.end].nunique() > 100
