"""Alert latency and webhook throughput on the demo plant.

1. Latency: the demo plant's P-101 streams simulated 1 Hz readings (``connectors.simulator``)
   with a bearing-wear fault injected in each trial; a PCA detector trained on healthy history
   scores them through Celery beat + a worker; the reference receiver records each signed
   ``alarm.raised``. Latency = receipt time − wall time the activating step's readings were
   ingested (committed). Measured over the no-server default broker and over Redis.
2. Throughput: alarm events queued in the outbox, delivered by one in-process worker to a local
   receiver, against a baseline of the same signed POSTs sent without the platform (no database).

    python bench/alerts.py [--trials 15] [--events 2000] [--skip-redis]

Writes bench/results/alerts.json. Runs on its own temporary SQLite database.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PHM_DATA_ROOT", tempfile.mkdtemp(prefix="phm-bench-alerts-"))
os.environ.pop("DATABASE_URL", None)  # the bench's own SQLite under PHM_DATA_ROOT
os.environ["DJANGO_SETTINGS_MODULE"] = "phm.settings"
os.environ.setdefault("PHM_LOG_LEVEL", "WARNING")
# The bench's receiver listens on 127.0.0.1; loopback is no webhook destination unless allowed.
os.environ["PHM_WEBHOOK_ALLOWED_NETWORKS"] = "127.0.0.0/8"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from bench._stats import percentile  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/12"
EQUIPMENT = "P-101"
STEP_WALL_S = 0.25  # one simulated second streamed every 0.25 s of wall time (4x real time)


def setup_plant_and_detector(history_s: int) -> tuple[object, object, datetime]:
    from connectors.simulator import DEMO_PLANT, PlantSimulator
    from phm.analytics import training
    from phm.analytics.models import DetectorConfig
    from phm.assets.models import Equipment
    from phm.assets.services import create_plant
    from phm.telemetry.services import ingest_readings

    call_command("migrate", verbosity=0)
    create_plant(plant=DEMO_PLANT)
    pump = Equipment.objects.get(tag=EQUIPMENT)
    simulator = PlantSimulator(DEMO_PLANT, seed=11)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    readings, _ = simulator.generate(start, start + timedelta(seconds=history_s))
    prefix = f"{EQUIPMENT}."
    ingest_readings(readings=[r for r in readings if r.sensor.startswith(prefix)], channel="bench")
    config = DetectorConfig.objects.create(equipment=pump, name="pca-bench", method="pca", params={"smooth": 1}, stride_s=1, window_s=10, off_delay_s=5,
        # The bench times the pipeline, not the detector: an alarm limit well above the slow
        # post-repair thermal tail (scores 1-5) and far below the fault (scores in the hundreds)
        # gives each trial exactly one raise and a clean return to normal.
        threshold_kind="fixed", threshold_value=10.0,
    )
    config.sensors.set(pump.sensors.all())
    job = training.start_training(config=config, train_start=start, train_end=start + timedelta(seconds=history_s))
    job = training.run_training(job_id=job.pk)
    if job.status != "succeeded":
        raise SystemExit(f"training failed: {job.error}")
    return simulator, config, start + timedelta(seconds=history_s)


def start_celery(kind: str, broker_url: str | None, log_dir: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("PHM_BROKER_URL", None)
    if broker_url:
        env["PHM_BROKER_URL"] = broker_url
    if kind == "worker":
        args = ["worker", "-Q", "cpu,gpu", "--pool=solo", "-n", f"bench-{int(time.time())}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    else:
        args = ["beat", "--schedule", str(log_dir / "beat-schedule")]
    log = open(log_dir / f"{kind}.log", "w")
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "phm", *args, "--loglevel=INFO"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(log_path: Path, line: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log_path.exists() and line in log_path.read_text():
            return
        time.sleep(0.2)
    raise SystemExit(f"{log_path.name} not ready:\n{log_path.read_text()[-2000:]}")


def _seconds(simulator, start: datetime, seconds: int, prefix: str):
    """The simulator's readings of one equipment in [start, start + seconds), grouped per second."""
    readings, _ = simulator.generate(start, start + timedelta(seconds=seconds))
    by_second: dict[datetime, list] = {}
    for reading in readings:
        if reading.sensor.startswith(prefix):
            by_second.setdefault(reading.ts, []).append(reading)
    return sorted(by_second.items())


def _wait_cleared(config, *, timeout_s: float) -> bool:
    """Wait until the scoring worker has caught up and the condition is no longer active."""
    from phm.alarms.models import AlarmPoint
    from phm.analytics.scoring import complete_until

    deadline = time.monotonic() + timeout_s
    horizon = complete_until(config=config, sensors=list(config.sensors.all()))
    while time.monotonic() < deadline:
        config.refresh_from_db()
        point = AlarmPoint.objects.filter(equipment=config.equipment, source=config.alarm_source).first()
        if config.scored_until is not None and config.scored_until >= horizon:
            return point is None or not point.condition_active
        time.sleep(0.2)
    return False


