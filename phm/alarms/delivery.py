"""Webhook delivery from the outbox, Standard Webhooks style.

A worker claims one due delivery at a time with a conditional UPDATE (status pending and due,
or in flight with an expired lease: the claim of a worker that crashed), sends it signed, and
records the attempt. Deliveries that share an ``order_key`` (one alarm's events for one
endpoint) go out strictly in order: a later one is not claimable while an earlier one is open.
Retries grow (``PHM_WEBHOOK_RETRY_DELAYS``) with jitter; ``Retry-After`` is honoured; 410 Gone
disables the endpoint; after the last retry the delivery is a dead letter. The message id is
the ``webhook-id`` of every try, so a receiver that dedupes on it sees each event once.
Connections go only to addresses the egress policy allows (``phm.alarms.egress``).
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from phm.alarms import egress
from phm.alarms.models import DeliveryAttempt, DeliveryStatus, WebhookDelivery, WebhookEndpoint
from phm.alarms.signing import signed_headers
from phm.redaction import redact_url

log = logging.getLogger(__name__)

DEFAULT_RETRY_DELAYS_S = (5, 30, 120, 600, 1800, 7200, 18000)


def _setting(name: str, default):
    """Django setting, else environment variable, else the default (documented in README)."""
    if hasattr(settings, name):
        return getattr(settings, name)
    raw = os.environ.get(name)
    if raw is None:
        return default
    if isinstance(default, tuple):
        return tuple(float(x) for x in raw.split(",") if x.strip())
    return type(default)(raw)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    retry_delays_s: tuple[float, ...] = DEFAULT_RETRY_DELAYS_S
    jitter: float = 0.2  # each delay is scaled by a random factor in [1 - jitter, 1 + jitter]
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0
    lease_s: float = 60.0  # longer than one request can take, so a live claim never looks crashed
    max_retry_after_s: float = 3600.0

    @classmethod
    def from_settings(cls) -> DeliveryPolicy:
        return cls(
            retry_delays_s=tuple(_setting("PHM_WEBHOOK_RETRY_DELAYS", DEFAULT_RETRY_DELAYS_S)),
            jitter=float(_setting("PHM_WEBHOOK_JITTER", 0.2)),
            connect_timeout_s=float(_setting("PHM_WEBHOOK_CONNECT_TIMEOUT_S", 3.0)),
            read_timeout_s=float(_setting("PHM_WEBHOOK_TIMEOUT_S", 10.0)),
            lease_s=float(_setting("PHM_WEBHOOK_LEASE_S", 60.0)),
            max_retry_after_s=float(_setting("PHM_WEBHOOK_MAX_RETRY_AFTER_S", 3600.0)),
        )

    @property
    def max_attempts(self) -> int:
        return 1 + len(self.retry_delays_s)

    def backoff(self, attempts_made: int, rng: random.Random) -> float:
        base = self.retry_delays_s[min(attempts_made, len(self.retry_delays_s)) - 1]
        return base * rng.uniform(1 - self.jitter, 1 + self.jitter)


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


_OPEN = [DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT]


def _due(now: datetime) -> Q:
    return Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now) | Q(status=DeliveryStatus.IN_FLIGHT, lease_until__lt=now)


def claim_batch(*, worker: str, policy: DeliveryPolicy, limit: int = 32, now: datetime | None = None,
                using: str = "default") -> list[WebhookDelivery]:
    """Claim up to ``limit`` due deliveries, oldest first, each with no open predecessor of the
    same endpoint and order key (so one alarm's events never overtake each other). One
    conditional UPDATE claims them; rows another worker took in between are simply not ours."""
    now = now or timezone.now()
    earlier_open = WebhookDelivery.objects.using(using).filter(
        endpoint=OuterRef("endpoint"), order_key=OuterRef("order_key"), pk__lt=OuterRef("pk"), status__in=_OPEN
    )
    candidates = list(
        WebhookDelivery.objects.using(using)
        .filter(_due(now), endpoint__enabled=True)
        .exclude(Exists(earlier_open))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    if not candidates:
        return []
    lease_until = now + timedelta(seconds=policy.lease_s)
    WebhookDelivery.objects.using(using).filter(_due(now), pk__in=candidates).update(
        status=DeliveryStatus.IN_FLIGHT, lease_until=lease_until, claimed_by=worker, attempts=F("attempts") + 1
    )
    return list(
        WebhookDelivery.objects.using(using)
        .filter(pk__in=candidates, status=DeliveryStatus.IN_FLIGHT, claimed_by=worker, lease_until=lease_until)
        .select_related("message", "endpoint")
        .order_by("pk")
    )


def claim_next(*, worker: str, policy: DeliveryPolicy, now: datetime | None = None, using: str = "default") -> WebhookDelivery | None:
    """Claim the oldest due delivery whose predecessors (same endpoint and order key) are done."""
    claimed = claim_batch(worker=worker, policy=policy, limit=1, now=now, using=using)
    return claimed[0] if claimed else None


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """Parse Retry-After: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())


