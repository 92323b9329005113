"""Live state of one equipment as citable passages: open alarms, the latest diagnosis, sensor
statistics over a time window and recent warning/error log events.

Alarms (``phm.alarms``) and diagnoses (``phm.analytics``) are read through ``apps.get_model`` so
the assistant keeps working while those apps are absent or have no such model yet: a missing
model simply contributes no passage. Alarm rows are rendered field by field rather than through a
fixed schema for the same reason; a diagnosis is rendered from its stored result (fault,
explanation, evidence, cited actions), which follows ``models.diagnosis.types``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.apps import apps
from django.db import DatabaseError, models
from django.utils import timezone

from phm.assets.models import Equipment, Sensor
from phm.telemetry import selectors
from phm.telemetry.fields import us_to_datetime
from phm.telemetry.models import LogEvent

#: Words that make a question about the present state rather than about documentation.
LIVE_INTENT = re.compile(
    r"\b(why|alarm\w*|alert\w*|now|current(ly)?|today|tonight|last night|yesterday|this morning|happen\w*|status|"
    r"trend\w*|latest|recent(ly)?|running|tripp?\w*|going on|wrong|state)\b",
    re.IGNORECASE,
)
OPEN_ALARM_STATES = ("active_unack", "active_ack", "rtn_unack", "shelved", "unack", "acked")
MAX_ALARMS = 5
MAX_LOG_EVENTS = 8


@dataclass(frozen=True)
class LivePassage:
    document: str  # e.g. "live: alarms of P-101"
    location: str  # e.g. "as of 2026-03-01 06:00 UTC"
    text: str


def has_live_intent(question: str) -> bool:
    return bool(LIVE_INTENT.search(question))


# --- which equipment -------------------------------------------------------------------------------


def resolve_equipment(value: str, *, using: str = "default") -> Equipment | None:
    """An equipment from its tag ("P-101"), its path ("riverside/pumping/ps1/P-101") or one of its
    sensor tags ("P-101.VIB"); None when nothing matches."""
    value = value.strip().strip("/")
    if not value:
        return None
    queryset = Equipment.objects.using(using).select_related("line__area__site")
    tag = value.rsplit("/", 1)[-1]
    equipment = queryset.filter(tag__iexact=tag).first()
    if equipment is not None and ("/" not in value or equipment.path.lower() == value.lower()):
        return equipment
    sensor = Sensor.objects.using(using).select_related("equipment__line__area__site").filter(tag__iexact=value).first()
    return sensor.equipment if sensor else None


def mentioned_equipment(question: str, *, using: str = "default") -> Equipment | None:
    """The equipment a question names: by tag (with or without the hyphen: "P-101", "p101"), else by
    its full name ("cooling tower fan"), else by type when the plant has exactly one of that type
    ("the chiller")."""
    lowered = question.lower()
    candidates = list(Equipment.objects.using(using).select_related("line__area__site"))
    for equipment in sorted(candidates, key=lambda e: -len(e.tag)):  # longest first: P-1011 before P-101
        tag = equipment.tag.lower()
        for spelling in {tag, re.sub(r"[^a-z0-9]", "", tag)}:
            if re.search(rf"(?<![a-z0-9]){re.escape(spelling)}(?![0-9])", lowered):
                return equipment
    for equipment in candidates:
        if equipment.name and equipment.name.lower() in lowered:
            return equipment
    by_type: dict[str, list[Equipment]] = {}
    for equipment in candidates:
        by_type.setdefault(equipment.equipment_type, []).append(equipment)
    for equipment_type, members in by_type.items():
        if len(members) == 1 and re.search(rf"\b{re.escape(equipment_type.replace('_', ' '))}\b", lowered):
            return members[0]
    return None


# --- the window a question is about ---------------------------------------------------------------


def question_window(question: str, *, now: datetime, time_zone: str = "UTC") -> tuple[datetime, datetime, str]:
    """(start, end, label): "last night" is 18:00 yesterday to 06:00 today in the plant's time zone,
    "yesterday" the previous calendar day, "today"/"this morning" since local midnight, anything
    else the last 24 hours."""
    zone = ZoneInfo(time_zone or "UTC")
    local_now = now.astimezone(zone)
    midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    lowered = question.lower()
    if "last night" in lowered or "overnight" in lowered or "tonight" in lowered:
        end = midnight + timedelta(hours=6)
        if end > local_now:  # asked before 06:00: the night still running
            end = local_now
        return midnight - timedelta(hours=6), end, "last night (18:00-06:00 local)"
    if "yesterday" in lowered:
        return midnight - timedelta(days=1), midnight, "yesterday"
    if "today" in lowered or "this morning" in lowered:
        return midnight, local_now, "today"
    return now - timedelta(hours=24), now, "the last 24 hours"


def reference_time(equipment: Equipment, *, using: str = "default") -> datetime:
    """'Now' for live data: the newest reading of the equipment when it lags the wall clock (a
    replayed or simulated plant), otherwise the wall clock."""
    latest = selectors.newest_ts(sensors=list(equipment.sensors.using(using).all()), using=using)
    wall = timezone.now()
    return min(latest, wall) if latest else wall


# --- passages --------------------------------------------------------------------------------------


def live_passages(equipment: Equipment, *, question: str, using: str = "default") -> list[LivePassage]:
    now = reference_time(equipment, using=using)
    time_zone = equipment.line.area.site.time_zone
    start, end, label = question_window(question, now=now, time_zone=time_zone)
    stamp = f"as of {now:%Y-%m-%d %H:%M} UTC"
    passages = []
    if alarms := _alarm_lines(equipment, using=using):
        passages.append(LivePassage(f"live: alarms of {equipment.tag}", stamp, f"Alarms of {equipment.tag} ({equipment.name}):\n" + "\n".join(alarms)))
    if diagnosis := _diagnosis_text(equipment, using=using):
        passages.append(LivePassage(f"live: latest diagnosis of {equipment.tag}", stamp, diagnosis))
    if stats := _sensor_statistics(equipment, start=start, end=end, using=using):
        passages.append(
            LivePassage(f"live: sensor statistics of {equipment.tag}", f"{label}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}",
                        f"Sensor statistics of {equipment.tag} ({equipment.name}) over {label}:\n" + "\n".join(stats))
        )
    if events := _log_lines(equipment, start=start, end=end, using=using):
        passages.append(LivePassage(f"live: log events of {equipment.tag}", label, f"Warning and error log events of {equipment.tag} over {label}:\n" + "\n".join(events)))
    return passages


def _optional_model(app_label: str, model_name: str) -> type[models.Model] | None:
    try:
        return apps.get_model(app_label, model_name)
    except LookupError:
        return None


def _has_field(model: type[models.Model], name: str) -> bool:
    return any(f.name == name for f in model._meta.get_fields())


def _alarm_lines(equipment: Equipment, *, using: str) -> list[str]:
    alarm_model = _optional_model("alarms", "Alarm")
    if alarm_model is None or not _has_field(alarm_model, "equipment"):
        return []
    queryset = alarm_model.objects.using(using).filter(equipment=equipment)
    if _has_field(alarm_model, "closed_at"):
        queryset = queryset.filter(closed_at__isnull=True)  # open alarms only: closed ones are history
    order = "-raised_at" if _has_field(alarm_model, "raised_at") else "-pk"
    try:
        return [f"- {_describe(row, skip={'equipment', 'point'})}" for row in queryset.order_by(order)[:MAX_ALARMS]]
    except DatabaseError:  # the app exists but its table is not migrated yet
        return []


def _diagnosis_text(equipment: Equipment, *, using: str) -> str:
    """The equipment's newest finished diagnosis as prose the answer can cite: fault and
    probability, the explanation, contributing sensors, changed log templates, similar cases,
    recommended actions and any engineer verdict."""
    diagnosis_model = _optional_model("analytics", "Diagnosis")
    if diagnosis_model is None or not _has_field(diagnosis_model, "result"):
        return ""
    try:
        row = (diagnosis_model.objects.using(using).filter(equipment=equipment, status="done")
               .select_related("alarm", "model_version").order_by("-created_at", "-id").first())
        verdict = row.feedback.using(using).order_by("-created_at", "-id").first() if row is not None else None
    except DatabaseError:  # the table is not migrated yet
        return ""
    return _render_diagnosis(equipment, row, verdict) if row is not None else ""


def _render_diagnosis(equipment: Equipment, row, verdict) -> str:
    result = row.result or {}
    evidence = result.get("evidence") or {}
    version = f", diagnoser v{row.model_version.version}" if row.model_version_id else ""
    lines = [
        f"Latest diagnosis of {equipment.tag} ({equipment.name}): {row.fault.replace('_', ' ')} with probability {row.probability:.2f} "
        f"(alarm {row.alarm_id} raised {row.alarm.raised_at:%Y-%m-%d %H:%M} UTC, diagnosed {row.created_at:%Y-%m-%d %H:%M} UTC{version})."
    ]
    if explanation := result.get("explanation"):
        lines.append(f"Explanation: {explanation}")
    if sensors := evidence.get("sensors"):
        lines.append("Contributing sensors: " + ", ".join(f"{s['sensor']} {100 * s['share']:.0f}% ({s['direction']})" for s in sensors[:5]) + ".")
    if templates := evidence.get("log_templates"):
        lines.append("Changed log templates: " + "; ".join(
            f"'{t['template']}' {t['count']} times ({t['window_per_hour']:.1f}/h vs {t['baseline_per_hour']:.1f}/h normally)" for t in templates[:4]) + ".")
    if image := evidence.get("image"):
        lines.append(f"Inspection image: looks like {image['label']} ({image['probability']:.2f}).")
    if similar := evidence.get("similar"):
        lines.append("Similar cases: " + "; ".join(
            f"{'work order' if c['kind'] == 'work_order' else 'diagnosis'} {c['ref']}" + (f" ({c['fault']})" if c.get("fault") else "") + f": {c.get('summary', '')[:160]}"
            for c in similar[:4]) + ".")
    if actions := result.get("actions"):
        lines.append("Recommended actions: " + " ".join(
            f"{n}. {a['text']}" + (f" [{a['citations'][0]['document']}]" if a.get("citations") else "") for n, a in enumerate(actions[:4], 1)))
    if verdict is not None:
        lines.append(f"Engineer feedback: {verdict.get_verdict_display().lower()} as {verdict.label.replace('_', ' ')}" + (f" ({verdict.comment})" if verdict.comment else "") + ".")
    return "\n".join(lines)


def _describe(row: models.Model, *, skip: set[str]) -> str:
    """``field: value`` for the row's plain fields: works for models whose schema we do not own."""
    parts = []
    for field in row._meta.concrete_fields:
        if field.name in skip or field.primary_key or isinstance(field, models.BinaryField):
            continue
        value = getattr(row, field.attname)
        if value in (None, "", [], {}):
            continue
        if isinstance(value, float):
            value = f"{value:.3g}"
        elif isinstance(value, datetime):
            value = f"{value:%Y-%m-%d %H:%M} UTC"
        text = str(value)
        parts.append(f"{field.name}: {text[:300]}")
    return "; ".join(parts)


