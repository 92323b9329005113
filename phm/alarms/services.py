"""Alarm lifecycle services (ISA-18.2): evaluate scores into alarms, operator actions, design
suppression and out-of-service, shelving with expiry. Each state change writes its journal row
and, when SCADA should hear about it, an outbox message, all in one transaction."""

from __future__ import annotations

import math

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from phm.alarms.models import (
    OPEN_STATES,
    Alarm,
    AlarmPoint,
    AlarmState,
    AlarmTransition,
    EventType,
    OutboxMessage,
    WebhookDelivery,
    WebhookEndpoint,
    severity_band,
)
from phm.assets.models import Criticality, Equipment

log = logging.getLogger(__name__)

S = AlarmState
#: States shown to the operator and sent to SCADA (shelved, suppressed and out-of-service are not).
ANNUNCIATED_STATES = {S.ACTIVE_UNACK, S.ACTIVE_ACK, S.RTN_UNACK}
SYSTEM = "system"


class AlarmError(Exception):
    """Base of the errors an operator request can cause; the message says what was wrong."""


class IllegalTransition(AlarmError):
    """The requested action is not allowed from the alarm's current state."""


class InvalidRequest(AlarmError):
    """The request's values are wrong (e.g. a shelve that would already have expired)."""


@dataclass(frozen=True, slots=True)
class AlarmPolicy:
    """How scores become alarms. ``deadband`` is a fraction of the threshold: once active, the
    score must fall below ``threshold * (1 - deadband)`` to clear, so a score hovering at the limit
    does not chatter. ``on_delay_s`` / ``off_delay_s``: the condition must persist that long."""

    threshold: float
    deadband: float = 0.1
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.deadband < 1:
            raise ValueError(f"deadband must be in [0, 1), got {self.deadband}")
        if self.on_delay_s < 0 or self.off_delay_s < 0:
            raise ValueError("on_delay_s and off_delay_s must not be negative")

    @property
    def clear_level(self) -> float:
        return self.threshold - abs(self.threshold) * self.deadband


_CRITICALITY_BASE = {Criticality.A: 500, Criticality.B: 250, Criticality.C: 0}


def severity_for(*, score: float, threshold: float, criticality: str) -> int:
    """OPC UA severity 1..1000: the equipment's criticality picks the starting band (C low,
    B medium, A high) and how far the score exceeds the threshold moves it up to two bands
    (a score 5x the threshold is two bands up)."""
    base = _CRITICALITY_BASE.get(criticality, 250)
    if threshold > 0:
        excess = min(1.0, max(0.0, (score / threshold - 1.0) / 4.0))
    else:
        excess = 1.0 if score > threshold else 0.0
    return int(min(1000, max(1, base + 1 + round(499 * excess))))


# --- evaluation of scores ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    ts: datetime
    score: float


#: Words an alarm from its sample, for callers whose score is no anomaly score (a RUL lead-time
#: ratio, a fault probability): the operator and SCADA read what the score means, not the score.
Describe = Callable[[Sample], str]


def evaluate_scores(
    *, equipment: Equipment, source: str, samples: Sequence[Sample], policy: AlarmPolicy, label: str = "",
    describe: Describe | None = None, using: str = "default",
) -> list[AlarmTransition]:
    """Run time-ordered samples through the chattering filters and the alarm state machine;
    return the transitions written. Safe to call from several workers at once: the point row is
    locked, and the open-alarm unique index is the backstop. ``describe`` (optional) gives the
    alarm's text from the sample that raised it, and rewrites it as later samples hold it active;
    without it the text is the anomaly-score wording, written once at activation."""
    with transaction.atomic(using=using):
        point = _locked_point(equipment=equipment, source=source, using=using)
        transitions: list[AlarmTransition] = []
        for sample in sorted(samples, key=lambda s: s.ts):
            if point.last_sample_at is not None and sample.ts <= point.last_sample_at:
                continue  # already evaluated (a re-scored backlog must not replay transitions)
            transitions += _evaluate_sample(point, sample, policy, label=label, describe=describe, using=using)
            point.last_sample_at = sample.ts
        point.save(using=using)
        _kick_delivery_on_commit(transitions, using=using)
        return transitions


