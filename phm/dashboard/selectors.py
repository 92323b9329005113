"""Read models for the operator pages: equipment health, alarm counts, score bands, log timeline,
diagnoses."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connections
from django.db.models import Count, Q

from phm.alarms.models import OPEN_STATES, Alarm, AlarmState
from models.diagnosis.types import DiagnosisResult
from phm.analytics.diagnosis import allowed_faults
from phm.analytics.models import AnomalyScore, DetectorConfig, Diagnosis, DiagnosisFeedback
from phm.assets.models import Equipment
from phm.telemetry.fields import datetime_to_us, us_to_datetime
from phm.telemetry.models import InspectionImage, LogEvent, LogTemplate
from phm.telemetry.selectors import is_stale

#: States an operator still has to act on or watch: annunciated, not shelved or hidden by design.
ACTIVE_STATES = [AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK]
UNACK_STATES = [AlarmState.ACTIVE_UNACK, AlarmState.RTN_UNACK]


@dataclass(frozen=True)
class LatestScore:
    detector: str
    ts: datetime
    score: float
    threshold: float

    @property
    def above(self) -> bool:
        return self.score > self.threshold


@dataclass(frozen=True)
class EquipmentHealth:
    sensors: int
    stale: list[str]
    last_update: datetime | None
    worst_alarm: Alarm | None = None
    latest_score: LatestScore | None = None

    @property
    def status(self) -> str:
        """One word for the row, shown as text next to its colour."""
        if self.worst_alarm is not None:
            return self.worst_alarm.band
        if self.stale:
            return "stale"
        return "normal"


def equipment_health(*, now: datetime, stale_factor: float = 5.0) -> dict[int, EquipmentHealth]:
    """Per equipment: sensor count, stale sensor tags (no value for stale_factor × sampling period),
    the worst open alarm (highest severity, then newest) and the latest anomaly score."""
    worst: dict[int, Alarm] = {}
    for alarm in Alarm.objects.filter(state__in=OPEN_STATES).order_by("-severity", "-raised_at"):
        worst.setdefault(alarm.equipment_id, alarm)
    scores = latest_scores()
    health: dict[int, EquipmentHealth] = {}
    for equipment in Equipment.objects.prefetch_related("sensors__latest"):
        stale, last = [], None
        sensors = [s for s in equipment.sensors.all() if s.enabled]
        for sensor in sensors:
            latest = getattr(sensor, "latest", None)
            if is_stale(sensor=sensor, latest=latest, now=now, factor=stale_factor):
                stale.append(sensor.tag)
            if latest is not None and (last is None or latest.ts > last):
                last = latest.ts
        health[equipment.pk] = EquipmentHealth(len(sensors), stale, last, worst.get(equipment.pk), scores.get(equipment.pk))
    return health


def latest_scores() -> dict[int, LatestScore]:
    """Latest score per equipment, from its enabled detector with the highest score/threshold ratio."""
    best: dict[int, LatestScore] = {}
    for config in DetectorConfig.objects.filter(enabled=True).only("pk", "name", "equipment_id"):
        row = AnomalyScore.objects.filter(config=config).order_by("-ts").values_list("ts", "score", "threshold").first()
        if row is None:
            continue
        candidate = LatestScore(config.name, row[0], row[1], row[2])
        current = best.get(config.equipment_id)
        if current is None or _ratio(candidate) > _ratio(current):
            best[config.equipment_id] = candidate
    return best


def _ratio(score: LatestScore) -> float:
    return score.score / score.threshold if score.threshold else math.inf


@dataclass
class AreaAlarmCounts:
    active: int = 0
    unacknowledged: int = 0


def area_alarm_counts() -> dict[int, AreaAlarmCounts]:
    rows = (
        Alarm.objects.values("equipment__line__area")
        .annotate(active=Count("pk", filter=Q(state__in=ACTIVE_STATES)), unack=Count("pk", filter=Q(state__in=UNACK_STATES)))
    )
    return {row["equipment__line__area"]: AreaAlarmCounts(row["active"], row["unack"]) for row in rows}


@dataclass(frozen=True)
class ScoreBand:
    """A detector's score over a range, bucketed in the database (max per bucket: a spike stays visible)."""

    detector: str
    times: list[datetime]
    scores: list[float]
    thresholds: list[float]


