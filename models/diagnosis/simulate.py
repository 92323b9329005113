"""Labelled incidents from the demo plant simulator: sensors, logs and an inspection image per alarm.

Each incident is simulated on its own (one unit, its own seed): a normal ``baseline`` period, then
the fault starts (none for ``normal``) and ramps in; the alarm is raised ``alarm_after`` into the
fault and the incident holds the sensor window of the ``window`` before the alarm, the log events
of that window and of the baseline (log templates mined over both in one pass, as the app does),
and a thermal inspection image of the unit at the alarm. Start time of day, severity, and for
sensor faults the affected measure are random, so the set covers load, ambient and fault-size
variation rather than one textbook case per class.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from connectors.simulator import DEMO_PLANT, PlantDef, PlantSimulator, ScheduledFault, render_inspection_image
from models.diagnosis.taxonomy import DEFAULT_TAXONOMY
from models.diagnosis.types import NORMAL, Incident
from models.logs import events_from_messages

EPOCH = datetime(2026, 1, 5, tzinfo=UTC)
BASELINE = timedelta(minutes=60)
WINDOW = timedelta(minutes=30)
SENSOR_FAULTS = ("sensor_drift", "stuck_sensor")


def simulate_incidents(
    *,
    equipment_types: list[str] | None = None,
    per_class: int = 20,
    seed: int = 0,
    image_size: int = 64,
    missing_rate: float = 0.0,
    taxonomy: dict[str, list[str]] | None = None,
    plant: PlantDef = DEMO_PLANT,
    severity: tuple[float, float] = (0.5, 1.5),
) -> list[Incident]:
    """``per_class`` incidents for every class of every equipment type (default: all of the taxonomy).

    ``missing_rate``: each modality of each incident is dropped with this probability (the app
    meets incidents without an image or without logs). Incidents come grouped by type and class;
    shuffle before splitting by position.
    """
    taxonomy = taxonomy or DEFAULT_TAXONOMY
    types = equipment_types or list(taxonomy)
    rng = np.random.default_rng(seed)
    incidents = []
    for equipment_type in types:
        units = [e for e in plant.equipment if e.equipment_type == equipment_type]
        if not units:
            raise ValueError(f"plant {plant.site_code} has no equipment of type {equipment_type!r}")
        for label in taxonomy[equipment_type]:
            for _ in range(per_class):
                unit = units[int(rng.integers(len(units)))]
                incident = simulate_incident(
                    plant, unit.tag, label, seed=int(rng.integers(2**31)), image_size=image_size, severity=severity
                )
                incidents.append(drop_modalities(incident, missing_rate, rng) if missing_rate > 0 else incident)
    return incidents


def simulate_incident(
    plant: PlantDef, tag: str, label: str, *, seed: int, image_size: int = 64, severity: tuple[float, float] = (0.5, 1.5)
) -> Incident:
    rng = np.random.default_rng(seed)
    unit = plant.get(tag)
    start = EPOCH + timedelta(days=int(rng.integers(60)), seconds=int(rng.integers(86_400)))
    fault_start = start + BASELINE + timedelta(seconds=int(rng.integers(0, 600)))
    alarm = fault_start + timedelta(seconds=int(rng.integers(45 * 60, 90 * 60)))
    faults = []
    if label != NORMAL:
        measures = [s.measure for s in unit.sensors if s.measure != "SPEED"]
        sensor = str(rng.choice(measures)) if label in SENSOR_FAULTS else None
        faults = [ScheduledFault(tag, label, fault_start, fault_start + timedelta(hours=2),
                                 severity=float(rng.uniform(*severity)), sensor=sensor)]
    simulator = PlantSimulator(plant, seed=int(rng.integers(2**31)), faults=faults)
    frames, records = simulator.sample_frames(start, alarm, equipment=[tag])
    window_start = alarm - WINDOW
    sensors = frames[tag]
    sensors = sensors[sensors.index >= window_start]
    ordered = sorted(records, key=lambda r: r.ts)
    events = events_from_messages([(r.ts, r.level, r.message) for r in ordered])
    window_logs = [e for e in events if e.ts >= window_start]
    baseline_logs = [e for e in events if e.ts < fault_start]
    image = render_inspection_image(unit, alarm, faults, size=image_size, seed=seed)
    return Incident(
        equipment_type=unit.equipment_type, sensors=sensors, logs=window_logs, baseline_logs=baseline_logs,
        image=image, image_ref=f"sim:{tag}:{alarm:%Y%m%dT%H%M%S}", label=label, equipment=tag,
        description=unit.name,
    )


def drop_modalities(incident: Incident, rate: float, rng: np.random.Generator) -> Incident:
    """The incident with each modality removed with probability ``rate`` (independently)."""
    from dataclasses import replace

    keep_sensors, keep_logs, keep_image = rng.random(3) >= rate
    return replace(
        incident,
        sensors=incident.sensors if keep_sensors else None,
        logs=incident.logs if keep_logs else (),
        baseline_logs=incident.baseline_logs if keep_logs else (),
        image=incident.image if keep_image else None,
        image_ref=incident.image_ref if keep_image else None,
    )