def _locked_point(*, equipment: Equipment, source: str, using: str) -> AlarmPoint:
    point, _ = AlarmPoint.objects.using(using).get_or_create(equipment=equipment, source=source)
    # select_for_update serialises evaluators on PostgreSQL; SQLite's IMMEDIATE transactions already do.
    return AlarmPoint.objects.using(using).select_for_update().select_related("equipment__line__area__site").get(pk=point.pk)


class ConditionStep:
    """What one sample does to an alarm condition (see :func:`advance_condition`)."""

    NONE = "none"  # nothing to record (normal, or a delay still running)
    RAISE = "raise"  # the condition became active
    HOLD = "hold"  # still active: the open alarm's score follows the sample
    CLEAR = "clear"  # the condition returned to normal


def advance_condition(point, sample: Sample, policy: AlarmPolicy) -> str:
    """The chattering filters on one sample: on-delay, deadband and off-delay. ``point`` carries
    ``condition_active``, ``on_pending_since`` and ``off_pending_since`` (an :class:`AlarmPoint`, or
    any object with those attributes: a backtest replays history through this same function in
    memory) and is updated in place; the return value says what the alarm side must do."""
    if not point.condition_active:
        if sample.score < policy.threshold:
            point.on_pending_since = None
            return ConditionStep.NONE
        point.on_pending_since = point.on_pending_since or sample.ts
        if (sample.ts - point.on_pending_since).total_seconds() < policy.on_delay_s:
            return ConditionStep.NONE
        point.condition_active, point.on_pending_since, point.off_pending_since = True, None, None
        return ConditionStep.RAISE
    if sample.score >= policy.clear_level:
        point.off_pending_since = None
        return ConditionStep.HOLD
    point.off_pending_since = point.off_pending_since or sample.ts
    if (sample.ts - point.off_pending_since).total_seconds() < policy.off_delay_s:
        return ConditionStep.NONE
    point.condition_active, point.off_pending_since = False, None
    return ConditionStep.CLEAR


def _evaluate_sample(
    point: AlarmPoint, sample: Sample, policy: AlarmPolicy, *, label: str, describe: Describe | None, using: str
) -> list[AlarmTransition]:
    step = advance_condition(point, sample, policy)
    if step == ConditionStep.RAISE:
        return _activate(point, sample, policy, message=_message(point, sample, policy, label=label, describe=describe), using=using)
    if step == ConditionStep.HOLD:
        _update_open_alarm_score(point, sample, policy, message=describe(sample) if describe else None, using=using)
    elif step == ConditionStep.CLEAR:
        return _return_to_normal(point, sample, using=using)
    return []


def open_alarm(*, point: AlarmPoint, using: str = "default") -> Alarm | None:
    return Alarm.objects.using(using).filter(point=point, state__in=OPEN_STATES).first()


def _message(point: AlarmPoint, sample: Sample, policy: AlarmPolicy, *, label: str, describe: Describe | None) -> str:
    if describe is not None:
        return describe(sample)
    return f"{label or point.source}: anomaly score {sample.score:.4g} above threshold {policy.threshold:.4g} on {point.equipment.tag}"


def _activate(point: AlarmPoint, sample: Sample, policy: AlarmPolicy, *, message: str, using: str) -> list[AlarmTransition]:
    severity = severity_for(score=sample.score, threshold=policy.threshold, criticality=point.equipment.criticality)
    alarm = open_alarm(point=point, using=using)
    if alarm is None:
        alarm, created = _create_open_alarm(point, sample, policy, severity, message, using=using)
        if created:
            return [_transition(alarm, S.NORMAL, alarm.state, at=sample.ts, score=sample.score, comment="activated", using=using)]
    alarm.process_active = True
    alarm.score, alarm.peak_score = sample.score, max(alarm.peak_score, sample.score)
    alarm.severity, alarm.threshold, alarm.message = max(alarm.severity, severity), policy.threshold, message
    if alarm.state == S.RTN_UNACK:
        # Re-activated before anyone acknowledged the return: active and unacknowledged again.
        alarm.state, alarm.cleared_at = S.ACTIVE_UNACK, None
        alarm.save(using=using)
        return [_transition(alarm, S.RTN_UNACK, S.ACTIVE_UNACK, at=sample.ts, score=sample.score, comment="re-activated", using=using)]
    alarm.save(using=using)  # shelved / suppressed / out of service: tracked, not annunciated
    return []


