"""Vibration captures for the demo plant: measurement points with bearing geometry on P-101, P-201
and M-101, and a capture per point every ``every_s`` seconds (1 s at 25.6 kHz, 100 kB), simulated
by :mod:`connectors.vibration_sim` from the same fault schedule (``FaultInjection`` rows) that drives
the readings: during ``bearing_wear`` the envelope spectrum shows growing BPFO (pumps) or BPFI
(motor) lines with +-1x sidebands, ``misalignment`` raises 2x, ``cavitation`` adds broadband noise.

Capture times are aligned to multiples of ``every_s``, and ingestion is idempotent on (point,
time), so a backfill and the live stream (or a restart) never store a capture twice.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from connectors.simulator import DEMO_PLANT, PlantDef, ScheduledFault
from connectors.vibration_sim import CaptureSettings, simulate_capture
from connectors.waveforms import WaveformRecord
from models.vibration import BearingGeometry
from phm.assets.models import Equipment, MeasurementPoint
from phm.condition.captures import ingest_captures
from phm.condition.models import CaptureSource

#: One capture per point this often (seconds): 6 points x 100 kB every 10 min is about 86 MB a day.
DEFAULT_EVERY_S = 600


@dataclass(frozen=True)
class DemoPoint:
    equipment: str
    name: str
    description: str
    bearing: str
    pitch_mm: float
    ball_mm: float
    balls: int
    defect: str  # the race that wears on this machine in the demo
    wear_share: float  # how much of the machine's bearing wear this point sees (the other end sees less)


#: Deep-groove ball bearings from catalogue dimensions (pitch = mean of bore and outside diameter;
#: ball diameters are the usual ones for these series, close enough for defect frequencies).
DEMO_POINTS = (
    DemoPoint("P-101", "DE", "Pump drive-end bearing, horizontal", "6309", 72.5, 17.462, 8, "BPFO", 1.0),
    DemoPoint("P-101", "NDE", "Pump non-drive-end bearing, horizontal", "6307", 57.5, 13.494, 8, "BPFO", 0.3),
    DemoPoint("P-201", "DE", "Pump drive-end bearing, horizontal", "6309", 72.5, 17.462, 8, "BPFO", 1.0),
    DemoPoint("P-201", "NDE", "Pump non-drive-end bearing, horizontal", "6307", 57.5, 13.494, 8, "BPFO", 0.3),
    DemoPoint("M-101", "DE", "Motor drive-end bearing, horizontal", "6312", 95.0, 22.225, 8, "BPFI", 1.0),
    DemoPoint("M-101", "NDE", "Motor non-drive-end bearing, horizontal", "6310", 80.0, 19.05, 8, "BPFI", 0.3),
)


def ensure_demo_points(*, plant: PlantDef = DEMO_PLANT) -> int:
    """Create the demo measurement points (and the machines' nominal speed); returns how many were new."""
    created = 0
    for point in DEMO_POINTS:
        equipment = Equipment.objects.filter(tag=point.equipment).first()
        if equipment is None:
            continue
        if equipment.running_speed_rpm is None:
            equipment.running_speed_rpm = plant.get(point.equipment).rated_speed_rpm
            equipment.save(update_fields=["running_speed_rpm"])
        _, new = MeasurementPoint.objects.get_or_create(
            equipment=equipment, name=point.name,
            defaults={"description": point.description, "axis": "horizontal", "bearing_designation": point.bearing,
                      "pitch_diameter_mm": point.pitch_mm, "ball_diameter_mm": point.ball_mm, "rolling_elements": point.balls},
        )
        created += new
    return created


def _level(faults: list[ScheduledFault], tag: str, kind: str, t_s: float) -> float:
    levels = [float(f.profile(np.array([t_s]))[0]) for f in faults if f.equipment == tag and f.kind == kind]
    return max(levels, default=0.0)


def _speed_rpm(plant: PlantDef, tag: str, t_s: float) -> float:
    # The simulator's daily demand cycle drives the pumps' speed (and the motor's, on the same shaft).
    hours = (t_s / 3600.0) % 24
    demand = 0.85 + 0.08 * np.sin(2 * np.pi * (hours - 6) / 24) + 0.05 * np.sin(4 * np.pi * (hours - 7) / 24)
    return float(plant.get(tag).rated_speed_rpm * np.clip(demand, 0.6, 1.05))


def capture_times(*, start: datetime, end: datetime, every_s: int = DEFAULT_EVERY_S) -> list[datetime]:
    """Multiples of ``every_s`` (epoch-aligned) in [start, end)."""
    first = -(-int(start.timestamp()) // every_s) * every_s
    return [datetime.fromtimestamp(t, tz=UTC) for t in range(first, int(end.timestamp()), every_s) if t < end.timestamp()]


def simulate_captures(*, start: datetime, end: datetime, faults: list[ScheduledFault], every_s: int = DEFAULT_EVERY_S, seed: int = 7,
                      plant: PlantDef = DEMO_PLANT, settings: CaptureSettings = CaptureSettings()) -> tuple[int, int]:
    """Simulate and ingest the captures due in [start, end); returns (stored, duplicates)."""
    ensure_demo_points(plant=plant)
    stored = duplicates = 0
    for moment in capture_times(start=start, end=end, every_s=every_s):
        t_s = moment.timestamp()
        records = []
        for point in DEMO_POINTS:
            speed = _speed_rpm(plant, point.equipment, t_s)
            orders = BearingGeometry(point.pitch_mm, point.ball_mm, point.balls).orders()
            # Seeded by point and time: a re-run (backfill then stream) draws the same capture.
            rng = np.random.default_rng([seed, zlib.crc32(f"{point.equipment}/{point.name}".encode()), int(t_s)])
            samples = simulate_capture(
                rng, speed_rpm=speed, defect_orders=orders, defect=point.defect, settings=settings,
                bearing_wear=point.wear_share * _level(faults, point.equipment, "bearing_wear", t_s),
                misalignment=_level(faults, point.equipment, "misalignment", t_s),
                cavitation=_level(faults, point.equipment, "cavitation", t_s),
            )
            records.append(WaveformRecord(equipment=point.equipment, point=point.name, captured_at=moment, sample_rate_hz=settings.rate_hz,
                                          samples=samples, unit="g", speed_rpm=round(speed, 1), origin="simulator"))
        result = ingest_captures(records=records, source=CaptureSource.SIMULATOR, channel="simulator")
        stored += result.accepted
        duplicates += result.duplicate
    return stored, duplicates
