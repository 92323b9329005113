"""MQTT connector end to end: publish -> Mosquitto -> MqttJsonConnector -> DatabaseSink -> committed rows.

    python bench/connectors.py [--points 100000] [--rate 20000] [--seconds 5] [--skip-postgres]

For SQLite (WAL, fresh file) and PostgreSQL (a fresh database on the local server), with 1 and
with 100 tags per message (QoS 1), it measures

* **max**: points/s when one Python publisher (a separate process, like a real device)
  publishes as fast as it can, from the first publish to the commit of the last row;
* **paced**: publishing at ``--rate`` points/s for ``--seconds``, the latency from each
  message's publish to the commit of its rows (p50/p99) and the rate actually stored;
* **max and paced, C publisher** (one tag per message, when gcc and libmosquitto-dev are there):
  ``bench/mqtt_pub.c`` publishes flat out or at ``--rate`` with little CPU, so the rate and the
  latency are the connector's;
* **drain**: the messages are published while the connector is offline (its persistent session
  queues them in the broker), then it starts and empties the queue: the connector's own rate,
  independent of how fast one Python publisher on the same two cores can publish (with one tag
  per message the publisher itself is the limit of *max*);
* **baseline**: ``ingest_readings`` on the same readings without MQTT, in the same run (the
  ceiling the connector can reach); ratios are connector / baseline.

Rows are counted in the database at the end: stored == published is checked. Writes
``bench/results/connectors.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _django import make_sensors as _make_sensors, open_databases, recreate_postgres_database  # noqa: E402

PG_BENCH_DB = "phm_bench_connectors"
MAX_OUTSTANDING = 30_000
N_SENSORS = 100
BROKER = ["127.0.0.1", 1883]
# Mosquitto's default max_queued_messages (1000 per client) drops QoS 1 messages for a
# subscriber that falls behind a burst; a plant broker for a historian link is configured
# without that cap, and so is the private broker this bench starts (the shared one is left alone).
PRIVATE_BROKER_CONF = """listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_inflight_messages 1000
set_tcp_nodelay true
"""


def start_private_broker(workdir: Path):
    import shutil
    import subprocess

    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = workdir / "mosquitto.conf"
    conf.write_text(PRIVATE_BROKER_CONF.format(port=port))
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("private mosquitto did not start")


def make_sensors(alias: str) -> list[str]:
    """Sensors M-1.S000 ...; returns the short names the MQTT topics use."""
    names = [f"S{i:03d}" for i in range(N_SENSORS)]
    _make_sensors(alias, site_code="benchc", equipment_tag="M-1", names=names)
    return names


class TimingSink:
    """Wraps the DatabaseSink and notes when each reading's transaction committed."""

    def __init__(self, wrapped):
        self.wrapped = wrapped
        self.committed: dict[tuple[str, datetime], float] = {}
        self.lock = threading.Lock()

    def write_readings(self, readings):
        result = self.wrapped.write_readings(readings)
        now = time.time()  # wall clock: the publisher is another process
        with self.lock:
            for reading in readings:
                self.committed[(reading.sensor, reading.ts)] = now
        return result

    def write_logs(self, records):
        return self.wrapped.write_logs(records)

    def write_images(self, records):
        return self.wrapped.write_images(records)


