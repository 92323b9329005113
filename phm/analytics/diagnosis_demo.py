"""Demo incidents on the demo plant, for the ``phm_diagnose`` command and ``bench/diagnose.py``:
play an injected fault of the simulator into the database for one equipment and raise an alarm at
its end, so the diagnosis pipeline runs on data that went through storage like any other.

With the live simulator streaming (``up.sh``), a fault is injected now instead and the detector
raises the alarm itself; :func:`wait_for_diagnosis` waits for the stored diagnosis.
"""

from __future__ import annotations

import dataclasses
import io
import time
from datetime import datetime, timedelta

from django.db.models import Max
from django.utils import timezone

from connectors.records import ImageRecord
from connectors.simulator import DEMO_PLANT, PlantDef, PlantSimulator, ScheduledFault, default_sensor_for, render_inspection_image
from phm.alarms.models import Alarm
from phm.alarms.services import AlarmPolicy, Sample, evaluate_scores
from phm.analytics.models import Diagnosis, DiagnosisStatus, DiagnosisTrigger
from phm.assets.models import Equipment
from phm.telemetry import selectors
from phm.telemetry.models import FaultInjection
from phm.telemetry.sink import DatabaseSink

#: A stream whose newest reading is younger than this is live: faults go to the running simulator.
LIVE_WITHIN = timedelta(seconds=120)


class DemoError(Exception):
    """The demo incident cannot be made as asked; the message says why."""


def newest_reading(equipment: Equipment, *, using: str = "default") -> datetime | None:
    return selectors.newest_ts(sensors=list(equipment.sensors.using(using).all()), using=using)


def first_reading_between(equipment: Equipment, *, start: datetime, end: datetime, using: str = "default") -> datetime | None:
    return selectors.first_reading_between(sensors=list(equipment.sensors.using(using).all()), start=start, end=end, using=using)


def free_slot_end(equipment: Equipment, *, history: timedelta, latest: datetime, using: str = "default") -> datetime:
    """The latest end at or before ``latest`` whose ``history`` before it holds no reading of the
    equipment: a second demo fault of the same unit is played just before the first one."""
    end = latest
    for _ in range(1000):
        first = first_reading_between(equipment, start=end - history, end=end, using=using)
        if first is None:
            return end
        end = first - timedelta(seconds=1)
    raise DemoError(f"no free {history} of {equipment.tag} before {latest:%Y-%m-%d %H:%M} UTC")


def is_live(equipment: Equipment, *, now: datetime | None = None) -> bool:
    """Readings of the equipment keep arriving: the newest is recent and is not the end of a
    fault this module played (that data stops at its alarm)."""
    newest = newest_reading(equipment)
    if newest is None or (now or timezone.now()) - newest >= LIVE_WITHIN:
        return False
    played_until = FaultInjection.objects.filter(equipment=equipment, source="diagnose-demo").aggregate(t=Max("end"))["t"]
    return played_until is None or newest > played_until


def play_fault(
    *, equipment_tag: str, fault: str, end: datetime, fault_minutes: float = 60.0, history_minutes: float = 120.0, severity: float = 1.0,
    sensor_measure: str | None = None, seed: int = 7, image: bool = True, plant: PlantDef = DEMO_PLANT, using: str = "default",
) -> FaultInjection:
    """Record ``fault`` on the equipment for the last ``fault_minutes`` before ``end`` and simulate that
    equipment's readings and log lines over the last ``history_minutes`` (healthy before the fault:
    the log baseline) into the database through the same ingestion as live data, plus a thermal
    inspection image taken at ``end`` when ``image``. The defaults mirror the diagnoser's training
    incidents (alarm 45-90 min into the fault, an hour of normal operation before it)."""
    definition = plant.get(equipment_tag)
    if fault not in definition.faults:
        raise DemoError(f"{equipment_tag} ({definition.equipment_type}) cannot have {fault!r}; it supports: {', '.join(definition.faults)}")
    equipment = Equipment.objects.using(using).get(tag=equipment_tag)
    start = end - timedelta(minutes=history_minutes)
    first = first_reading_between(equipment, start=start, end=end, using=using)
    if first is not None:
        raise DemoError(f"{equipment_tag} has readings from {first:%Y-%m-%d %H:%M:%S} UTC inside the {history_minutes:g} min to play; "
                        "play before them (free_slot_end) or, with the live simulator running, inject the fault live")
    fault_start = end - timedelta(minutes=fault_minutes)
    measure = sensor_measure or default_sensor_for(fault, definition)
    injection = FaultInjection.objects.using(using).create(
        equipment=equipment, fault=fault, start=fault_start, end=end, severity=severity,
        sensor=definition.sensor_tag(measure) if measure else "", source="diagnose-demo",
    )
    # The simulated fault runs on past the alarm (the simulator repairs a fault at its end, and ramps
    # it in over 60 % of its length): at the alarm it is at about 3/4 of its severity, as in the
    # training incidents. The recorded injection ends at the alarm, so a live simulator started
    # later does not play the rest.
    scheduled = [ScheduledFault(equipment_tag, fault, fault_start, fault_start + 2 * (end - fault_start), severity, measure)]
    single = dataclasses.replace(plant, equipment=(definition,))
    sink = DatabaseSink(channel="diagnose-demo", using=using)
    PlantSimulator(single, seed=seed, faults=scheduled).run(sink, start, end + timedelta(seconds=1), chunk_s=900)
    if image:
        sink.write_images([inspection_image(definition, end, scheduled, seed=seed)])
    return injection


def inspection_image(definition, ts: datetime, faults, *, seed: int) -> ImageRecord:
    """The simulator's thermal image of the unit at ``ts`` as the PNG an inspector would upload."""
    from PIL import Image

    pixels = render_inspection_image(definition, ts, faults, size=64, seed=seed)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return ImageRecord(source=definition.tag, ts=ts, content=buffer.getvalue(), media_type="image/png",
                       metadata={"camera": "simulated thermal", "source": "diagnose-demo"})


def raise_alarm(*, injection: FaultInjection, at: datetime | None = None, using: str = "default") -> Alarm:
    """An alarm at the end of the played fault, from its own point (``demo:<fault>:<injection id>``),
    through the alarm services, so the raise sends the diagnosis task like a detector's would."""
    at = at or injection.end
    source = f"demo:{injection.fault}:{injection.pk}"
    evaluate_scores(
        equipment=injection.equipment, source=source, samples=[Sample(at, 2.0)], policy=AlarmPolicy(threshold=1.0),
        label=f"injected {injection.fault} (demo)", using=using,
    )
    return Alarm.objects.using(using).select_related("equipment").get(equipment=injection.equipment, source=source)


def inject_live(*, equipment_tag: str, fault: str, minutes: float, severity: float = 1.0) -> FaultInjection:
    from phm.telemetry.simulation import inject_fault

    try:
        return inject_fault(equipment_tag=equipment_tag, fault=fault, start=timezone.now(), duration=timedelta(minutes=minutes), severity=severity)
    except ValueError as exc:
        raise DemoError(str(exc)) from None


def wait_for_diagnosis(*, equipment: Equipment, since: datetime, timeout_s: float, poll_s: float = 1.0) -> Diagnosis | None:
    """The first finished diagnosis of an alarm on ``equipment`` raised at or after ``since``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = (
            Diagnosis.objects.filter(equipment=equipment, alarm__raised_at__gte=since, trigger=DiagnosisTrigger.RAISE)
            .exclude(status=DiagnosisStatus.RUNNING)
            .order_by("created_at")
            .first()
        )
        if row is not None:
            return row
        time.sleep(poll_s)
    return None