def _create_open_alarm(
    point: AlarmPoint, sample: Sample, policy: AlarmPolicy, severity: int, message: str, *, using: str
) -> tuple[Alarm, bool]:
    state = S.OUT_OF_SERVICE if point.out_of_service else S.SUPPRESSED if point.suppressed_by_design else S.ACTIVE_UNACK
    try:
        with transaction.atomic(using=using):  # savepoint: a lost race must not poison the outer transaction
            alarm = Alarm.objects.using(using).create(
                point=point, equipment=point.equipment, source=point.source, state=state, severity=severity,
                score=sample.score, peak_score=sample.score, threshold=policy.threshold, message=message, raised_at=sample.ts,
            )
            _diagnose_on_commit(alarm, using=using)
            return alarm, True
    except IntegrityError:
        existing = open_alarm(point=point, using=using)
        if existing is None:
            raise
        log.info("open alarm for %s already raised by another worker (alarm %s)", point, existing.pk)
        return existing, False


def _diagnose_on_commit(alarm: Alarm, *, using: str) -> None:
    """Root-cause diagnosis of a raised alarm runs in a task sent when the raise commits (registered
    inside the savepoint, so a lost race sends nothing). Imported here: analytics imports this module."""
    from phm.analytics.diagnosis import diagnose_on_commit

    diagnose_on_commit(alarm, using=using)


def _update_open_alarm_score(point: AlarmPoint, sample: Sample, policy: AlarmPolicy, *, message: str | None, using: str) -> None:
    alarm = open_alarm(point=point, using=using)
    if alarm is None:
        return
    severity = severity_for(score=sample.score, threshold=policy.threshold, criticality=point.equipment.criticality)
    # A described alarm's text carries the figure (days left, probability): keep it current with the score.
    text = {"message": message} if message is not None else {}
    Alarm.objects.using(using).filter(pk=alarm.pk).update(
        score=sample.score, peak_score=max(alarm.peak_score, sample.score), severity=max(alarm.severity, severity), updated_at=timezone.now(), **text
    )


def _return_to_normal(point: AlarmPoint, sample: Sample, *, using: str) -> list[AlarmTransition]:
    alarm = open_alarm(point=point, using=using)
    if alarm is None:
        return []
    alarm.process_active, alarm.score, alarm.cleared_at = False, sample.score, sample.ts
    if alarm.state == S.ACTIVE_UNACK:
        alarm.state = S.RTN_UNACK
        alarm.save(using=using)
        return [_transition(alarm, S.ACTIVE_UNACK, S.RTN_UNACK, at=sample.ts, score=sample.score, comment="returned to normal", using=using)]
    if alarm.state in (S.ACTIVE_ACK, S.SUPPRESSED, S.OUT_OF_SERVICE):
        old = alarm.state
        _close(alarm, at=sample.ts)
        alarm.save(using=using)
        return [_transition(alarm, old, S.NORMAL, at=sample.ts, score=sample.score, comment="returned to normal", using=using)]
    alarm.save(using=using)  # shelved: stays shelved; unshelving later finds the process normal
    return []


def _close(alarm: Alarm, *, at: datetime) -> None:
    alarm.state, alarm.closed_at, alarm.shelved_until, alarm.shelved_from_state = S.NORMAL, at, None, ""


# --- operator actions -------------------------------------------------------------------------


def _locked_alarm(alarm_id: int, *, using: str) -> Alarm:
    try:
        return Alarm.objects.using(using).select_for_update().select_related("equipment__line__area__site").get(pk=alarm_id)
    except Alarm.DoesNotExist:
        raise Alarm.DoesNotExist(f"alarm {alarm_id} does not exist") from None


def _actor(user) -> str:
    return user.get_username() if user is not None else SYSTEM


