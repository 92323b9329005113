"""Webhook delivery against a real HTTP receiver on 127.0.0.1 that verifies signatures, dedupes
on webhook-id and misbehaves on purpose."""

from __future__ import annotations

import random
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from phm.alarms import services
from phm.alarms.delivery import DeliveryPolicy, claim_next, deliver_due, retry_after_seconds
from phm.alarms.models import DeliveryAttempt, DeliveryStatus, WebhookDelivery, WebhookEndpoint, new_webhook_secret
from phm.alarms.receiver import Misbehaviour, WebhookReceiver
from phm.alarms.services import AlarmPolicy, Sample

FAST = DeliveryPolicy(retry_delays_s=(0.05, 0.1, 0.2), jitter=0.0, connect_timeout_s=1, read_timeout_s=0.5, lease_s=5)


def raise_and_clear(pump, t0, n_cycles=1):
    """Real alarm events: raise, return to normal, re-raise ... (2 events per cycle)."""
    scores = [2.0, 0.0] * n_cycles
    samples = [Sample(t0 + timedelta(seconds=i), s) for i, s in enumerate(scores)]
    services.evaluate_scores(equipment=pump, source="detector:test", samples=samples, policy=AlarmPolicy(threshold=1.0))


def drain_until(receiver, count, policy=FAST, timeout=10.0, worker="w1"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(receiver.state.accepted) < count:
        deliver_due(worker=worker, policy=policy, max_seconds=2, rng=random.Random(0))
        time.sleep(0.02)


@pytest.fixture
def secret():
    return new_webhook_secret()


def make_endpoint(receiver, secret, **kwargs):
    return WebhookEndpoint.objects.create(url=receiver.url, secret=secret, **kwargs)


def test_event_is_delivered_signed_and_journaled(plant, t0, secret):
    with WebhookReceiver(secret) as receiver:
        endpoint = make_endpoint(receiver, secret)
        raise_and_clear(plant[0], t0)
        result = deliver_due(worker="w1", policy=FAST)
    assert result.delivered == 2 and receiver.state.rejected == []
    assert [r.body["type"] for r in receiver.state.accepted] == ["alarm.raised", "alarm.returned_to_normal"]
    assert receiver.state.accepted[0].body["data"]["equipment"]["path"] == "north/water/ps1/P-101"
    delivery = WebhookDelivery.objects.filter(endpoint=endpoint).first()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.last_status_code == 204
    assert list(DeliveryAttempt.objects.filter(delivery=delivery).values_list("outcome", flat=True)) == ["delivered"]


def test_wrong_secret_is_rejected_by_receiver_and_retried(plant, t0, secret):
    with WebhookReceiver(secret) as receiver:
        make_endpoint(receiver, new_webhook_secret())
        raise_and_clear(plant[0], t0)
        deliver_due(worker="w1", policy=FAST)
    assert receiver.state.accepted == [] and receiver.state.rejected[0][0] == 401
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).count() == 2


def test_server_errors_are_retried_with_growing_delays_until_delivered(plant, t0, secret):
    failures = {"left": 2}

    def fail_twice(message_id, body, number):
        if failures["left"] > 0:
            failures["left"] -= 1
            return Misbehaviour(status=500)
        return None

    with WebhookReceiver(secret, misbehave=fail_twice) as receiver:
        endpoint = make_endpoint(receiver, secret)
        raise_and_clear(plant[0], t0)
        drain_until(receiver, 2)
    attempts = list(DeliveryAttempt.objects.filter(delivery__endpoint=endpoint).order_by("id"))
    assert [a.outcome for a in attempts] == ["retry", "retry", "delivered", "delivered"]
    # Each wait counts from the end of its attempt: a slow request under load must not read as a longer delay.
    gaps = [(a.next_attempt_at - a.started_at).total_seconds() - a.duration_ms / 1000 for a in attempts[:2]]
    assert gaps[1] > gaps[0] >= 0.045  # the second retry waits longer than the first (0.1 s vs 0.05 s, no jitter)


def test_timeout_counts_as_failed_attempt(plant, t0, secret):
    slow = {"left": 1}

    def hang_once(message_id, body, number):
        if slow["left"]:
            slow["left"] -= 1
            return Misbehaviour(status=200, hang_s=1.5)  # longer than the 0.5 s read timeout
        return None

    with WebhookReceiver(secret, misbehave=hang_once) as receiver:
        make_endpoint(receiver, secret)
        raise_and_clear(plant[0], t0)
        drain_until(receiver, 2)
    first = DeliveryAttempt.objects.order_by("id").first()
    assert first.outcome == "retry" and "Timeout" in first.error and first.status_code is None
    assert len(receiver.state.accepted) == 2


