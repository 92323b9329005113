"""ISA-18.2 alarms, their transition journal, and the outbox that carries alarm events to SCADA.

Vocabulary follows ISA-18.2 / OPC UA Alarms & Conditions:

- an :class:`AlarmPoint` is the configured condition of one (equipment, source) pair, e.g.
  (P-101, ``detector:pca-main``). It holds the design-time flags (suppressed by design, out of
  service) and the chattering filters' working state (on-delay / off-delay timers).
- an :class:`Alarm` is one occurrence at that point, from activation until it is back to normal
  and acknowledged. The database allows at most one *open* alarm per point (a partial unique
  index), so two workers scoring the same equipment at once cannot raise it twice.
- every state change is an :class:`AlarmTransition` row (who, when, comment, from/to, score).
- every annunciated change is an :class:`OutboxMessage` written in the same transaction, fanned
  out to one :class:`WebhookDelivery` per matching endpoint; each try is a :class:`DeliveryAttempt`.
"""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models

from phm.assets.models import Equipment


class AlarmState(models.TextChoices):
    NORMAL = "normal", "Normal"
    ACTIVE_UNACK = "active_unacknowledged", "Active, unacknowledged"
    ACTIVE_ACK = "active_acknowledged", "Active, acknowledged"
    RTN_UNACK = "rtn_unacknowledged", "Returned to normal, unacknowledged"
    SHELVED = "shelved", "Shelved"
    SUPPRESSED = "suppressed_by_design", "Suppressed by design"
    OUT_OF_SERVICE = "out_of_service", "Out of service"


#: States of an alarm that is still open (not back to normal and acknowledged).
OPEN_STATES = [s for s in AlarmState.values if s != AlarmState.NORMAL]


class SeverityBand(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


#: Inclusive upper bound of each band on the 1..1000 OPC UA severity scale.
SEVERITY_BANDS: tuple[tuple[int, SeverityBand], ...] = (
    (250, SeverityBand.LOW),
    (500, SeverityBand.MEDIUM),
    (750, SeverityBand.HIGH),
    (1000, SeverityBand.URGENT),
)


def severity_band(severity: int) -> SeverityBand:
    for upper, band in SEVERITY_BANDS:
        if severity <= upper:
            return band
    return SeverityBand.URGENT


class AlarmPoint(models.Model):
    equipment = models.ForeignKey(Equipment, on_delete=models.CASCADE, related_name="alarm_points")
    source = models.CharField(max_length=128, help_text="What raises it, e.g. 'detector:pca-main'.")
    suppressed_by_design = models.BooleanField(default=False, help_text="Design logic hides it (e.g. equipment stopped).")
    out_of_service = models.BooleanField(default=False, help_text="Taken out of service for maintenance.")
    # Chattering filters' working state, kept between scoring batches.
    condition_active = models.BooleanField(default=False, help_text="The filtered process condition, after delays and deadband.")
    on_pending_since = models.DateTimeField(null=True, blank=True, help_text="First sample above the limit of the current excursion.")
    off_pending_since = models.DateTimeField(null=True, blank=True, help_text="First sample below the clear level of the current return.")
    last_sample_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["equipment__tag", "source"]
        constraints = [models.UniqueConstraint(fields=["equipment", "source"], name="alarm_point_unique")]

    def __str__(self) -> str:
        return f"{self.equipment.tag}/{self.source}"


class Alarm(models.Model):
    point = models.ForeignKey(AlarmPoint, on_delete=models.CASCADE, related_name="alarms")
    # Denormalised from the point so the partial unique index can name them directly.
    equipment = models.ForeignKey(Equipment, on_delete=models.CASCADE, related_name="alarms")
    source = models.CharField(max_length=128)
    state = models.CharField(max_length=32, choices=AlarmState.choices, default=AlarmState.ACTIVE_UNACK, db_index=True)
    process_active = models.BooleanField(default=True, help_text="Is the filtered condition still active?")
    severity = models.PositiveSmallIntegerField()
    score = models.FloatField(help_text="Latest anomaly score.")
    peak_score = models.FloatField()
    threshold = models.FloatField(null=True, blank=True)
    message = models.TextField()
    raised_at = models.DateTimeField(help_text="Time of the sample that activated it.")
    cleared_at = models.DateTimeField(null=True, blank=True, help_text="Time of the sample that returned it to normal.")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    shelved_until = models.DateTimeField(null=True, blank=True)
    shelved_from_state = models.CharField(max_length=32, choices=AlarmState.choices, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["equipment", "source"], condition=~models.Q(state=AlarmState.NORMAL), name="one_open_alarm_per_equipment_source"
            ),
            models.CheckConstraint(condition=models.Q(severity__gte=1, severity__lte=1000), name="alarm_severity_1_to_1000"),
        ]
        indexes = [models.Index(fields=["state", "severity"], name="alarm_state_severity")]

    def __str__(self) -> str:
        return f"alarm {self.pk} {self.equipment_id}/{self.source} {self.state}"

    @property
    def band(self) -> SeverityBand:
        return severity_band(self.severity)