def acknowledge(*, alarm_id: int, user=None, comment: str = "", now: datetime | None = None, using: str = "default") -> Alarm:
    """Active-unacknowledged -> active-acknowledged; returned-to-normal-unacknowledged -> normal."""
    now = now or timezone.now()
    with transaction.atomic(using=using):
        alarm = _locked_alarm(alarm_id, using=using)
        transitions = _expire_shelve_if_due(alarm, now=now, using=using)
        if alarm.state == S.ACTIVE_UNACK:
            target = S.ACTIVE_ACK
        elif alarm.state == S.RTN_UNACK:
            target = S.NORMAL
        else:
            raise IllegalTransition(f"alarm {alarm.pk} is {alarm.state}: only an unacknowledged alarm can be acknowledged")
        old = alarm.state
        alarm.acknowledged_at, alarm.acknowledged_by = now, user
        if target == S.NORMAL:
            _close(alarm, at=now)
        else:
            alarm.state = target
        alarm.save(using=using)
        transitions.append(_transition(alarm, old, target, at=now, user=user, comment=comment, using=using))
        _kick_delivery_on_commit(transitions, using=using)
        return alarm


def max_shelve() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "PHM_ALARM_MAX_SHELVE_S", 24 * 3600)))


def shelve_duration(amount: object, *, unit: str = "seconds") -> timedelta:
    """A shelve duration from user input (API seconds, form minutes): a finite number within
    (0, PHM_ALARM_MAX_SHELVE_S]. Checked before building the timedelta, which overflows (500)
    on 1e308 and fails on inf / nan."""
    try:
        number = float(amount)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidRequest(f"shelve duration must be a number of {unit}, got {str(amount)[:40]!r}") from None
    per_unit = {"seconds": 1.0, "minutes": 60.0}[unit]
    limit_s = max_shelve().total_seconds()
    if not math.isfinite(number):
        raise InvalidRequest(f"shelve duration must be a finite number of {unit}, got {number}")
    if number <= 0:
        raise InvalidRequest(f"shelve duration must be positive, got {number:g} {unit} (the shelve would already have expired)")
    if number * per_unit > limit_s:
        raise InvalidRequest(f"shelve duration {number:g} {unit} exceeds the limit of {limit_s / per_unit:g} {unit} (PHM_ALARM_MAX_SHELVE_S)")
    return timedelta(seconds=number * per_unit)


def shelve(*, alarm_id: int, user=None, duration: timedelta, comment: str, now: datetime | None = None, using: str = "default") -> Alarm:
    """Shelve an annunciated alarm for ``duration`` (ISA-18.2 timed shelving); a comment is required."""
    now = now or timezone.now()
    if duration <= timedelta(0):
        raise InvalidRequest(f"shelve duration must be positive, got {duration.total_seconds():g} s (the shelve would already have expired)")
    if duration > max_shelve():
        raise InvalidRequest(f"shelve duration {duration.total_seconds():g} s exceeds the limit of {max_shelve().total_seconds():g} s")
    if not comment or not comment.strip():
        raise InvalidRequest("a comment saying why the alarm is shelved is required")
    with transaction.atomic(using=using):
        alarm = _locked_alarm(alarm_id, using=using)
        transitions = _expire_shelve_if_due(alarm, now=now, using=using)
        if alarm.state not in ANNUNCIATED_STATES:
            raise IllegalTransition(f"alarm {alarm.pk} is {alarm.state}: only an annunciated alarm can be shelved")
        old = alarm.state
        alarm.state, alarm.shelved_from_state, alarm.shelved_until = S.SHELVED, old, now + duration
        alarm.save(using=using)
        transitions.append(_transition(alarm, old, S.SHELVED, at=now, user=user, comment=comment, using=using))
        _kick_delivery_on_commit(transitions, using=using)
        return alarm


def unshelve(*, alarm_id: int, user=None, comment: str = "", now: datetime | None = None, using: str = "default") -> Alarm:
    now = now or timezone.now()
    with transaction.atomic(using=using):
        alarm = _locked_alarm(alarm_id, using=using)
        if alarm.state == S.SHELVED and alarm.shelved_until is not None and alarm.shelved_until <= now:
            raise IllegalTransition(f"alarm {alarm.pk}'s shelve expired at {alarm.shelved_until.isoformat()}; it is unshelved already")
        if alarm.state != S.SHELVED:
            raise IllegalTransition(f"alarm {alarm.pk} is {alarm.state}, not shelved")
        transitions = [_unshelve(alarm, at=now, user=user, comment=comment, using=using)]
        _kick_delivery_on_commit(transitions, using=using)
        return alarm


