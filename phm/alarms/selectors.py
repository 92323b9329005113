"""Read queries over alarms: filtered lists for SCADA pull clients and alarm-flood statistics."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import QuerySet

from phm.alarms.models import Alarm, AlarmState, AlarmTransition

#: ISA-18.2: more than 10 new alarms in 10 minutes for one operator is a flood.
FLOOD_WINDOW = timedelta(minutes=10)
FLOOD_LIMIT = 10


def alarms(*, states: list[str] | None = None, severity_min: int | None = None, since: datetime | None = None,
           equipment_tag: str | None = None, open_only: bool = False, using: str = "default") -> QuerySet[Alarm]:
    """Alarms, newest first. ``since`` keeps alarms changed at or after that time (a poller's cursor)."""
    query = Alarm.objects.using(using).select_related("equipment__line__area__site", "acknowledged_by")
    if states:
        query = query.filter(state__in=states)
    if open_only:
        query = query.exclude(state=AlarmState.NORMAL)
    if severity_min is not None:
        query = query.filter(severity__gte=severity_min)
    if since is not None:
        query = query.filter(updated_at__gte=since)
    if equipment_tag:
        query = query.filter(equipment__tag=equipment_tag)
    return query


def journal(*, alarm: Alarm, using: str = "default") -> QuerySet[AlarmTransition]:
    return AlarmTransition.objects.using(using).filter(alarm=alarm).select_related("user").order_by("id")


@dataclass(slots=True)
class FloodStatistics:
    """Annunciated alarms per operator position (an area's console) per 10-minute window."""

    start: datetime
    end: datetime
    windows: int
    per_operator: dict[str, list[int]] = field(default_factory=dict)
    average_per_10min: dict[str, float] = field(default_factory=dict)
    peak_per_10min: dict[str, int] = field(default_factory=dict)
    percent_time_in_flood: dict[str, float] = field(default_factory=dict)
    top_sources: list[tuple[str, int]] = field(default_factory=list)


def flood_statistics(*, start: datetime, end: datetime, using: str = "default") -> FloodStatistics:
    """Count alarm annunciations (transitions into active-unacknowledged) per operator position
    (the area, ``site/area``) per 10-minute window; ISA-18.2 calls > 10 per window a flood."""
    if end <= start:
        raise ValueError("end must be after start")
    n_windows = max(1, int((end - start) / FLOOD_WINDOW + 0.999999))
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * n_windows)
    sources: Counter[str] = Counter()
    rows = (
        AlarmTransition.objects.using(using)
        .filter(to_state=AlarmState.ACTIVE_UNACK, at__gte=start, at__lt=end)
        .values_list("at", "alarm__equipment__line__area__site__code", "alarm__equipment__line__area__code", "alarm__equipment__tag", "alarm__source")
    )
    for at, site, area, tag, source in rows:
        counts[f"{site}/{area}"][int((at - start) / FLOOD_WINDOW)] += 1
        sources[f"{tag}/{source}"] += 1
    stats = FloodStatistics(start=start, end=end, windows=n_windows, per_operator=dict(counts), top_sources=sources.most_common(10))
    for operator, series in counts.items():
        stats.average_per_10min[operator] = sum(series) / n_windows
        stats.peak_per_10min[operator] = max(series)
        stats.percent_time_in_flood[operator] = 100.0 * sum(1 for c in series if c > FLOOD_LIMIT) / n_windows
    return stats
