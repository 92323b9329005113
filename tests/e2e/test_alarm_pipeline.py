"""Alarm pipeline with real parts: Celery workers and beat over the real Redis, the test database
shared with them, and an HTTP receiver on 127.0.0.1 that verifies Standard Webhooks signatures,
dedupes on webhook-id and misbehaves on purpose; one worker is killed mid-delivery."""

from __future__ import annotations

import os
import signal
import time
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.utils import timezone
from kombu import Connection

from phm.alarms import services
from phm.alarms.models import AlarmState, AlarmTransition, OutboxMessage, WebhookDelivery, WebhookEndpoint, new_webhook_secret
from phm.alarms.receiver import Misbehaviour, WebhookReceiver
from phm.alarms.services import AlarmPolicy, Sample
from phm.assets.models import Equipment
from tests.conftest import make_plant
from tests.e2e import workers

REDIS_URL = "redis://127.0.0.1:6379/13"  # the file-ingest e2e test uses 14

FAST_ENV = {
    "PHM_SCORING_TICK_S": "0.5",
    "PHM_WEBHOOK_TICK_S": "0.5",
    "PHM_WEBHOOK_RETRY_DELAYS": "0.3,0.6,1,1.5,2,3,4",
    "PHM_WEBHOOK_TIMEOUT_S": "1",
    "PHM_WEBHOOK_LEASE_S": "3",
    # The receiver listens on 127.0.0.1: loopback is no webhook destination unless allowed.
    "PHM_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
}


@pytest.fixture
def redis_broker():
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis at {REDIS_URL} unreachable: {exc}")
    client.flushdb()  # a fresh queue per run: nothing left over from an earlier run
    yield REDIS_URL
    client.flushdb()


@contextmanager
def celery_processes(*specs: tuple[str, str], broker_url: str, log_dir: Path):
    """Start (kind, name) processes together, wait until all are ready, stop them at the end."""
    started = [workers.CeleryProcess(kind, name=name, broker_url=broker_url, log_dir=log_dir, extra_env=FAST_ENV) for kind, name in specs]
    try:
        for process in started:
            process.wait_ready()
        yield started
    finally:
        for process in started:
            process.stop()


def wait_until(predicate, *, timeout_s: float, what: str, poll_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


# --- reading -> score -> alarm -> signed webhook -> ack -> journal ------------------------------


# About 45 s each (worker start-up, training in a worker); part of the default run because they
# are the only tests of the whole path with real processes. The fast tests in tests/phm/alarms
# cover each behaviour in-process against the same real HTTP receiver.
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_reading_to_signed_webhook_to_ack_over_redis(redis_broker, api_client, tmp_path):
    pytest.importorskip("models.detectors")
    from phm.analytics.models import DetectorConfig, JobStatus, TrainingJob
    from phm.analytics.tasks import train_detector
    from phm.analytics.training import start_training
    from tests.phm.analytics.helpers import healthy_values, ingest

    pump, sensors = make_plant()
    start = timezone.now().replace(microsecond=0) - timedelta(seconds=400)
    ingest(sensors, start, healthy_values(300))
    config = DetectorConfig.objects.create(equipment=pump, name="pca-main", method="pca", params={"smooth": 2}, stride_s=1, window_s=20, scoring_interval_s=0.5)
    config.sensors.set(sensors.values())
    secret = new_webhook_secret()
    with WebhookReceiver(secret) as receiver, ExitStack() as stack:
        WebhookEndpoint.objects.create(url=receiver.url, secret=secret)
        stack.enter_context(celery_processes(("worker", "w1"), ("beat", "beat"), broker_url=redis_broker, log_dir=tmp_path))
        # Training is a Celery task on the cpu queue, sent over Redis.
        job = start_training(config=config, train_start=start, train_end=start + timedelta(seconds=300))
        with Connection(redis_broker) as connection:
            train_detector.apply_async(args=[job.pk], connection=connection, queue="cpu")
        job = wait_until(lambda: TrainingJob.objects.filter(pk=job.pk, status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED]).first(), timeout_s=60, what="training")
        assert job.status == JobStatus.SUCCEEDED, job.error
        # Healthy readings, then the fault: vibration jumps while load does not.
        values = healthy_values(60, seed=7)
        values[30:, 0] += 6.0
        ingest(sensors, start + timedelta(seconds=300), values)
        wait_until(lambda: any(r.body["type"] == "alarm.raised" for r in receiver.state.accepted), timeout_s=30, what="alarm.raised webhook")
        raised = next(r for r in receiver.state.accepted if r.body["type"] == "alarm.raised").body["data"]
        assert raised["equipment"]["path"] == "north/water/ps1/P-101" and raised["source"] == "detector:pca-main"
        assert raised["state"] == AlarmState.ACTIVE_UNACK and raised["score"] > 1.0
        ack = api_client.post(f"/api/v1/alarms/{raised['alarm_id']}/ack", {"comment": "vibration confirmed on site"}, format="json")
        assert ack.status_code == 200
        wait_until(lambda: any(r.body["type"] == "alarm.acknowledged" for r in receiver.state.accepted), timeout_s=20, what="alarm.acknowledged webhook")
    journal = list(AlarmTransition.objects.filter(alarm_id=raised["alarm_id"]).values_list("from_state", "to_state", "actor", "comment"))
    assert journal == [
        (AlarmState.NORMAL, AlarmState.ACTIVE_UNACK, "system", "activated"),
        (AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK, "operator", "vibration confirmed on site"),
    ]
    assert receiver.state.rejected == [] and receiver.state.duplicates == []