def latency_run(*, label: str, broker_url: str | None, simulator, config, sim_cursor: datetime, trials: int) -> tuple[dict, datetime]:
    from connectors.simulator import ScheduledFault
    from phm.alarms import services
    from phm.alarms.models import OPEN_STATES, Alarm, AlarmState, WebhookEndpoint, new_webhook_secret
    from phm.alarms.receiver import WebhookReceiver
    from phm.telemetry.models import FaultInjection
    from phm.telemetry.services import ingest_readings

    log_dir = Path(tempfile.mkdtemp(prefix=f"bench-{label}-"))
    secret = new_webhook_secret()
    WebhookEndpoint.objects.all().delete()
    prefix = f"{EQUIPMENT}."
    ingested_at: dict[datetime, float] = {}
    latencies: list[float] = []
    missed = 0
    with WebhookReceiver(secret) as receiver:
        WebhookEndpoint.objects.create(url=receiver.url, secret=secret, events=["alarm.raised"])
        beat, worker = start_celery("beat", broker_url, log_dir), start_celery("worker", broker_url, log_dir)
        try:
            wait_ready(log_dir / "worker.log", "ready.")
            wait_ready(log_dir / "beat.log", "beat: Starting")
            for trial in range(trials):
                lead, fault_s = 10, 40
                fault_start = sim_cursor + timedelta(seconds=lead)
                fault = ScheduledFault(EQUIPMENT, "bearing_wear", fault_start, fault_start + timedelta(seconds=fault_s), severity=3.0)
                simulator.set_faults([fault])
                FaultInjection.objects.create(equipment=config.equipment, fault=fault.kind, start=fault.start, end=fault.end, severity=fault.severity, source="bench")
                seen = len(receiver.state.accepted)
                # Paced stream (one simulated second per STEP_WALL_S) through the fault: this is what is timed.
                for second, batch in _seconds(simulator, sim_cursor, lead + fault_s, prefix):
                    tick = time.monotonic()
                    ingest_readings(readings=batch, channel="bench")
                    ingested_at[second] = time.time()
                    time.sleep(max(0.0, STEP_WALL_S - (time.monotonic() - tick)))
                sim_cursor += timedelta(seconds=lead + fault_s)
                deadline = time.monotonic() + 10
                while len(receiver.state.accepted) == seen and time.monotonic() < deadline:
                    time.sleep(0.05)
                new = receiver.state.accepted[seen:]
                if not new:
                    missed += 1
                for received in new:
                    # event_at: the sample that (re-)activated the alarm, i.e. the first anomalous step.
                    activated_at = datetime.fromisoformat(received.body["data"]["event_at"].replace("Z", "+00:00"))
                    if activated_at in ingested_at:
                        latencies.append(received.received_at - ingested_at[activated_at])
                # Recovery (not timed): healthy data in bulk until the condition has cleared, then
                # acknowledge, so the next trial raises a fresh alarm.
                for _ in range(5):
                    simulator.set_faults([])
                    ingest_readings(readings=[r for _, batch in _seconds(simulator, sim_cursor, 120, prefix) for r in batch], channel="bench")
                    sim_cursor += timedelta(seconds=120)
                    if _wait_cleared(config, timeout_s=6):
                        break
                for alarm in Alarm.objects.filter(state__in=OPEN_STATES):
                    if alarm.state in (AlarmState.ACTIVE_UNACK, AlarmState.RTN_UNACK):
                        services.acknowledge(alarm_id=alarm.pk, comment="bench")
                print(f"  [{label}] trial {trial + 1}/{trials}: {len(new)} raised, latency {[round(x, 2) for x in latencies[-len(new):]] if new else 'missed'}", flush=True)
        finally:
            for process in (worker, beat):
                process.terminate()
                process.wait(timeout=30)
    summary = {
        "broker": label, "trials": trials, "alarms": len(latencies), "missed_trials": missed,
        "p50_s": round(percentile(latencies, 50), 3), "p99_s": round(percentile(latencies, 99), 3),
        "max_s": round(max(latencies), 3) if latencies else None, "mean_s": round(statistics.mean(latencies), 3) if latencies else None,
        "latencies_s": [round(x, 3) for x in latencies],
    }
    return summary, sim_cursor


