"""Reliability checks of issue 3, with numbers:

    python bench/connectors_reliability.py [--seconds 30] [--outage 10] [--rate 2000]

1. **Database outage during an MQTT run.** An ``mqtt_json`` ConnectorDefinition runs through the
   production path (``phm.sources.services.build_supervisor``: SpoolingSink over DatabaseSink,
   status ticks that replay the spool) against a fresh PostgreSQL database. While messages
   flow, the database refuses connections for ``--outage`` seconds (``ALLOW_CONNECTIONS false``
   and every backend of that database terminated: the server side of "kill the connection",
   without stopping a PostgreSQL that other work shares). Afterwards the stored row count is
   compared with the published count.
2. **OPC UA server restart.** An asyncua server runs in a child process that updates a counter
   every 100 ms; it is killed (SIGKILL) mid-run and started again. The connector's readings
   before, during and after, its sessions and the time from the new server to the first new
   reading are reported.

Writes ``bench/results/connectors_reliability.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_ADMIN_URL = os.environ.get("PHM_BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres")
PG_DB = "phm_reliability_connectors"


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def set_database_up(up: bool) -> None:
    admin(f"ALTER DATABASE {PG_DB} ALLOW_CONNECTIONS {'true' if up else 'false'}")
    if not up:
        admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{PG_DB}' AND pid <> pg_backend_pid()")


def mqtt_database_outage(seconds: float, outage: float, rate: float, tags_per_message: int) -> dict:
    import paho.mqtt.client as mqtt
    from django.core.management import call_command
    from paho.mqtt.enums import CallbackAPIVersion

    from phm.assets.models import Area, Equipment, Line, Sensor, Site
    from phm.sources.models import ConnectorDefinition
    from phm.sources.services import build_supervisor
    from phm.telemetry.models import Reading as ReadingRow

    call_command("migrate", verbosity=0)
    site = Site.objects.create(code="rel", name="Reliability")
    line = Line.objects.create(area=Area.objects.create(site=site, code="a", name="A"), code="l", name="L")
    equipment = Equipment.objects.create(line=line, tag="R-1", name="Pump")
    tags = [f"S{i:03d}" for i in range(tags_per_message)]
    Sensor.objects.bulk_create(Sensor(equipment=equipment, tag=f"R-1.{t}", name=t) for t in tags)
    prefix = f"rel/{uuid.uuid4().hex[:6]}"
    definition = ConnectorDefinition.objects.create(
        name="mqtt-reliability",
        kind="mqtt_json",
        config={"broker": {"client_id": f"phm-rel-{prefix[-6:]}"}, "mappings": [{"topic": f"{prefix}/+", "tag": "R-1.{key}"}]},
    )
    supervisor, spools = build_supervisor([definition], tick_seconds=0.5)
    spool = spools[definition.name]
    supervisor.start()
    connector = supervisor.connectors[0]
    while not connector.status().connected:
        time.sleep(0.05)

    publisher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"rel-pub-{uuid.uuid4().hex[:6]}")
    publisher.max_inflight_messages_set(1000)
    publisher.connect("127.0.0.1", 1883)
    publisher.loop_start()
    start = datetime(2026, 2, 1, tzinfo=UTC)
    n_messages = int(seconds * rate / tags_per_message)
    interval = tags_per_message / rate
    outage_at, outage_end = seconds * 0.3, seconds * 0.3 + outage
    events = []
    began = time.perf_counter()
    infos = []
    down = False
    for i in range(n_messages):
        elapsed = time.perf_counter() - began
        if not down and elapsed >= outage_at and elapsed < outage_end:
            set_database_up(False)
            down = True
            events.append({"t": round(elapsed, 2), "event": "database down (connections refused, backends killed)"})
        if down and elapsed >= outage_end:
            set_database_up(True)
            down = False
            events.append({"t": round(elapsed, 2), "event": "database up"})
        due = began + i * interval
        if due > time.perf_counter():
            time.sleep(due - time.perf_counter())
        ts = start + timedelta(milliseconds=i)
        payload = json.dumps({"ts": ts.isoformat(), "values": {t: float(i) for t in tags}})
        infos.append(publisher.publish(f"{prefix}/batch", payload, qos=1))
    if down:
        set_database_up(True)
        events.append({"t": round(time.perf_counter() - began, 2), "event": "database up"})
    for info in infos:
        info.wait_for_publish(60)
    published = n_messages * tags_per_message
    max_spooled = spool.spooled_batches
    deadline = time.monotonic() + 120
    stored = 0
    while time.monotonic() < deadline:
        try:
            stored = ReadingRow.objects.filter(sensor__tag__startswith="R-1.").count()
        except Exception:
            from django.db import close_old_connections

            close_old_connections()
        if stored >= published and not spool.pending:
            break
        time.sleep(0.5)
    caught_up = time.perf_counter() - began
    supervisor.stop()
    publisher.disconnect()
    publisher.loop_stop()
    status = connector.status()
    return {
        "published_points": published,
        "stored_rows": stored,
        "equal": stored == published,
        "messages": n_messages,
        "spooled_batches": max_spooled,
        "replayed_batches": spool.replayed_batches,
        "spool_pending_at_end": spool.pending,
        "connector_accepted": status.accepted,
        "connector_duplicate": status.duplicate,
        "connector_rejected": status.rejected,
        "seconds_until_all_stored": round(caught_up, 1),
        "events": events,
        "last_spool_error": spool.last_error,
    }


SERVER_CODE = r"""
import asyncio, sys, time
from asyncua import Server, ua
async def main(port):
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/phm/")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace("urn:phm:reliability")
    obj = await server.nodes.objects.add_object(ua.NodeId("Line1", idx), "Line1")
    counter = await obj.add_variable(ua.NodeId("Line1.Counter", idx), "Counter", 0.0)
    async with server:
        print("ready", flush=True)
        while True:
            await counter.write_value(round(time.time() * 10) / 10)  # wall clock in 0.1 s steps
            await asyncio.sleep(0.1)