def _unshelve(alarm: Alarm, *, at: datetime, user, comment: str, using: str) -> AlarmTransition:
    # Back in front of the operator: a still-active condition is annunciated afresh.
    target = S.ACTIVE_UNACK if alarm.process_active else S.NORMAL
    if target == S.NORMAL:
        _close(alarm, at=at)
    else:
        alarm.state, alarm.shelved_until, alarm.shelved_from_state = target, None, ""
    alarm.save(using=using)
    return _transition(alarm, S.SHELVED, target, at=at, user=user, comment=comment, using=using)


def _expire_shelve_if_due(alarm: Alarm, *, now: datetime, using: str) -> list[AlarmTransition]:
    if alarm.state == S.SHELVED and alarm.shelved_until is not None and alarm.shelved_until <= now:
        return [_unshelve(alarm, at=alarm.shelved_until, user=None, comment="shelve expired", using=using)]
    return []


def expire_shelves(*, now: datetime | None = None, using: str = "default") -> int:
    """Unshelve every alarm whose shelve has run out (run by beat); return how many."""
    now = now or timezone.now()
    count = 0
    for alarm_id in Alarm.objects.using(using).filter(state=S.SHELVED, shelved_until__lte=now).values_list("pk", flat=True):
        with transaction.atomic(using=using):
            alarm = _locked_alarm(alarm_id, using=using)
            transitions = _expire_shelve_if_due(alarm, now=now, using=using)
            _kick_delivery_on_commit(transitions, using=using)
            count += len(transitions)
    return count


def set_point_flags(
    *, equipment: Equipment, source: str, suppressed_by_design: bool | None = None, out_of_service: bool | None = None,
    user=None, comment: str = "", now: datetime | None = None, using: str = "default",
) -> AlarmPoint:
    """Suppress by design / take out of service (or restore) an alarm point; an open alarm follows."""
    now = now or timezone.now()
    with transaction.atomic(using=using):
        point = _locked_point(equipment=equipment, source=source, using=using)
        if suppressed_by_design is not None:
            point.suppressed_by_design = suppressed_by_design
        if out_of_service is not None:
            point.out_of_service = out_of_service
        point.save(using=using)
        transitions: list[AlarmTransition] = []
        alarm = open_alarm(point=point, using=using)
        if alarm is not None:
            wanted = S.OUT_OF_SERVICE if point.out_of_service else S.SUPPRESSED if point.suppressed_by_design else None
            if wanted is not None and alarm.state != wanted and alarm.state != S.SHELVED:
                old, alarm.state = alarm.state, wanted
                alarm.save(using=using)
                transitions.append(_transition(alarm, old, wanted, at=now, user=user, comment=comment, using=using))
            elif wanted is None and alarm.state in (S.SUPPRESSED, S.OUT_OF_SERVICE):
                old = alarm.state
                if alarm.process_active:
                    alarm.state, alarm.acknowledged_at, alarm.acknowledged_by = S.ACTIVE_UNACK, None, None
                else:
                    _close(alarm, at=now)
                alarm.save(using=using)
                transitions.append(_transition(alarm, old, alarm.state, at=now, user=user, comment=comment, using=using))
        _kick_delivery_on_commit(transitions, using=using)
        return point


# --- journal and outbox -----------------------------------------------------------------------

_EVENT_FOR_TARGET = {
    S.ACTIVE_UNACK: EventType.RAISED,
    S.ACTIVE_ACK: EventType.ACKNOWLEDGED,
    S.RTN_UNACK: EventType.RETURNED_TO_NORMAL,
    S.SHELVED: EventType.SHELVED,
    S.SUPPRESSED: EventType.SUPPRESSED,
    S.OUT_OF_SERVICE: EventType.OUT_OF_SERVICE,
}


