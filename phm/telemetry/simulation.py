"""Running the demo plant simulator into the database, with the fault schedule kept in
``FaultInjection`` rows: the schedule is data, so a fault injected from another process (or the
admin) is picked up by a running stream, and detectors can be scored against it."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np

from django.utils import timezone

from connectors.simulator import DEMO_PLANT, FAULT_KINDS, PlantDef, PlantSimulator, ScheduledFault, default_sensor_for
from phm.assets.models import Equipment, Sensor
from phm.telemetry import selectors
from phm.telemetry.models import FaultInjection
from phm.telemetry.sink import DatabaseSink, close_stale_connection

log = logging.getLogger(__name__)

def inject_fault(
    *, equipment_tag: str, fault: str, start: datetime, duration: timedelta, severity: float = 1.0,
    sensor_measure: str | None = None, source: str = "manual", plant: PlantDef = DEMO_PLANT, ramp_s: float | None = None,
) -> FaultInjection:
    """Record a fault for the simulator to play (and for detectors to be scored against)."""
    definition = plant.get(equipment_tag)
    if fault not in definition.faults:
        raise ValueError(f"{equipment_tag} ({definition.equipment_type}) cannot have {fault!r}; it supports: {', '.join(definition.faults)}")
    measure = sensor_measure or default_sensor_for(fault, definition)
    ScheduledFault(equipment_tag, fault, start, start + duration, severity, measure, ramp_s)  # validates
    return FaultInjection.objects.create(
        equipment=Equipment.objects.get(tag=equipment_tag),
        fault=fault,
        start=start,
        end=start + duration,
        severity=severity,
        sensor=definition.sensor_tag(measure) if measure else "",
        source=source,
        ramp_s=ramp_s,
    )

def scheduled_faults(*, plant: PlantDef = DEMO_PLANT) -> list[ScheduledFault]:
    tags = {e.tag for e in plant.equipment}
    faults = []
    for row in FaultInjection.objects.select_related("equipment").filter(equipment__tag__in=tags, fault__in=FAULT_KINDS):
        measure = row.sensor.split(".", 1)[1] if "." in row.sensor else None
        faults.append(ScheduledFault(row.equipment.tag, row.fault, row.start, row.end, row.severity, measure, row.ramp_s))
    return faults

def backfill(*, start: datetime, end: datetime, seed: int = 7, plant: PlantDef = DEMO_PLANT) -> tuple[int, int]:
    simulator = PlantSimulator(plant, seed=seed, faults=scheduled_faults(plant=plant))
    return simulator.run(DatabaseSink(channel="simulator"), start, end, chunk_s=600)


def backfill_bulk(
    *, start: datetime, end: datetime, seed: int = 7, plant: PlantDef = DEMO_PLANT, equipment: list[str] | None = None,
    chunk: timedelta = timedelta(hours=1), using: str = "default",
) -> tuple[int, int]:
    """Days of simulated history fast: the simulator's vectorised frames (no ``Reading`` object per
    value) written chunk by chunk through the readings store (readings, roll-ups and latest values
    in one transaction), log lines through the ingestion services. The same signals as :func:`backfill` in
    distribution (each chunk draws its own noise), for trials and benchmarks over many days."""
    from django.db import transaction

    from phm.telemetry.services import ingest_logs
    from phm.telemetry.store import get_store

    ids = dict(Sensor.objects.using(using).filter(equipment__tag__in=[e.tag for e in plant.equipment]).values_list("tag", "pk"))
    simulator = PlantSimulator(plant, seed=seed, faults=scheduled_faults(plant=plant))
    store = get_store(using)
    readings = logs = 0
    cursor = start
    while cursor < end:
        chunk_end = min(end, cursor + chunk)
        frames, chunk_logs = simulator.sample_frames(cursor, chunk_end, equipment=equipment)
        parts = []
        for tag, frame in frames.items():
            times = frame.index.asi8 // 1000 if frame.index.unit == "ns" else frame.index.as_unit("us").asi8
            for measure in frame.columns:
                sensor_id = ids[plant.get(tag).sensor_tag(measure)]
                values = frame[measure].to_numpy()
                keep = np.isfinite(values)
                block = np.empty((int(keep.sum()), 4), dtype=object)
                block[:, 0], block[:, 1], block[:, 2], block[:, 3] = sensor_id, times[keep].astype(np.int64), values[keep], 192
                parts.append(block)
        rows = [tuple(row) for part in parts for row in part.tolist()]
        with transaction.atomic(using=using):  # the store writes readings, roll-ups and latest values
            readings += store.write(rows)
        if chunk_logs:
            logs += ingest_logs(records=chunk_logs, channel="simulator", using=using).accepted
        cursor = chunk_end
    return readings, logs


def schedule_demo_history(*, now: datetime, hours: float, plant: PlantDef = DEMO_PLANT) -> list[FaultInjection]:
    """A few faults inside the backfilled history; the first third stays clean for training, and the
    last fault ends a tenth of the span before ``now`` (2.4 h of a day): a bearing still cooling
    from a repair an hour earlier opened the live demo with an alarm that later faults continued."""
    if FaultInjection.objects.filter(source="simulator").exists():
        return []
    span = timedelta(hours=hours)
    begin = now - span
    plan = [
        ("P-201", "cavitation", 0.40, 0.12),
        ("CH-501", "condenser_fouling", 0.55, 0.15),
        ("M-101", "stuck_sensor", 0.75, 0.06),
        ("P-101", "bearing_wear", 0.78, 0.12),
    ]
    return [
        inject_fault(equipment_tag=tag, fault=kind, start=begin + span * at, duration=span * length, source="simulator", plant=plant)
        for tag, kind, at, length in plan
    ]

def _resume_point(*, plant: PlantDef, now: datetime, max_gap: timedelta = timedelta(hours=1)) -> datetime:
    """Continue right after the newest simulated value (no gap after a backfill or a restart),
    unless that is older than ``max_gap``: then start now rather than replaying a long outage."""
    tags = [e.sensor_tag(s.measure) for e in plant.equipment for s in e.sensors]
    newest = selectors.newest_ts(sensors=list(Sensor.objects.filter(tag__in=tags)))
    if newest is None or now - newest > max_gap:
        return now
    return newest + timedelta(seconds=1)

def stream(
    *, seed: int = 7, push_every_s: float = 5.0, auto_fault_every_s: float | None = None,
    stop: Callable[[], bool] = lambda: False, plant: PlantDef = DEMO_PLANT, capture_every_s: int | None = None,
) -> None:
    """Generate data in real time until ``stop()``; refresh the fault schedule every push. With
    ``capture_every_s``, vibration captures too (phm.condition.demo), aligned to that period."""
    simulator = PlantSimulator(plant, seed=seed)
    sink = DatabaseSink(channel="simulator")
    cursor = _resume_point(plant=plant, now=timezone.now().replace(microsecond=0))
    capture_cursor = cursor
    next_auto_fault = time.monotonic() + (auto_fault_every_s or 0)
    rng = random.Random(seed)
    while not stop():
        time.sleep(max(0.0, push_every_s - (timezone.now() - cursor).total_seconds()))
        close_stale_connection()
        now = timezone.now().replace(microsecond=0)
        if auto_fault_every_s and time.monotonic() >= next_auto_fault:
            item = rng.choice(plant.equipment)
            kind = rng.choice(item.faults)
            inject_fault(equipment_tag=item.tag, fault=kind, start=now, duration=timedelta(minutes=rng.uniform(10, 30)), source="simulator", plant=plant)
            log.info("simulator: injected %s on %s", kind, item.tag)
            next_auto_fault = time.monotonic() + auto_fault_every_s
        simulator.set_faults(scheduled_faults(plant=plant))
        try:
            simulator.run(sink, cursor, now, chunk_s=int(push_every_s) + 1)
        except Exception:  # keep streaming: a database hiccup must not end the demo
            log.exception("simulator: push failed; retrying from %s", cursor.isoformat())
            continue
        cursor = now
        if capture_every_s:
            capture_cursor = _stream_captures(start=capture_cursor, end=now, every_s=capture_every_s, seed=seed, plant=plant)


def _stream_captures(*, start: datetime, end: datetime, every_s: int, seed: int, plant: PlantDef) -> datetime:
    """The vibration captures due since ``start``; returns where the next call starts."""
    from phm.condition.demo import simulate_captures

    try:
        simulate_captures(start=start, end=end, faults=scheduled_faults(plant=plant), every_s=every_s, seed=seed, plant=plant)
    except Exception:  # keep streaming readings: a capture problem must not end the demo
        log.exception("simulator: vibration captures failed; retrying from %s", start.isoformat())
        return start
    return end