def score_bands(*, equipment: Equipment, start: datetime, end: datetime, max_points: int = 600, using: str = "default") -> list[ScoreBand]:
    start_us, end_us = datetime_to_us(start), datetime_to_us(end)
    bucket_us = max(1, math.ceil((end_us - start_us) / max_points))
    table = AnomalyScore._meta.db_table
    bands = []
    for config in DetectorConfig.objects.using(using).filter(equipment=equipment).order_by("name"):
        with connections[using].cursor() as cursor:
            cursor.execute(
                f"SELECT (ts - %s) / %s AS bucket, MAX(score), MAX(threshold) FROM {table} "
                "WHERE config_id = %s AND ts >= %s AND ts < %s GROUP BY bucket ORDER BY bucket",
                [start_us, bucket_us, config.pk, start_us, end_us],
            )
            rows = cursor.fetchall()
        if rows:
            bands.append(ScoreBand(
                config.name, [us_to_datetime(start_us + int(b) * bucket_us) for b, _, _ in rows], [s for _, s, _ in rows], [t for _, _, t in rows]
            ))
    return bands


def alarms_in_range(*, equipment: Equipment, start: datetime, end: datetime) -> list[Alarm]:
    return list(Alarm.objects.filter(equipment=equipment, raised_at__gte=start, raised_at__lt=end).order_by("raised_at")[:200])


@dataclass
class TemplateCount:
    template_id: str
    template: str
    count: int
    last: datetime
    #: (level, count) pairs, a list and not a dict: templates look up ``.items`` as a key first.
    levels: list[tuple[str, int]] = field(default_factory=list)


def log_template_counts(*, equipment: Equipment, start: datetime, end: datetime) -> list[TemplateCount]:
    """Log events of the equipment in the range grouped by their mined template, most frequent first."""
    events = LogEvent.objects.filter(Q(equipment=equipment) | Q(source=equipment.tag), ts__gte=start, ts__lt=end)
    counts: dict[str, TemplateCount] = {}
    levels: dict[str, Counter] = defaultdict(Counter)
    for template_id, level, ts, message in events.values_list("template_id", "level", "ts", "message").iterator():
        key = template_id or message
        entry = counts.get(key)
        if entry is None:
            entry = counts[key] = TemplateCount(template_id, message, 0, ts)
        entry.count += 1
        entry.last = max(entry.last, ts)
        levels[key][level] += 1
    counts, levels = _merge_template_aliases(counts, levels)
    texts = dict(LogTemplate.objects.filter(template_id__in=[c.template_id for c in counts.values() if c.template_id]).values_list("template_id", "template"))
    for key, entry in counts.items():
        entry.template = texts.get(entry.template_id, entry.template)
        entry.levels = sorted(levels[key].items())
    return sorted(counts.values(), key=lambda c: (-c.count, c.template))


def template_aliases(template_ids) -> dict[str, str]:
    """Of ``template_ids``, those merged into another by a log connector's miner -> the id they
    belong to now (``LogTemplate.merged_into``, copied from each connector's miner state; an id
    keeps meaning its lines, which now count with the merged template)."""
    from phm.telemetry.log_templates import current_ids

    return {old: new for old, new in current_ids(template_ids).items() if old != new}


