"""Health indicator per equipment, trended over time and stored as rows (``HealthPoint``).

Readings come through the readings store boundary (``phm.telemetry.store.get_store``) as
per-step means from its roll-ups (``bucket_sums``: whole hours from the hour tier), so a run of
months at 1 Hz costs a few thousand roll-up rows, not millions of raw ones. The indicator is
``models.health.HealthIndicator`` fitted on the first ``PHM_HEALTH_BASELINE_STEPS`` steps of the
equipment's current run (the run starts after the last work order that ``ends_run``): each
machine is compared with itself when it was last as good as new, which needs no failure history.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from django.db import transaction
from django.utils import timezone

from phm.assets.models import Equipment, Sensor, WorkOrder
from phm.condition.models import HealthPoint
from phm.telemetry.fields import datetime_to_us, us_to_datetime
from phm.telemetry.store import get_store

#: How far back a run with no repair on record is looked for its first reading.
MAX_RUN_LOOKBACK = timedelta(days=3650)


@dataclass(frozen=True)
class HealthSettings:
    step_s: float = 3600.0
    baseline_steps: int = 48

    @classmethod
    def from_env(cls) -> HealthSettings:
        return cls(step_s=float(os.environ.get("PHM_HEALTH_STEP_S", 3600.0)),
                   baseline_steps=int(os.environ.get("PHM_HEALTH_BASELINE_STEPS", 48)))


def run_start(*, equipment: Equipment, before: datetime, enabled_only: bool = True) -> datetime | None:
    """When the equipment's current run began: the end of the newest work order before ``before``
    that ``ends_run`` (its failure, else its closing), or its first reading when none did."""
    last = (WorkOrder.objects.filter(equipment=equipment, ends_run=True, opened_at__lt=before)
            .order_by("-opened_at").first())
    if last is not None:
        return last.closed_at or last.failed_at or last.opened_at
    sensors = list(equipment.sensors.filter(enabled=True) if enabled_only else equipment.sensors.all())
    first = get_store().first_ts([s.id for s in sensors], datetime_to_us(before - MAX_RUN_LOOKBACK), datetime_to_us(before)) if sensors else None
    return None if first is None else us_to_datetime(first)


def step_frame(*, sensors: list[Sensor], columns: list[str], start: datetime, end: datetime, step_s: float) -> pd.DataFrame:
    """Mean of each sensor per step in [start, end), steps aligned to ``start``; one column per
    sensor named by ``columns``. A step where a sensor has no reading carries its last value
    forward; steps before any sensor has reported are dropped (a sensor that has not reported
    yet stays NaN: the caller decides whether to drop the sensor or the step)."""
    store = get_store()
    step_us = int(round(step_s * 1_000_000))
    origin_us, end_us = datetime_to_us(start), datetime_to_us(end)
    n_steps = max(0, (end_us - origin_us) // step_us)
    if n_steps == 0:
        return pd.DataFrame(columns=columns, dtype=float)
    end_us = origin_us + n_steps * step_us  # whole steps only: a partial last step is still filling
    data = {}
    for sensor, column in zip(sensors, columns):
        sums = store.bucket_sums(sensor.id, origin_us, end_us, step_us, origin_us)
        data[column] = pd.Series({bucket: total / count for bucket, (total, _, _, count) in sums.items() if count}, dtype=float)
    frame = pd.DataFrame(data).reindex(range(n_steps)).sort_index().ffill()
    frame = frame[frame.notna().any(axis=1)]
    frame.index = pd.to_datetime(origin_us + frame.index.to_numpy(np.int64) * step_us, unit="us", utc=True)
    return frame


@dataclass(frozen=True)
class HealthUpdate:
    points: int
    run_start: datetime | None
    reason: str = ""


@transaction.atomic
def update_health(*, equipment: Equipment, now: datetime | None = None, settings: HealthSettings | None = None) -> HealthUpdate:
    """Recompute the health indicator of the equipment's current run and store it as rows (the
    run's points are replaced: the smoothing and baseline make each point depend on the run)."""
    from models.health import HealthIndicator

    settings = settings or HealthSettings.from_env()
    now = now or timezone.now()
    sensors = list(equipment.sensors.filter(enabled=True).order_by("tag"))
    if not sensors:
        return HealthUpdate(0, None, "no enabled sensors")
    start = run_start(equipment=equipment, before=now)
    if start is None:
        return HealthUpdate(0, None, "no readings")
    frame = step_frame(sensors=sensors, columns=[s.tag for s in sensors], start=start, end=now, step_s=settings.step_s)
    # A sensor silent for the whole run says nothing about health; the others still do.
    frame = frame.dropna(axis=1, how="all").dropna()
    if len(frame) < settings.baseline_steps:
        return HealthUpdate(0, start, f"{len(frame)} steps in this run; the baseline needs {settings.baseline_steps}")
    try:
        indicator = HealthIndicator().fit(frame.iloc[: settings.baseline_steps])
    except ValueError as exc:  # e.g. every sensor constant over the baseline
        return HealthUpdate(0, start, str(exc))
    distance = indicator.distance(frame)
    health = indicator.transform(frame)
    HealthPoint.objects.filter(equipment=equipment, ts__gte=start).delete()
    HealthPoint.objects.bulk_create([
        HealthPoint(equipment=equipment, ts=ts.to_pydatetime(), health=float(h), distance=float(d), run_start=start)
        for ts, h, d in zip(frame.index, health.to_numpy(), distance.to_numpy())
    ], batch_size=2000)
    return HealthUpdate(len(frame), start)


def health_series(*, equipment: Equipment, since: datetime | None = None) -> list[HealthPoint]:
    rows = HealthPoint.objects.filter(equipment=equipment)
    if since is not None:
        rows = rows.filter(ts__gte=since)
    return list(rows.order_by("ts"))