asyncio.run(main(int(sys.argv[1])))
"""


def start_opcua_server(port: int) -> tuple[subprocess.Popen, float]:
    began = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", SERVER_CODE, str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError("OPC UA server did not start")
    return process, time.perf_counter() - began


def opcua_restart(run_before: float, down: float, run_after: float) -> dict:
    from connectors.opcua import NodeSpec, OpcUaConnector
    from connectors.sink import MemorySink

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server, startup = start_opcua_server(port)
    sink = MemorySink()
    connector = OpcUaConnector(
        "opcua-reliability",
        sink,
        url=f"opc.tcp://127.0.0.1:{port}/phm/",
        nodes=[NodeSpec("ns=2;s=Line1.Counter", "L1.counter")],
        publishing_interval_ms=100,
        sampling_interval_ms=50,
        timeout_s=2,
    )
    stop = threading.Event()
    thread = threading.Thread(target=connector.run, args=(stop,), daemon=True)
    thread.start()
    time.sleep(run_before)
    before = len(sink.readings)
    server.send_signal(signal.SIGKILL)
    server.wait()
    killed_at = datetime.now(UTC)
    time.sleep(down)
    during = len(sink.readings) - before
    server, restart_startup = start_opcua_server(port)
    up_at = time.perf_counter()
    first_new = None
    while time.perf_counter() - up_at < run_after:
        newer = [r for r in sink.readings.values() if r.ts > killed_at]
        if newer and first_new is None:
            first_new = time.perf_counter() - up_at
        time.sleep(0.05)
    after = len([r for r in sink.readings.values() if r.ts > killed_at])
    stop.set()
    thread.join(10)
    server.send_signal(signal.SIGKILL)
    server.wait()
    status = connector.status()
    return {
        "readings_before_kill": before,
        "readings_while_down": during,
        "readings_after_restart": after,
        "sessions": connector.sessions,
        "reconnects": status.reconnects,
        "server_down_s": down,
        "server_restart_s": round(restart_startup, 1),
        "first_reading_after_server_up_s": round(first_new, 2) if first_new is not None else None,
        "resumed": after > 0 and connector.sessions >= 2,
        "last_error": status.last_error,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the MQTT run")
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the database refuses connections")
    parser.add_argument("--rate", type=float, default=2000.0, help="points/s published")
    parser.add_argument("--tags", type=int, default=100, help="tags per message")
    parser.add_argument("--skip-mqtt", action="store_true")
    parser.add_argument("--skip-opcua", action="store_true")
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("asyncua").setLevel(logging.WARNING)  # its INFO logs every notification
    results: dict = {"when": datetime.now(UTC).isoformat()}
    workdir = Path(tempfile.mkdtemp(prefix="phm-reliability-"))
    os.environ["PHM_SPOOL_DIR"] = str(workdir / "spool")
    os.environ["PHM_DATA_ROOT"] = str(workdir)
    if not args.skip_mqtt:
        admin(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        admin(f"CREATE DATABASE {PG_DB}")
        os.environ["DJANGO_SETTINGS_MODULE"] = "phm.settings"
        os.environ["DATABASE_URL"] = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{PG_DB}"
        import django

        django.setup()
        logging.getLogger("asyncua").setLevel(logging.WARNING)
        results["mqtt_database_outage"] = mqtt_database_outage(args.seconds, args.outage, args.rate, args.tags)
        print(json.dumps(results["mqtt_database_outage"], indent=1), flush=True)
        from django.db import connections

        connections.close_all()
        admin(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
    if not args.skip_opcua:
        results["opcua_server_restart"] = opcua_restart(run_before=5, down=5, run_after=20)
        print(json.dumps(results["opcua_server_restart"], indent=1), flush=True)
    out = ROOT / "bench" / "results" / "connectors_reliability.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