def _merge_template_aliases(counts: dict[str, TemplateCount], levels: dict[str, Counter]) -> tuple[dict[str, TemplateCount], dict[str, Counter]]:
    aliases = template_aliases(entry.template_id for entry in counts.values() if entry.template_id)
    if not aliases:
        return counts, levels
    merged: dict[str, TemplateCount] = {}
    merged_levels: dict[str, Counter] = defaultdict(Counter)
    for key, entry in counts.items():
        target = aliases.get(entry.template_id, entry.template_id) if entry.template_id else key
        into = merged.get(target)
        if into is None:
            merged[target] = TemplateCount(target, entry.template, entry.count, entry.last)
        else:
            into.count += entry.count
            into.last = max(into.last, entry.last)
        merged_levels[target].update(levels[key])
    return merged, merged_levels


def recent_logs(*, equipment: Equipment, limit: int = 50) -> list[LogEvent]:
    return list(LogEvent.objects.filter(Q(equipment=equipment) | Q(source=equipment.tag)).order_by("-ts")[:limit])


def latest_images(*, equipment: Equipment, limit: int = 6) -> list[InspectionImage]:
    return list(InspectionImage.objects.filter(equipment=equipment).order_by("-ts" if _has_field(InspectionImage, "ts") else "-uploaded_at")[:limit])


def latest_diagnosis(*, equipment: Equipment) -> Diagnosis | None:
    """The equipment's newest diagnosis (finished or not: a running or failed one says so)."""
    return Diagnosis.objects.filter(equipment=equipment).select_related("model_version", "image", "alarm").order_by("-created_at", "-id").first()


def alarm_diagnoses(*, alarm_ids: list[int]) -> dict[int, Diagnosis]:
    """The newest diagnosis of each alarm, for the console's diagnosis column."""
    newest: dict[int, Diagnosis] = {}
    for row in Diagnosis.objects.filter(alarm_id__in=alarm_ids).order_by("created_at", "id").only("pk", "alarm_id", "status", "fault", "probability"):
        newest[row.alarm_id] = row
    return newest


@dataclass(frozen=True)
class SensorShare:
    sensor: str
    percent: float
    direction: str


@dataclass(frozen=True)
class DiagnosisView:
    """What the diagnosis panel shows: the stored result read back through the data contract, with
    shares and probabilities as percentages, the image used, feedback so far and the classes an
    engineer may choose when correcting."""

    diagnosis: Diagnosis
    result: DiagnosisResult | None
    probability_percent: float | None
    probabilities: list[tuple[str, float]]
    sensors: list[SensorShare]
    feedback: list[DiagnosisFeedback]
    allowed_faults: list[str]
    #: The newest fault classification of the equipment's vibration captures up to the evidence's end.
    capture_classification: dict | None = None

    @property
    def fault_label(self) -> str:
        if self.diagnosis.fault == "no_known_fault":  # models.diagnosis.NO_KNOWN_FAULT, without importing the model package
            return "no known fault pattern: unknown fault or false alarm"
        return self.diagnosis.fault.replace("_", " ")


def diagnosis_view(diagnosis: Diagnosis | None) -> DiagnosisView | None:
    if diagnosis is None:
        return None
    result = DiagnosisResult.from_dict(diagnosis.result) if diagnosis.result else None
    probabilities = sorted(((k, 100.0 * v) for k, v in (result.probabilities.items() if result else [])), key=lambda kv: -kv[1])
    sensors = [SensorShare(s.sensor, 100.0 * s.share, s.direction) for s in (result.evidence.sensors if result else [])]
    try:
        allowed = allowed_faults(equipment_type=diagnosis.equipment.equipment_type)
    except ImportError:  # the model package is not installed on this web server
        allowed = []
    return DiagnosisView(
        diagnosis=diagnosis, result=result,
        probability_percent=None if diagnosis.probability is None else 100.0 * diagnosis.probability,
        probabilities=probabilities, sensors=sensors,
        feedback=list(DiagnosisFeedback.objects.filter(diagnosis=diagnosis).select_related("user").order_by("-created_at", "-id")),
        allowed_faults=allowed,
        capture_classification=(diagnosis.result or {}).get("capture_classification"),
    )


def _has_field(model, name: str) -> bool:
    return any(f.name == name for f in model._meta.get_fields())
