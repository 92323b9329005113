"""Read models for the operator pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from phm.assets.models import Equipment
from phm.telemetry.models import LogEvent


@dataclass(frozen=True)
class EquipmentHealth:
    sensors: int
    stale: list[str]
    last_update: datetime | None


def equipment_health(*, now: datetime, stale_factor: float = 5.0) -> dict[int, EquipmentHealth]:
    """Per equipment: sensor count, stale sensor tags (no value for stale_factor × sampling period)."""
    health: dict[int, EquipmentHealth] = {}
    for equipment in Equipment.objects.prefetch_related("sensors__latest"):
        stale, last = [], None
        sensors = [s for s in equipment.sensors.all() if s.enabled]
        for sensor in sensors:
            latest = getattr(sensor, "latest", None)
            if latest is None or now - latest.ts > timedelta(seconds=stale_factor * max(sensor.sampling_period_s, 1)):
                stale.append(sensor.tag)
            if latest is not None and (last is None or latest.ts > last):
                last = latest.ts
        health[equipment.pk] = EquipmentHealth(len(sensors), stale, last)
    return health


def recent_logs(*, equipment: Equipment, limit: int = 50) -> list[LogEvent]:
    return list(LogEvent.objects.filter(source=equipment.tag).order_by("-ts")[:limit])
