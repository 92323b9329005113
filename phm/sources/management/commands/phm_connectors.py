"""Run every enabled connector definition under one supervisor until stopped.

    python manage.py phm_connectors [--only NAME ...] [--seconds N] [--tick S] [--reload-seconds S]

Each connector writes through a SpoolingSink (``$PHM_SPOOL_DIR`` or ``var/spool/<name>``) over
the database sink, so a database outage spools to disk and replays in order afterwards.
Statuses are stored every tick (``ConnectorStatus``, shown in the admin and the API). When the
definitions change in the database, the supervisor restarts with the new set.
"""

from __future__ import annotations

import signal
import threading
import time

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Max

from phm.sources.models import ConnectorDefinition
from phm.sources.services import build_supervisor


def _fingerprint(queryset) -> tuple:
    summary = queryset.aggregate(latest=Max("updated_at"))
    return (summary["latest"], tuple(queryset.values_list("id", flat=True)))


class Command(BaseCommand):
    help = "Run the enabled connectors (MQTT, Sparkplug B, OPC UA, Modbus, log files, image folders)."

    def add_arguments(self, parser):
        parser.add_argument("--only", action="append", default=[], help="Run only this connector (repeatable).")
        parser.add_argument("--seconds", type=float, default=0, help="Stop after this many seconds (0: run until signalled).")
        parser.add_argument("--tick", type=float, default=2.0, help="Seconds between status writes and spool replays.")
        parser.add_argument("--reload-seconds", type=float, default=10.0, help="How often to look for changed definitions.")

    def handle(self, *args, **options):
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():  # signals only reach the main thread
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
        deadline = time.monotonic() + options["seconds"] if options["seconds"] > 0 else None
        while not stop.is_set():
            queryset = ConnectorDefinition.objects.filter(enabled=True).order_by("name")
            if options["only"]:
                queryset = queryset.filter(name__in=options["only"])
                missing = set(options["only"]) - set(queryset.values_list("name", flat=True))
                if missing:
                    raise CommandError(f"no enabled connector named {sorted(missing)}")
            definitions = list(queryset)
            seen = _fingerprint(queryset)
            supervisor, _spools = build_supervisor(definitions, tick_seconds=options["tick"])
            names = ", ".join(d.name for d in definitions) or "none"
            self.stdout.write(f"running {len(definitions)} connector(s): {names}")
            supervisor.start()
            next_check = time.monotonic() + options["reload_seconds"]
            try:
                while not stop.wait(0.2):
                    if deadline is not None and time.monotonic() >= deadline:
                        stop.set()
                        break
                    if time.monotonic() >= next_check:
                        next_check = time.monotonic() + options["reload_seconds"]
                        if _fingerprint(queryset) != seen:
                            self.stdout.write("connector definitions changed: restarting")
                            break
            finally:
                supervisor.stop()
            for status in supervisor.statuses():
                self.stdout.write(
                    f"{status.name}: {status.state} messages={status.messages} accepted={status.accepted} "
                    f"duplicate={status.duplicate} rejected={status.rejected} reconnects={status.reconnects}"
                )