# --- exactly once, in order, despite a misbehaving receiver and a killed worker -----------------


def _raise_events(n_equipment: int, cycles: int) -> None:
    """Real alarm events written to the outbox: each pump raises and returns ``cycles`` times."""
    pump, _ = make_plant()
    policy = AlarmPolicy(threshold=1.0)
    t0 = timezone.now() - timedelta(hours=1)
    pumps = [pump] + [Equipment.objects.create(line=pump.line, tag=f"P-{200 + i}", name=f"Pump {i}") for i in range(n_equipment - 1)]
    for equipment in pumps:
        samples = [Sample(t0 + timedelta(seconds=i), score) for i, score in enumerate([2.0, 0.0] * cycles)]
        services.evaluate_scores(equipment=equipment, source="detector:test", samples=samples, policy=policy)


def _kill_sender(victim: dict):
    """Kill the process whose TCP connection this request came on: a worker dying mid-request."""

    def kill(client_address: tuple[str, int]) -> None:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == client_address[1] and conn.pid:
                victim["pid"] = conn.pid
                os.kill(conn.pid, signal.SIGKILL)
                return

    return kill


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_exactly_once_in_order_despite_failures_and_a_killed_worker(redis_broker, tmp_path):
    secret = new_webhook_secret()
    victim: dict = {}

    def misbehave(message_id: str, body: dict, number: int) -> Misbehaviour | None:
        if number == 3:
            victim["id"] = message_id
            # Received, but the worker is killed before it reads the answer: it cannot know.
            return Misbehaviour(status=200, accept_first=True, before_answer=_kill_sender(victim), hang_s=0.5)
        if number in (5, 6):
            return Misbehaviour(status=500)
        if number == 8:
            return Misbehaviour(status=200, hang_s=2)  # longer than the 1 s timeout
        if number == 10:
            return Misbehaviour(status=429, retry_after="1")
        return None

    with WebhookReceiver(secret, misbehave=misbehave) as receiver:
        WebhookEndpoint.objects.create(url=receiver.url, secret=secret)
        _raise_events(n_equipment=4, cycles=3)  # 4 alarms x 6 events, queued before any worker runs
        expected = list(OutboxMessage.objects.order_by("id").values_list("message_id", flat=True))
        with ExitStack() as stack:
            _, w1, w2, w3 = stack.enter_context(
                celery_processes(("beat", "beat"), ("worker", "w1"), ("worker", "w2"), ("worker", "w3"), broker_url=redis_broker, log_dir=tmp_path)
            )
            wait_until(lambda: "pid" in victim, timeout_s=30, what="the worker killed mid-request")
            pid = victim["pid"]
            assert pid in (w1.pid, w2.pid, w3.pid)
            wait_until(lambda: len(receiver.state.accepted) >= len(expected), timeout_s=90, what=f"{len(expected)} deliveries")
            time.sleep(1.0)  # anything still in flight would show up as a duplicate or an extra
    accepted = receiver.state.accepted
    assert sorted(r.message_id for r in accepted) == sorted(expected)  # every event, exactly once after dedupe
    # The killed worker's claims (a batch, some already posted) were redelivered after their lease
    # and deduped by webhook-id; nothing else reached the receiver twice.
    assert victim["id"] in receiver.state.duplicates
    retried = set(WebhookDelivery.objects.filter(attempts__gte=2).values_list("message__message_id", flat=True))
    assert set(receiver.state.duplicates) <= retried
    by_alarm: dict[int, list[int]] = {}
    for received in accepted:
        by_alarm.setdefault(received.body["data"]["alarm_id"], []).append(received.body["data"]["sequence"])
    assert all(seq == sorted(seq) for seq in by_alarm.values()), by_alarm  # in order per alarm
    assert WebhookDelivery.objects.exclude(status="delivered").count() == 0
    retaken = WebhookDelivery.objects.get(message__message_id=victim["id"])
    assert retaken.attempts >= 2 and not retaken.claimed_by.endswith(f":{pid}")  # another worker finished it
    outcomes = set(WebhookDelivery.objects.values_list("attempt_log__status_code", flat=True))
    assert {500, 429}.issubset(outcomes) and None in outcomes  # server errors, throttling and a timeout were all retried