def test_retry_after_is_honoured(plant, t0, secret):
    def throttle_first(message_id, body, number):
        return Misbehaviour(status=429, retry_after="2") if number == 1 else None

    with WebhookReceiver(secret, misbehave=throttle_first) as receiver:
        make_endpoint(receiver, secret)
        raise_and_clear(plant[0], t0)
        deliver_due(worker="w1", policy=FAST)
    attempt = DeliveryAttempt.objects.get()
    assert attempt.status_code == 429
    assert 1.9 <= (attempt.next_attempt_at - attempt.started_at).total_seconds() <= 3.0  # not the 0.05 s backoff
    assert receiver.state.accepted == []  # the second event waits behind the first: order per alarm


def test_retry_after_http_date_is_parsed():
    now = timezone.now()
    assert retry_after_seconds("120", now=now) == 120
    when = (now + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 85 <= retry_after_seconds(when, now=now) <= 91
    assert retry_after_seconds("soon", now=now) is None


def test_gone_disables_endpoint_and_stops_deliveries(plant, t0, secret):
    with WebhookReceiver(secret, misbehave=lambda *a: Misbehaviour(status=410)) as receiver:
        endpoint = make_endpoint(receiver, secret)
        raise_and_clear(plant[0], t0)
        deliver_due(worker="w1", policy=FAST)
    endpoint.refresh_from_db()
    assert not endpoint.enabled and "410" in endpoint.disabled_reason
    assert receiver.state.requests == 1  # the second event is not sent to a disabled endpoint
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.CANCELLED).count() == 1


def test_dead_letter_after_last_try(plant, t0, secret):
    with WebhookReceiver(secret, misbehave=lambda *a: Misbehaviour(status=503)) as receiver:
        make_endpoint(receiver, secret)
        raise_and_clear(plant[0], t0)
        deadline = time.monotonic() + 5
        while WebhookDelivery.objects.filter(status=DeliveryStatus.DEAD).count() < 2 and time.monotonic() < deadline:
            deliver_due(worker="w1", policy=FAST)
            time.sleep(0.05)
    dead = WebhookDelivery.objects.filter(status=DeliveryStatus.DEAD)
    assert dead.count() == 2 and all(d.attempts == FAST.max_attempts for d in dead)
    assert DeliveryAttempt.objects.filter(outcome="dead").count() == 2


def test_claim_of_crashed_worker_is_retaken_after_its_lease(plant, t0, secret):
    with WebhookReceiver(secret) as receiver:
        make_endpoint(receiver, secret)
        raise_and_clear(plant[0], t0)
        crashed = claim_next(worker="crashed", policy=FAST)  # claimed, then the worker died
        assert claim_next(worker="w2", policy=FAST) is None  # live lease; and the next one waits behind it
        WebhookDelivery.objects.filter(pk=crashed.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
        result = deliver_due(worker="w2", policy=FAST)
    assert result.delivered == 2
    retaken = WebhookDelivery.objects.get(pk=crashed.pk)
    assert retaken.status == DeliveryStatus.DELIVERED and retaken.attempts == 2


def test_events_of_one_alarm_arrive_in_order_despite_failures(plant, t0, secret):
    def flaky(message_id, body, number):
        return Misbehaviour(status=500) if number % 2 == 1 else None

    with WebhookReceiver(secret, misbehave=flaky) as receiver:
        make_endpoint(receiver, secret)
        raise_and_clear(plant[0], t0, n_cycles=3)  # raised, rtn, raised, rtn, raised, rtn
        drain_until(receiver, 6)
    sequences = [r.body["data"]["sequence"] for r in receiver.state.accepted]
    assert len(sequences) == 6 and sequences == sorted(sequences)
    assert receiver.state.duplicates == []


def test_event_filter_limits_what_an_endpoint_receives(plant, t0, secret):
    with WebhookReceiver(secret) as receiver:
        make_endpoint(receiver, secret, events=["alarm.returned_to_normal"])
        raise_and_clear(plant[0], t0)
        deliver_due(worker="w1", policy=FAST)
    assert [r.body["type"] for r in receiver.state.accepted] == ["alarm.returned_to_normal"]
