"""Run-to-failure histories for the demo plant's pumps, and its first RUL model.

The demo streams seconds of 1 Hz data; remaining useful life is a matter of months. So the demo
gets, written in bulk through the readings store (hourly means: what the roll-ups would hold):

* a fleet of **sister pumps** (``SP-01`` ... in their own line, sensors disabled: they are
  retired, no live data is expected) whose recorded lives each end in a bearing failure: readings
  from commissioning to failure, with wear growing as ``severity * (t / life) ** shape`` in
  vibration, bearing temperature and current (severity 0.7-1.3 and shape 1.6-3 drawn per pump;
  the other sensors only noise), and a failure work order (``ends_run``) at the end;
* the **current run** of P-101 and P-201: hourly readings from their commissioning up to the demo's
  own 1 Hz backfill, P-101 further into its life than P-201;
* a RUL model for pumps trained on the sister pumps' histories through the same training job as
  the API, activated, and a first estimate and health trend for P-101 and P-201.

Levels and noise are those of the simulator's own pumps (sampled from it), so the live data goes
on where the history stops. Seeded: the same plant on every first start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
from django.db import transaction

from phm.assets.models import Equipment, EquipmentType, Line, Sensor, WorkOrder, WorkOrderKind
from phm.telemetry.fields import datetime_to_us
from phm.telemetry.store import get_store

HOUR = timedelta(hours=1)
#: Wear at failure per measurement, as a multiple of the simulator's normal level (bearing wear).
WEAR_AT_FAILURE = {"vibration_rms": 2.2, "bearing_temperature": 0.30, "current": 0.08}
PUMP_SENSORS = [("VIB", "vibration_rms", "mm/s"), ("TEMP_BRG", "bearing_temperature", "degC"), ("CURRENT", "current", "A"),
                ("PRESS_DIS", "pressure", "bar"), ("FLOW", "flow", "m3/h"), ("SPEED", "speed", "rpm")]


@dataclass(frozen=True)
class DemoFleet:
    sister_pumps: int = 16
    life_days: tuple[int, int] = (60, 150)
    current_age_days: tuple[tuple[str, int, int], ...] = (("P-101", 70, 105), ("P-201", 30, 120))  # tag, age, life
    seed: int = 11


def normal_levels(*, tag: str = "P-101", seed: int = 7) -> dict[str, tuple[float, float]]:
    """(mean, hourly spread) of each pump measure from ten minutes of the simulator's own signals."""
    from connectors.simulator import DEMO_PLANT, PlantSimulator

    simulator = PlantSimulator(DEMO_PLANT, seed=seed, faults=[])
    start = datetime(2026, 1, 5, 10, tzinfo=timezone.utc)
    frames, _ = simulator.sample_frames(start, start + timedelta(minutes=10), equipment=[tag])
    frame = frames[tag]
    return {measure: (float(frame[measure].mean()), float(frame[measure].std()) * 0.3 + 1e-6) for measure in frame.columns}


def _series(levels: dict[str, tuple[float, float]], measure: str, measurement: str, hours: np.ndarray, life_h: float,
            rng: np.random.Generator, *, severity: float, shape: float) -> np.ndarray:
    mean, spread = levels.get(measure, (1.0, 0.01))
    wear = (hours / life_h) ** shape
    values = mean * (1.0 + severity * WEAR_AT_FAILURE.get(measurement, 0.0) * wear) + rng.normal(0.0, spread, len(hours))
    return values


def _write(sensors: dict[str, Sensor], levels, start: datetime, hours: int, life_h: float, rng: np.random.Generator) -> int:
    steps = np.arange(hours, dtype=np.float64)
    times = datetime_to_us(start) + (steps * 3_600_000_000).astype(np.int64)
    # Machines differ: how far a bearing is worn when it fails, and how early wear shows (the
    # spread that makes a RUL interval honest rather than a line).
    severity, shape = float(rng.uniform(0.7, 1.3)), float(rng.uniform(1.6, 3.0))
    rows = []
    for measure, sensor in sensors.items():
        values = _series(levels, measure, sensor.measurement, steps, life_h, rng, severity=severity, shape=shape)
        rows.extend(zip([sensor.pk] * len(times), times.tolist(), values.tolist(), [192] * len(times)))
    return get_store().write(rows)