class AlarmTransition(models.Model):
    """The journal: one row per state change, never updated."""

    alarm = models.ForeignKey(Alarm, on_delete=models.CASCADE, related_name="transitions")
    from_state = models.CharField(max_length=32, choices=AlarmState.choices)
    to_state = models.CharField(max_length=32, choices=AlarmState.choices)
    at = models.DateTimeField(help_text="When it happened (process time for automatic changes).")
    recorded_at = models.DateTimeField(auto_now_add=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor = models.CharField(max_length=150, help_text="User name, or 'system' for automatic changes.")
    comment = models.TextField(blank=True)
    score = models.FloatField(null=True, blank=True)
    severity = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.alarm_id}: {self.from_state} -> {self.to_state} by {self.actor}"


# --- outbox and webhook delivery ------------------------------------------------------------


def new_webhook_secret() -> str:
    """``whsec_`` + base64 of 24 random bytes, the Standard Webhooks secret format."""
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class EventType(models.TextChoices):
    RAISED = "alarm.raised"
    ACKNOWLEDGED = "alarm.acknowledged"
    RETURNED_TO_NORMAL = "alarm.returned_to_normal"
    CLEARED = "alarm.cleared"
    SHELVED = "alarm.shelved"
    UNSHELVED = "alarm.unshelved"
    SUPPRESSED = "alarm.suppressed"
    UNSUPPRESSED = "alarm.unsuppressed"
    OUT_OF_SERVICE = "alarm.out_of_service"
    IN_SERVICE = "alarm.in_service"
    SEVERITY_CHANGED = "alarm.severity_changed"
    DIAGNOSIS = "diagnosis", "Diagnosis stored"  # root cause of a raised alarm (phm.analytics.diagnosis)
    TEST = "test"


class WebhookEndpoint(models.Model):
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=120, default=new_webhook_secret, help_text="Standard Webhooks secret, 'whsec_' + base64.")
    events = models.JSONField(default=list, blank=True, help_text="Event types to send; empty means all.")
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events or (event_type == EventType.TEST)


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


class OutboxMessage(models.Model):
    """One alarm event, written in the same transaction as the transition it reports."""

    message_id = models.CharField(max_length=64, unique=True, default=new_message_id, help_text="The webhook-id receivers dedupe on.")
    event_type = models.CharField(max_length=40, choices=EventType.choices)
    alarm = models.ForeignKey(Alarm, null=True, blank=True, on_delete=models.SET_NULL, related_name="outbox_messages")
    transition = models.ForeignKey(AlarmTransition, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.message_id} {self.event_type}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    DEAD = "dead", "Dead letter (gave up)"
    CANCELLED = "cancelled"


class WebhookDelivery(models.Model):
    """One message to one endpoint: claimed with a lease, retried until delivered or dead."""

    message = models.ForeignKey(OutboxMessage, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    # Deliveries with the same key go out in id order: the alarm's events, in the order they happened.
    order_key = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    lease_until = models.DateTimeField(null=True, blank=True, help_text="A claim older than this is a crashed worker's: retry it.")
    claimed_by = models.CharField(max_length=100, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["message", "endpoint"], name="one_delivery_per_message_endpoint")]
        indexes = [models.Index(fields=["endpoint", "order_key", "status"], name="delivery_order")]

    def __str__(self) -> str:
        return f"{self.message.message_id} -> {self.endpoint_id} {self.status}"


class DeliveryAttempt(models.Model):
    """The journal of tries: one row per HTTP request (or failure to make one)."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.FloatField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    outcome = models.CharField(max_length=16, help_text="delivered / retry / dead / disabled")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["id"]