def throughput_run(*, events: int) -> dict:
    """Deliver ``events`` queued alarm events to a receiver running in its own process (as a SCADA
    gateway would), against a baseline of the same signed POSTs with no platform around them."""
    import socket

    import requests

    from phm.alarms.delivery import DeliveryPolicy, deliver_due
    from phm.alarms.models import OutboxMessage, WebhookDelivery, WebhookEndpoint, new_webhook_secret
    from phm.alarms.services import AlarmPolicy, Sample, evaluate_scores
    from phm.alarms.signing import signed_headers
    from phm.assets.models import Equipment

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    secret = new_webhook_secret()
    # The receiver prints one line per event: into a file, since an unread pipe would fill and stall it.
    receiver_log = Path(tempfile.mkdtemp(prefix="bench-receiver-")) / "receiver.log"
    log_file = open(receiver_log, "w")
    receiver = subprocess.Popen(
        [sys.executable, "-m", "phm.alarms.receiver", "--port", str(port), "--secret", secret],
        cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_ready(receiver_log, "listening", timeout_s=60)
        url = f"http://127.0.0.1:{port}/hooks/scada"
        WebhookEndpoint.objects.all().delete()
        WebhookEndpoint.objects.create(url=url, secret=secret)
        equipment = list(Equipment.objects.order_by("tag"))
        first_id = OutboxMessage.objects.order_by("-id").values_list("id", flat=True).first() or 0
        t0 = datetime.now(UTC) - timedelta(days=1)
        per_point = 20  # raise / return pairs per alarm point
        clock = time.perf_counter()
        for i in range(max(1, events // per_point)):
            samples = [Sample(t0 + timedelta(seconds=k), s) for k, s in enumerate([2.0, 0.0] * (per_point // 2))]
            evaluate_scores(equipment=equipment[i % len(equipment)], source=f"bench:{i}", samples=samples, policy=AlarmPolicy(threshold=1.0))
        queue_s = time.perf_counter() - clock
        messages = list(OutboxMessage.objects.filter(id__gt=first_id).order_by("id"))
        n = len(messages)
        clock = time.perf_counter()
        result = deliver_due(worker="bench", policy=DeliveryPolicy(), max_seconds=600)
        platform_s = time.perf_counter() - clock
        delivered = WebhookDelivery.objects.filter(message__in=messages, status="delivered").count()
        # Baseline: the same signed POSTs to the same receiver, one keep-alive session, no database.
        bodies = [(m.message_id + "-baseline", json.dumps(m.payload, separators=(",", ":"))) for m in messages]
        clock = time.perf_counter()
        with requests.Session() as session:
            for message_id, body in bodies:
                session.post(url, data=body.encode(), headers=signed_headers(secret=secret, message_id=message_id, body=body), timeout=10).close()
        baseline_s = time.perf_counter() - clock
    finally:
        receiver.terminate()
        receiver.wait(timeout=30)
        log_file.close()
    received_ids = [json.loads(line)["webhook-id"] for line in receiver_log.read_text().splitlines() if line.startswith("{")]
    platform_ids = [i for i in received_ids if not i.endswith("-baseline")]
    return {
        "events": n, "delivered": delivered, "attempted": result.attempted,
        "received_by_receiver": len(platform_ids), "duplicates_at_receiver": len(platform_ids) - len(set(platform_ids)),
        "queue_events_per_s": round(n / queue_s, 1),
        "platform_events_per_s": round(n / platform_s, 1), "baseline_posts_per_s": round(n / baseline_s, 1),
        "platform_vs_baseline": round((n / platform_s) / (n / baseline_s), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--history-s", type=int, default=7200)
    parser.add_argument("--skip-redis", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    simulator, config, sim_cursor = setup_plant_and_detector(args.history_s)
    print(f"trained {config} on {args.history_s} s of healthy demo-plant history", flush=True)
    runs = []
    summary, sim_cursor = latency_run(label="default (filesystem, no server)", broker_url=None, simulator=simulator, config=config, sim_cursor=sim_cursor, trials=args.trials)
    runs.append(summary)
    if not args.skip_redis:
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        summary, sim_cursor = latency_run(label="redis", broker_url=REDIS_URL, simulator=simulator, config=config, sim_cursor=sim_cursor, trials=args.trials)
        runs.append(summary)
        redis.Redis.from_url(REDIS_URL).flushdb()
    out = REPO / "bench" / "results" / "alerts.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"bench": "alerts", "partial": "latency only", "latency": runs}, indent=2))  # kept if throughput fails
    throughput = throughput_run(events=args.events)
    result = {
        "bench": "alerts", "when": datetime.now(UTC).isoformat(), "equipment": EQUIPMENT, "fault": "bearing_wear severity 3, 40 s",
        "stream": f"1 Hz simulated, streamed at {1 / STEP_WALL_S:g}x real time", "scoring_tick_s": os.environ.get("PHM_SCORING_TICK_S", "1.0"),
        "latency": runs, "throughput": throughput, "machine": f"{os.cpu_count()} CPUs shared with other jobs", "seconds": round(time.perf_counter() - started, 1),
    }
    out.write_text(json.dumps(result, indent=2))
    print("\nfirst anomalous reading ingested -> signed webhook received")
    for run in runs:
        print(f"  {run['broker']:34s} p50 {run['p50_s']:.2f} s  p99 {run['p99_s']:.2f} s  max {run['max_s']} s  ({run['alarms']} alarms, {run['missed_trials']} trials missed)")
    if len(runs) == 2 and runs[1]["p50_s"]:
        print(f"  redis / default p50 ratio: {runs[1]['p50_s'] / runs[0]['p50_s']:.2f}")
    t = throughput
    print(f"\nwebhook delivery: {t['platform_events_per_s']} events/s delivered ({t['delivered']}/{t['events']}, one worker) vs "
          f"{t['baseline_posts_per_s']} signed POSTs/s without the platform: ratio {t['platform_vs_baseline']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