def _sister_line(pump: Equipment) -> Line:
    line, _ = Line.objects.get_or_create(area=pump.line.area, code="sister-pumps",
                                         defaults={"name": "Retired sister pumps (maintenance history only)"})
    return line


@transaction.atomic
def create_demo_histories(*, now: datetime, fleet: DemoFleet = DemoFleet()) -> list[str]:
    """Sister pumps with run-to-failure histories and the current runs of P-101 / P-201 (idempotent:
    nothing is written when the sister pumps exist)."""
    pump = Equipment.objects.filter(tag="P-101").select_related("line__area").first()
    if pump is None:
        return ["no P-101 in this plant; no RUL demo"]
    if Equipment.objects.filter(tag="SP-01").exists():
        return ["RUL demo histories exist already"]
    rng = np.random.default_rng(fleet.seed)
    levels = normal_levels()
    line = _sister_line(pump)
    lines, readings = [], 0
    for index in range(1, fleet.sister_pumps + 1):
        tag = f"SP-{index:02d}"
        sister = Equipment.objects.create(line=line, tag=tag, name=f"Sister pump {index} (retired)", equipment_type=EquipmentType.PUMP,
                                          criticality=pump.criticality)
        sensors = {measure: Sensor.objects.create(equipment=sister, tag=f"{tag}.{measure}", name=measure, measurement=measurement, unit=unit,
                                                  sampling_period_s=3600.0, enabled=False)
                   for measure, measurement, unit in PUMP_SENSORS}
        life_days = int(rng.integers(*fleet.life_days))
        failed = now - timedelta(days=int(rng.integers(120, 720)))
        start = failed - timedelta(days=life_days)
        readings += _write(sensors, levels, start, life_days * 24, life_days * 24.0, rng)
        WorkOrder.objects.create(equipment=sister, number=f"WO-DEMO-{tag}", kind=WorkOrderKind.CORRECTIVE, opened_at=failed, failed_at=failed,
                                 closed_at=failed + timedelta(days=2), fault="bearing_wear", ends_run=True, source="simulator",
                                 description=f"Bearing failure after {life_days} days; pump retired.")
    lines.append(f"{fleet.sister_pumps} sister pumps with run-to-failure histories ({readings} hourly readings)")
    for tag, age_days, life_days in fleet.current_age_days:
        equipment = Equipment.objects.filter(tag=tag).first()
        if equipment is None:
            continue
        names = {measure for measure, _, _ in PUMP_SENSORS}
        own = {s.tag.split(".", 1)[1]: s for s in equipment.sensors.all() if s.tag.split(".", 1)[-1] in names}
        first_live = get_store().first_ts([s.pk for s in own.values()], 0, datetime_to_us(now))
        end = now if first_live is None else datetime.fromtimestamp(first_live / 1e6, tz=now.tzinfo)
        hours = int((end - (now - timedelta(days=age_days))).total_seconds() // 3600)
        written = _write(own, normal_levels(tag=tag), end - hours * HOUR, hours, life_days * 24.0, rng)
        lines.append(f"{tag}: current run of {age_days} days ({written} hourly readings)")
    return lines


def train_demo_rul_model(*, now: datetime) -> list[str]:
    """Train and activate the pumps' RUL model (the API's job, run here), then the first health
    trend and estimate of P-101 and P-201."""
    from phm.condition import health, rul

    if rul.active_version(equipment_type=EquipmentType.PUMP) is not None:
        return ["pump RUL model already active"]
    job = rul.run_rul_training(job_id=rul.start_rul_training(equipment_type=EquipmentType.PUMP, enqueue=False).pk)
    if job.result is None:
        return [f"pump RUL model training failed: {job.error}"]
    lines = [f"pump RUL model v{job.result.version} active, from {job.result.histories} run-to-failure histories"]
    for tag in ("P-101", "P-201"):
        equipment = Equipment.objects.filter(tag=tag).first()
        if equipment is None:
            continue
        health.update_health(equipment=equipment, now=now)
        outcome = rul.estimate_rul(equipment=equipment, now=now)
        estimate = outcome.estimate
        lines.append(f"{tag}: " + (f"RUL {estimate.rul_days:.0f} d [{estimate.lower_days:.0f}, {estimate.upper_days:.0f}]" if estimate else outcome.message))
    return lines
