"""Re-diagnosis of open alarms as evidence grows.

The first diagnosis sees the sensor window up to the raise, often only a minute or two of the
fault. A Celery beat tick (``analytics-rediagnose-due``, every ``PHM_REDIAGNOSE_TICK_S``) finds, for
every alarm still active:

* each follow-up offset (``PHM_REDIAGNOSE_AFTER_S``, default 300 and 900 s) whose evidence has
  arrived (the equipment's newest reading is at least ``raise + offset``) and that has no stored
  row yet: stage ``'+300s'``, evidence window ending at ``raise + 300 s``;
* a severity escalation: the alarm's severity band is above the band it had at its last
  diagnosis: stage ``'escalation:<band>'``, evidence up to the newest reading.

Each is sent as a ``diagnose`` task with its stage; the partial unique index on (alarm, stage)
keeps a stage to one row however often the tick sees it. Each re-diagnosis is a new stored row;
a ``diagnosis`` webhook event follows only when its top fault or confidence band changed
(:func:`phm.analytics.diagnosis.should_announce`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Max

from phm.alarms.models import Alarm, AlarmState, SeverityBand, severity_band
from phm.analytics.diagnosis import DiagnosisConfig, follow_up_stage
from phm.analytics.models import Diagnosis, DiagnosisTrigger
from phm.telemetry.models import LatestReading

log = logging.getLogger(__name__)

#: Alarms whose re-diagnosis the tick still looks for (the condition is still there).
ACTIVE_STATES = (AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK)
BAND_ORDER = [SeverityBand.LOW, SeverityBand.MEDIUM, SeverityBand.HIGH, SeverityBand.URGENT]


@dataclass(frozen=True)
class DueRediagnosis:
    alarm_id: int
    trigger: str
    stage: str


def due_rediagnoses(*, using: str = "default", config: DiagnosisConfig | None = None) -> list[DueRediagnosis]:
    """The re-diagnoses the active alarms are owed now (none twice: a stored stage is skipped)."""
    config = config or DiagnosisConfig.from_env()
    alarms = list(Alarm.objects.using(using).filter(state__in=ACTIVE_STATES, diagnoses__trigger=DiagnosisTrigger.RAISE).distinct())
    if not alarms:
        return []
    newest = dict(
        LatestReading.objects.using(using).filter(sensor__equipment_id__in={a.equipment_id for a in alarms})
        .values_list("sensor__equipment_id").annotate(ts=Max("ts"))
    )
    rows = Diagnosis.objects.using(using).filter(alarm__in=alarms).values_list("alarm_id", "stage", "alarm_severity", "pk")
    stages: dict[int, set[str]] = {}
    last_severity: dict[int, tuple[int, int | None]] = {}
    for alarm_id, stage, severity, pk in rows:
        stages.setdefault(alarm_id, set()).add(stage)
        if alarm_id not in last_severity or pk > last_severity[alarm_id][0]:
            last_severity[alarm_id] = (pk, severity)
    due = []
    for alarm in alarms:
        seen = stages.get(alarm.pk, set())
        newest_ts = newest.get(alarm.equipment_id)
        for offset in config.follow_up_s:
            stage = follow_up_stage(offset)
            if stage not in seen and newest_ts is not None and newest_ts >= alarm.raised_at + timedelta(seconds=offset):
                due.append(DueRediagnosis(alarm.pk, DiagnosisTrigger.FOLLOW_UP, stage))
        before = last_severity.get(alarm.pk, (0, None))[1]
        band = severity_band(alarm.severity)
        if before is not None and BAND_ORDER.index(band) > BAND_ORDER.index(severity_band(before)):
            stage = f"escalation:{band}"
            if stage not in seen:
                due.append(DueRediagnosis(alarm.pk, DiagnosisTrigger.ESCALATION, stage))
    return due


def send_due(*, using: str = "default") -> list[DueRediagnosis]:
    """Beat: send a ``diagnose`` task for each owed re-diagnosis; a broker outage loses only this
    tick's sends (the next tick finds them owed still)."""
    from phm.analytics.tasks import diagnose

    due = due_rediagnoses(using=using)
    for item in due:
        try:
            diagnose.apply_async(args=[item.alarm_id], kwargs={"trigger": str(item.trigger), "stage": item.stage})
        except Exception:
            log.warning("could not queue re-diagnosis %s of alarm %s", item.stage, item.alarm_id, exc_info=True)
    return due