def message_keys(tags_per_message: int, index: int, start: datetime, tags: list[str]) -> tuple[str, list[tuple[str, datetime]]]:
    """Topic suffix and (sensor, ts) keys of message ``index``; every (sensor, ts) is new."""
    if tags_per_message == 1:
        tag = tags[index % len(tags)]
        return tag, [(f"M-1.{tag}", start + timedelta(milliseconds=index // len(tags)))]
    ts = start + timedelta(milliseconds=index)
    return "bulk", [(f"M-1.{tag}", ts) for tag in tags[:tags_per_message]]


def build_c_publisher(workdir: Path) -> Path | None:
    """Compile bench/mqtt_pub.c (libmosquitto): a paced one-tag publisher that costs little CPU.
    One Python paho publisher tops out near 6,600 messages/s here, below the connector's own
    rate, so without it the one-tag latency at 20,000 messages/s cannot be measured on 2 cores."""
    import shutil
    import subprocess

    binary = workdir / "mqtt_pub"
    if not shutil.which("gcc") or not Path("/usr/include/mosquitto.h").exists():
        print("no gcc or libmosquitto-dev (apt-get install libmosquitto-dev): skipping the C-publisher case")
        return None
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(ROOT / "bench" / "mqtt_pub.c"), "-lmosquitto"], check=True)
    return binary


def publish_messages(argv: list[str]) -> int:
    """Child process: publish the messages, paced or flat out, and write each publish time
    (wall clock: parent and child share the machine's clock) to a JSON file."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    prefix, tags_per_message, n_messages, rate, start_iso, out, port = argv
    BROKER[1] = int(port)
    tags_per_message, n_messages, rate = int(tags_per_message), int(n_messages), float(rate)
    start = datetime.fromisoformat(start_iso)
    tags = [f"S{i:03d}" for i in range(N_SENSORS)]
    payloads = []
    for index in range(n_messages):
        suffix, keys = message_keys(tags_per_message, index, start, tags)
        if tags_per_message == 1:
            body = {"ts": keys[0][1].isoformat(), "value": float(index % 1000)}
        else:
            body = {"ts": keys[0][1].isoformat(), "values": {tag: float(index % 1000) for tag in tags[:tags_per_message]}}
        payloads.append((f"{prefix}/{suffix}", json.dumps(body).encode()))
    from connectors.mqtt_client import BufferedClient

    client = BufferedClient(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.on_socket_open = lambda c, u, sock: sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(*BROKER)
    client.loop_start()
    interval = tags_per_message / rate if rate > 0 else 0.0
    times = []
    infos = []
    began = time.perf_counter()
    for index, (topic, payload) in enumerate(payloads):
        if interval:
            delay = began + index * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        if index >= MAX_OUTSTANDING:  # message ids are 16 bits: never have 65,535 unacknowledged
            infos[index - MAX_OUTSTANDING].wait_for_publish(120)
        times.append(time.time())
        infos.append(client.publish(topic, payload, qos=1))
    for info in infos:
        info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()
    Path(out).write_text(json.dumps(times))
    return 0


def start_connector(alias: str, sink, prefix: str, template: str, client_id: str, clean_session: bool):
    from connectors.mqtt import BrokerConfig, MqttJsonConnector, TopicMapping

    connector = MqttJsonConnector(
        f"bench-{alias}",
        sink,
        BrokerConfig(host=BROKER[0], port=BROKER[1], client_id=client_id, clean_session=clean_session, max_batch=20_000),
        [TopicMapping(topic=f"{prefix}/+", tag=template)],
    )
    stop = threading.Event()
    thread = threading.Thread(target=connector.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not connector.status().connected:
        if time.monotonic() > deadline:
            raise RuntimeError("connector did not connect to the broker")
        time.sleep(0.02)
    return connector, stop, thread


def run_case(
    alias: str, tags: list[str], tags_per_message: int, n_points: int, rate: float | None, start: datetime,
    drain: bool = False, publisher_kind: str = "paho",
) -> dict:
    """``drain``: the messages are published while the connector is offline (its persistent
    session queues them in the broker), then the connector starts and empties the queue: the
    connector's own consuming rate, whatever the publisher on this machine can do."""
    import subprocess

    from phm.telemetry.models import Reading as ReadingRow
    from phm.telemetry.sink import DatabaseSink

    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    template = "M-1.{levels[2]}" if tags_per_message == 1 else "M-1.{key}"
    sink = TimingSink(DatabaseSink(channel="bench", using=alias))
    client_id = f"bench-{uuid.uuid4().hex[:8]}"
    connector, stop, thread = start_connector(alias, sink, prefix, template, client_id, clean_session=not drain)
    if drain:  # subscribed in a persistent session; go offline before anything is published
        stop.set()
        thread.join(30)
    n_messages = n_points // tags_per_message
    times_file = Path(tempfile.mkstemp(suffix=".json")[1])
    began = time.time()
    if publisher_kind == "paho":
        command = [sys.executable, __file__, "--publish", prefix, str(tags_per_message), str(n_messages), str(rate or 0), start.isoformat(), str(times_file), str(BROKER[1])]
    else:  # the C publisher (one tag per message): publisher_kind is the path of the binary
        command = [publisher_kind, BROKER[0], str(BROKER[1]), prefix, str(N_SENSORS), str(n_messages), str(rate or 0), str(int(start.timestamp())), str(times_file)]
    publisher = subprocess.Popen(command)
    total_points = n_messages * tags_per_message
    consume_began = None
    if drain:
        publisher.wait(300)
        consume_began = time.time()
        connector, stop, thread = start_connector(alias, sink, prefix, template, client_id, clean_session=False)
    deadline = time.monotonic() + 300
    while (len(sink.committed) < total_points or publisher.poll() is None) and time.monotonic() < deadline:
        time.sleep(0.01)
    publisher.wait(60)
    stop.set()
    thread.join(30)
    publish_times = json.loads(times_file.read_text())
    times_file.unlink()
    published: dict[tuple[str, datetime], float] = {}
    for index, when in enumerate(publish_times):
        for key in message_keys(tags_per_message, index, start, tags)[1]:
            published[key] = when
    latencies = sorted(sink.committed[k] - published[k] for k in published if k in sink.committed)
    last_commit = max(sink.committed.values()) if sink.committed else float("nan")
    end = start + timedelta(days=1)
    stored = ReadingRow.objects.using(alias).filter(sensor__tag__startswith="M-1.", ts__gte=start, ts__lt=end).count()
    status = connector.status()
    first_publish = publish_times[0] if publish_times else began
    if drain:
        latencies = []  # publish-to-commit includes the time offline: not a latency
    return {
        "engine": alias,
        "tags_per_message": tags_per_message,
        "mode": "drain" if drain else "paced" if rate else "max",
        "publisher": "paho" if publisher_kind == "paho" else "c",
        "target_points_per_s": rate,
        "messages": n_messages,
        "points_published": total_points,
        "points_stored": stored,
        "publish_points_per_s": round(total_points / max(publish_times[-1] - first_publish, 1e-9)) if publish_times else None,
        "stored_points_per_s": round(len(sink.committed) / (last_commit - (consume_began or first_publish))),
        "latency_p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "latency_p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1) if latencies else None,
        "rejected": status.rejected,
        "duplicate": status.duplicate,
    }