@dataclass(slots=True)
class AttemptOutcome:
    status_code: int | None
    error: str
    outcome: str  # delivered / retry / dead / disabled
    next_attempt_at: datetime | None


@dataclass(slots=True)
class HttpResult:
    started: datetime
    duration_ms: float
    status_code: int | None
    error: str
    retry_after: float | None


def post(delivery: WebhookDelivery, *, session: requests.Session, policy: DeliveryPolicy) -> HttpResult:
    """Sign and POST one claimed delivery (no database access: safe in a thread)."""
    message, endpoint = delivery.message, delivery.endpoint
    body = json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False)
    started = timezone.now()
    headers = signed_headers(secret=endpoint.secret, message_id=message.message_id, body=body, at=started)
    headers["user-agent"] = "phm-platform-webhooks/1"
    clock = time.perf_counter()
    status_code, error, retry_after = None, "", None
    try:
        response = session.post(
            endpoint.url, data=body.encode(), headers=headers,
            timeout=(policy.connect_timeout_s, policy.read_timeout_s), allow_redirects=False,
        )
        status_code = response.status_code
        retry_after = retry_after_seconds(response.headers.get("Retry-After"), now=started)
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}: {response.text[:200]}"
        response.close()
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    return HttpResult(started, (time.perf_counter() - clock) * 1000, status_code, error, retry_after)


def send(delivery: WebhookDelivery, *, session: requests.Session, policy: DeliveryPolicy, worker: str,
         rng: random.Random, using: str = "default") -> AttemptOutcome:
    """Make one signed request for a claimed delivery and record what happened."""
    http = post(delivery, session=session, policy=policy)
    outcome = _decide(delivery, http.status_code, http.retry_after, policy=policy, rng=rng)
    _record(delivery, outcome, error=http.error, started=http.started, duration_ms=http.duration_ms, worker=worker, using=using)
    return outcome


def _decide(delivery: WebhookDelivery, status_code: int | None, retry_after: float | None, *,
            policy: DeliveryPolicy, rng: random.Random) -> AttemptOutcome:
    if status_code is not None and 200 <= status_code < 300:
        return AttemptOutcome(status_code, "", "delivered", None)
    if status_code == 410:
        return AttemptOutcome(status_code, "", "disabled", None)
    if delivery.attempts >= policy.max_attempts:
        return AttemptOutcome(status_code, "", "dead", None)
    delay = policy.backoff(delivery.attempts, rng)
    if retry_after is not None:
        delay = min(retry_after, policy.max_retry_after_s)  # the receiver said when: do as asked
    return AttemptOutcome(status_code, "", "retry", timezone.now() + timedelta(seconds=delay))


def _record(delivery: WebhookDelivery, outcome: AttemptOutcome, *, error: str, started: datetime, duration_ms: float,
            worker: str, using: str) -> None:
    outcome.error = error
    DeliveryAttempt.objects.using(using).create(
        delivery=delivery, number=delivery.attempts, started_at=started, duration_ms=duration_ms, status_code=outcome.status_code,
        error=error, outcome=outcome.outcome, next_attempt_at=outcome.next_attempt_at, worker=worker,
    )
    _update_delivery(delivery, outcome, error=error, started=started, worker=worker, using=using)