def _event_type(old: str, new: str) -> EventType | None:
    if old == S.SHELVED:
        return EventType.UNSHELVED
    if old == S.SUPPRESSED and new != S.NORMAL:
        return EventType.UNSUPPRESSED
    if old == S.OUT_OF_SERVICE and new != S.NORMAL:
        return EventType.IN_SERVICE
    if new == S.NORMAL:
        # Closing an alarm SCADA never saw (suppressed / out of service from the start) is silent.
        return EventType.CLEARED if old in ANNUNCIATED_STATES else None
    if old == S.NORMAL and new not in ANNUNCIATED_STATES:
        return None
    return _EVENT_FOR_TARGET.get(new)


def _transition(
    alarm: Alarm, old: str, new: str, *, at: datetime, using: str, user=None, comment: str = "", score: float | None = None
) -> AlarmTransition:
    transition = AlarmTransition.objects.using(using).create(
        alarm=alarm, from_state=old, to_state=new, at=at, user=user, actor=_actor(user), comment=comment,
        score=alarm.score if score is None else score, severity=alarm.severity,
    )
    event_type = _event_type(old, new)
    if event_type is not None:
        enqueue_event(event_type=event_type, payload=alarm_payload(alarm, transition, event_type), alarm=alarm, transition=transition, using=using)
    return transition


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def alarm_payload(alarm: Alarm, transition: AlarmTransition, event_type: str) -> dict:
    """The Standard Webhooks body: ``{"type", "timestamp", "data"}`` with what SCADA needs to show it."""
    equipment = alarm.equipment
    line = equipment.line
    return {
        "type": str(event_type),
        "timestamp": _iso(transition.at),
        "data": {
            "alarm_id": alarm.pk,
            "sequence": transition.pk,
            "equipment": {
                "site": line.area.site.code, "area": line.area.code, "line": line.code, "equipment": equipment.tag,
                "path": equipment.path, "name": equipment.name,
            },
            "source": alarm.source,
            "state": alarm.state,
            "previous_state": transition.from_state,
            "severity": alarm.severity,
            "severity_band": str(severity_band(alarm.severity)),
            "score": alarm.score,
            "peak_score": alarm.peak_score,
            "threshold": alarm.threshold,
            "message": alarm.message,
            "actor": transition.actor,
            "comment": transition.comment,
            "event_at": _iso(transition.at),
            "raised_at": _iso(alarm.raised_at),
            "cleared_at": _iso(alarm.cleared_at),
            "acknowledged_at": _iso(alarm.acknowledged_at),
            "shelved_until": _iso(alarm.shelved_until),
        },
    }


def enqueue_event(
    *, event_type: str, payload: dict, alarm: Alarm | None = None, transition: AlarmTransition | None = None,
    endpoints: Sequence[WebhookEndpoint] | None = None, using: str = "default",
) -> OutboxMessage:
    """Write the outbox message and one delivery per interested, enabled endpoint (call inside
    the transaction that made the change, so the event exists if and only if the change does)."""
    message = OutboxMessage.objects.using(using).create(event_type=event_type, alarm=alarm, transition=transition, payload=payload)
    targets = endpoints if endpoints is not None else WebhookEndpoint.objects.using(using).filter(enabled=True)
    now = timezone.now()
    order_key = f"alarm:{alarm.pk}" if alarm is not None else f"message:{message.pk}"
    WebhookDelivery.objects.using(using).bulk_create(
        [WebhookDelivery(message=message, endpoint=e, order_key=order_key, next_attempt_at=now) for e in targets if e.wants(event_type)]
    )
    return message


def _kick_delivery_on_commit(transitions: Sequence[AlarmTransition], *, using: str) -> None:
    if transitions and getattr(settings, "PHM_WEBHOOK_KICK_ON_COMMIT", True):
        transaction.on_commit(kick_delivery, using=using)


def kick_delivery() -> None:
    """Ask a worker to deliver now rather than at the next beat tick; a lost kick only costs latency."""
    try:
        from phm.alarms.tasks import deliver_webhooks

        deliver_webhooks.delay()
    except Exception:  # broker down: beat picks the deliveries up later
        log.warning("could not queue webhook delivery; beat will retry", exc_info=True)