def _sensor_statistics(equipment: Equipment, *, start: datetime, end: datetime, using: str) -> list[str]:
    lines = []
    sensors = list(Sensor.objects.using(using).filter(equipment=equipment, enabled=True))
    latest_by_sensor = selectors.latest_values(sensors=sensors, using=using)
    for sensor in sensors:
        # end + 1 µs: the window includes the reading taken at its end ("now" is the newest reading)
        series = selectors.sensor_series(sensor=sensor, start=start, end=end + timedelta(microseconds=1), max_points=200, using=using)
        latest = latest_by_sensor.get(sensor.id)
        latest_text = f"latest {latest.value:.3g} at {us_to_datetime(latest.ts_us):%Y-%m-%d %H:%M}" if latest else "no reading yet"
        if not series.points:
            lines.append(f"- {sensor.tag} ({sensor.name}, {sensor.unit}): no readings in the window; {latest_text}")
            continue
        count = sum(p.count for p in series.points)
        mean = sum(p.value * p.count for p in series.points) / count
        low, high = min(p.min for p in series.points), max(p.max for p in series.points)
        first, last = series.points[0].value, series.points[-1].value
        limits = f"; range {sensor.range_low:g}-{sensor.range_high:g}" if sensor.range_low is not None and sensor.range_high is not None else ""
        lines.append(
            f"- {sensor.tag} ({sensor.name}, {sensor.unit}): mean {mean:.3g}, min {low:.3g}, max {high:.3g}, "
            f"start {first:.3g} -> end {last:.3g}, {count} readings; {latest_text}{limits}"
        )
    return lines


def _log_lines(equipment: Equipment, *, start: datetime, end: datetime, using: str) -> list[str]:
    events = (
        LogEvent.objects.using(using)
        .filter(equipment=equipment, ts__gte=start, ts__lte=end, level__in=["WARN", "WARNING", "ERROR", "CRITICAL", "FATAL", "ALARM"])
        .order_by("-ts")[:MAX_LOG_EVENTS]
    )
    return [f"- {e.ts:%Y-%m-%d %H:%M} {e.level} {e.source}: {e.message[:200]}" for e in events]