def _update_delivery(delivery: WebhookDelivery, outcome: AttemptOutcome, *, error: str, started: datetime, worker: str, using: str) -> None:
    mine = WebhookDelivery.objects.using(using).filter(pk=delivery.pk, status=DeliveryStatus.IN_FLIGHT, claimed_by=worker)
    common = {"last_status_code": outcome.status_code, "last_error": error, "lease_until": None}
    if outcome.outcome == "delivered":
        # Even when our lease lapsed and another worker took it over, a 2xx is final.
        WebhookDelivery.objects.using(using).filter(pk=delivery.pk).exclude(status=DeliveryStatus.DELIVERED).update(
            status=DeliveryStatus.DELIVERED, delivered_at=timezone.now(), **common
        )
    elif outcome.outcome == "disabled":
        WebhookEndpoint.objects.using(using).filter(pk=delivery.endpoint_id).update(
            enabled=False, disabled_reason=f"receiver answered 410 Gone at {started.isoformat()}", updated_at=timezone.now()
        )
        mine.update(status=DeliveryStatus.CANCELLED, **common)
    elif outcome.outcome == "dead":
        mine.update(status=DeliveryStatus.DEAD, **common)
        log.warning("webhook %s to %s is a dead letter after %d attempts: %s", delivery.message.message_id, redact_url(delivery.endpoint.url), delivery.attempts, error)
    else:
        mine.update(status=DeliveryStatus.PENDING, next_attempt_at=outcome.next_attempt_at, **common)


def _record_batch(batch: list[WebhookDelivery], responses: list[HttpResult], outcomes: list[AttemptOutcome], *,
                  worker: str, using: str) -> None:
    """Record a batch in one transaction: the attempt rows in one insert, the (common) delivered
    outcomes in one update, the rest one by one."""
    with transaction.atomic(using=using):
        DeliveryAttempt.objects.using(using).bulk_create([
            DeliveryAttempt(
                delivery=d, number=d.attempts, started_at=h.started, duration_ms=h.duration_ms, status_code=o.status_code,
                error=h.error, outcome=o.outcome, next_attempt_at=o.next_attempt_at, worker=worker,
            )
            for d, h, o in zip(batch, responses, outcomes, strict=True)
        ])
        delivered_by_code: dict[int | None, list[int]] = {}
        for d, o in zip(batch, outcomes, strict=True):
            if o.outcome == "delivered":
                delivered_by_code.setdefault(o.status_code, []).append(d.pk)
        for code, pks in delivered_by_code.items():
            # Even when a lease lapsed and another worker took one over, a 2xx is final.
            WebhookDelivery.objects.using(using).filter(pk__in=pks).exclude(status=DeliveryStatus.DELIVERED).update(
                status=DeliveryStatus.DELIVERED, delivered_at=timezone.now(), last_status_code=code, last_error="", lease_until=None
            )
        for d, h, o in zip(batch, responses, outcomes, strict=True):
            if o.outcome != "delivered":
                _update_delivery(d, o, error=h.error, started=h.started, worker=worker, using=using)


@dataclass(slots=True)
class DrainResult:
    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    disabled: int = 0


_COUNTER_FOR_OUTCOME = {"delivered": "delivered", "retry": "retrying", "dead": "dead", "disabled": "disabled"}


def deliver_due(*, worker: str | None = None, max_seconds: float = 30.0, policy: DeliveryPolicy | None = None,
                using: str = "default", rng: random.Random | None = None, batch_size: int | None = None,
                concurrency: int | None = None) -> DrainResult:
    """Deliver due messages until none is left or ``max_seconds`` have passed: claim a batch,
    POST it over a small thread pool (one keep-alive session per thread), record the outcomes."""
    worker = worker or default_worker_name()
    policy = policy or DeliveryPolicy.from_settings()
    rng = rng or random.Random()
    batch_size = batch_size or int(_setting("PHM_WEBHOOK_BATCH", 32))
    concurrency = concurrency or int(_setting("PHM_WEBHOOK_CONCURRENCY", 8))
    result = DrainResult()
    deadline = time.monotonic() + max_seconds
    local = threading.local()
    sessions: list[requests.Session] = []

    def post_in_thread(delivery: WebhookDelivery) -> HttpResult:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = egress.guarded_session()
            sessions.append(session)
        return post(delivery, session=session, policy=policy)

    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="webhook") as pool:
            while time.monotonic() < deadline:
                batch = claim_batch(worker=worker, policy=policy, limit=batch_size, using=using)
                if not batch:
                    break
                responses = list(pool.map(post_in_thread, batch))
                outcomes = [_decide(d, h.status_code, h.retry_after, policy=policy, rng=rng) for d, h in zip(batch, responses, strict=True)]
                _record_batch(batch, responses, outcomes, worker=worker, using=using)
                for outcome in outcomes:
                    result.attempted += 1
                    counter = _COUNTER_FOR_OUTCOME[outcome.outcome]
                    setattr(result, counter, getattr(result, counter) + 1)
    finally:
        for session in sessions:
            session.close()
    return result