def baseline(alias: str, tags: list[str], n_points: int, start: datetime, batch: int) -> float:
    from connectors.records import Reading
    from phm.telemetry.services import ingest_readings

    readings = [
        Reading(f"M-1.{tags[i % len(tags)]}", start + timedelta(milliseconds=i // len(tags)), float(i % 1000)) for i in range(n_points)
    ]
    began = time.perf_counter()
    for offset in range(0, len(readings), batch):
        ingest_readings(readings=readings[offset : offset + batch], using=alias)
    return len(readings) / (time.perf_counter() - began)


def broker_up() -> bool:
    try:
        with socket.create_connection(BROKER, timeout=1):
            return True
    except OSError:
        return False


def main(argv: list[str]) -> int:
    if argv[:1] == ["--publish"]:
        return publish_messages(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000, help="points per max-rate case")
    parser.add_argument("--rate", type=float, default=20_000, help="points/s for the paced cases")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each paced case")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--tags", default="1,100", help="tags per message, comma separated")
    parser.add_argument("--no-c-publisher", action="store_true", help="skip the paced one-tag case published by bench/mqtt_pub.c")
    parser.add_argument("--shared-broker", action="store_true", help="use the broker on 1883 (default: start a private one)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="phm-bench-connectors-"))
    broker_process = None
    if args.shared_broker:
        if not broker_up():
            print("no MQTT broker on 127.0.0.1:1883 (mosquitto -d -c /etc/mosquitto/mosquitto.conf)")
            return 2
    else:
        broker_process, BROKER[1] = start_private_broker(workdir)
    try:
        return run_all(args, workdir)
    finally:
        if broker_process is not None:
            broker_process.terminate()
            broker_process.wait(10)


def run_all(args, workdir: Path) -> int:
    with_pg = open_databases(workdir, postgres_database=PG_BENCH_DB, skip_postgres=args.skip_postgres)
    from django.core.management import call_command
    from django.db import connections

    results = []
    baselines = {}
    day = 0
    c_publisher = None if args.no_c_publisher else build_c_publisher(workdir)
    for alias in ["default"] + (["postgres"] if with_pg else []):
        call_command("migrate", database=alias, verbosity=0)
        tags = make_sensors(alias)
        engine = connections[alias].vendor
        day += 1
        baselines[engine] = round(baseline(alias, tags, args.points, datetime(2026, 1, day, tzinfo=UTC), batch=5000))
        for tags_per_message in [int(t) for t in args.tags.split(",")]:
            modes = [("max", "paho"), ("paced", "paho"), ("drain", "paho")]
            if tags_per_message == 1 and c_publisher:
                modes += [("max", str(c_publisher)), ("paced", str(c_publisher))]
            for mode, publisher_kind in modes:
                day += 1
                rate = args.rate if mode == "paced" else None
                points = args.points if rate is None else int(args.rate * args.seconds)
                row = run_case(alias, tags, tags_per_message, points, rate, datetime(2026, 1, day, tzinfo=UTC),
                               drain=mode == "drain", publisher_kind=publisher_kind)
                row["engine"] = engine
                row["baseline_ingest_per_s"] = baselines[engine]
                row["ratio_to_baseline"] = round(row["stored_points_per_s"] / baselines[engine], 3)
                results.append(row)
                print(json.dumps(row), flush=True)
    header = f"{'engine':<11}{'tags/msg':>9}{'mode':>7}{'publisher':>15}{'published':>10}{'stored':>8}{'stored pts/s':>13}{'p50 ms':>8}{'p99 ms':>9}{'baseline/s':>11}{'ratio':>7}"
    print(header)
    for r in results:
        print(
            f"{r['engine']:<11}{r['tags_per_message']:>9}{r['mode']:>7}{r['publisher']:>15}{r['points_published']:>10}{r['points_stored']:>8}"
            f"{r['stored_points_per_s']:>13,}{r['latency_p50_ms'] or 0:>8.1f}{r['latency_p99_ms'] or 0:>9.1f}"
            f"{r['baseline_ingest_per_s']:>11,}{r['ratio_to_baseline']:>7.2f}"
        )
    print(f"broker: {'shared 127.0.0.1:1883' if args.shared_broker else 'private mosquitto (max_queued_messages 0)'}; load average {os.getloadavg()}")
    out = ROOT / "bench" / "results" / "connectors.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(),
                "broker": "shared" if args.shared_broker else "private mosquitto, max_queued_messages 0",
                "load_average": os.getloadavg(),
                "results": results,
                "baselines": baselines,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    if with_pg:
        connections.close_all()
        recreate_postgres_database(PG_BENCH_DB)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
