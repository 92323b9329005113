"""``python manage.py phm_demo``: the demo plant, its history, and a live simulator.

    phm_demo                       create the plant and backfill --hours of history (idempotent)
    phm_demo --stream              ... then stream live data until Ctrl-C
    phm_demo --inject bearing_wear --equipment P-101 [--in-seconds 0] [--duration-minutes 30]
"""

from __future__ import annotations

import importlib.util
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from connectors.simulator import DEMO_PLANT, FAULT_KINDS
from phm.assets.models import Sensor
from phm.assets.services import create_plant
from phm.telemetry import selectors, simulation


class Command(BaseCommand):
    help = "Create the demo plant, backfill simulated history, optionally stream live data or inject a fault."

    def add_arguments(self, parser):
        parser.add_argument("--hours", type=float, default=24.0, help="History to backfill (default 24 h at 1 Hz: a whole daily cycle, which the detectors' drift check needs).")
        parser.add_argument("--stream", action="store_true", help="Keep streaming live data after the backfill.")
        parser.add_argument("--push-every", type=float, default=5.0, help="Seconds between live pushes.")
        parser.add_argument("--auto-faults", type=float, default=0, help="Inject a random fault every N minutes while streaming (0 = never).")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--no-knowledge-base", action="store_true", help="Skip loading the assistant's demo documents.")
        parser.add_argument("--no-detectors", action="store_true", help="Skip creating and training the demo anomaly detectors.")
        parser.add_argument("--capture-every", type=int, default=600,
                            help="Seconds between simulated vibration captures per measurement point (1 s at 25.6 kHz each; 0 = none).")
        parser.add_argument("--no-rul", action="store_true", help="Skip the pumps' run-to-failure histories and RUL model.")
        parser.add_argument("--inject", choices=FAULT_KINDS, help="Record a fault for the running simulator and exit.")
        parser.add_argument("--equipment", help="Equipment tag for --inject, e.g. P-101.")
        parser.add_argument("--sensor", help="Sensor measure for sensor faults, e.g. TEMP_BRG.")
        parser.add_argument("--in-seconds", type=float, default=0.0)
        parser.add_argument("--duration-minutes", type=float, default=30.0)
        parser.add_argument("--severity", type=float, default=1.0)

    def handle(self, *args, **options):
        if options["inject"]:
            return self._inject(options)
        site = create_plant(plant=DEMO_PLANT)
        self.stdout.write(f"demo plant '{site.name}': {len(DEMO_PLANT.equipment)} equipment, {sum(len(e.sensors) for e in DEMO_PLANT.equipment)} sensors")
        if not options["no_knowledge_base"]:
            self._load_knowledge_base()
        now = timezone.now().replace(microsecond=0)
        if selectors.newest_ts(sensors=list(Sensor.objects.all())) is not None:
            self.stdout.write("history exists already; skipping backfill")
        elif options["hours"] > 0:
            faults = simulation.schedule_demo_history(now=now, hours=options["hours"])
            for fault in faults:
                self.stdout.write(f"  scheduled {fault.fault} on {fault.equipment.tag} {fault.start:%H:%M}-{fault.end:%H:%M} UTC")
            readings, logs = simulation.backfill_bulk(start=now - timedelta(hours=options["hours"]), end=now, seed=options["seed"])
            self.stdout.write(f"backfilled {options['hours']:g} h: {readings} readings, {logs} log lines")
            if options["capture_every"] > 0:
                self._backfill_captures(start=now - timedelta(hours=options["hours"]), end=now, every_s=options["capture_every"], seed=options["seed"])
            if not options["no_detectors"]:
                self._train_detectors(start=now - timedelta(hours=options["hours"]), end=now)
            if not options["no_rul"]:
                self._rul_demo(now=now)
        if options["stream"]:
            self.stdout.write("streaming live data (Ctrl-C to stop)")
            try:
                simulation.stream(seed=options["seed"], push_every_s=options["push_every"], auto_fault_every_s=options["auto_faults"] * 60 or None,
                                  capture_every_s=options["capture_every"] or None)
            except KeyboardInterrupt:
                self.stdout.write("simulator stopped")

    def _backfill_captures(self, *, start, end, every_s: int, seed: int):
        from phm.condition.demo import simulate_captures

        stored, _ = simulate_captures(start=start, end=end, faults=simulation.scheduled_faults(), every_s=every_s, seed=seed)
        self.stdout.write(f"vibration captures: {stored} (every {every_s} s per point, 1 s at 25.6 kHz)")

    def _train_detectors(self, *, start, end):
        from phm.analytics.demo import create_demo_detectors

        for line in create_demo_detectors(train_start=start, train_end=end):
            self.stdout.write(f"  {line}")

    def _rul_demo(self, *, now):
        from phm.condition.demo_rul import create_demo_histories, train_demo_rul_model

        for line in create_demo_histories(now=now) + train_demo_rul_model(now=now):
            self.stdout.write(f"  {line}")

    def _inject(self, options):
        if not options["equipment"]:
            raise CommandError("--inject needs --equipment (e.g. P-101)")
        try:
            fault = simulation.inject_fault(
                equipment_tag=options["equipment"], fault=options["inject"],
                start=timezone.now() + timedelta(seconds=options["in_seconds"]),
                duration=timedelta(minutes=options["duration_minutes"]), severity=options["severity"],
                sensor_measure=options["sensor"],
            )
        except (KeyError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"injected {fault.fault} on {fault.equipment.tag} from {fault.start.isoformat()} to {fault.end.isoformat()} (id {fault.pk})")

    def _load_knowledge_base(self):
        """The assistant's demo documents, when the assistant app provides them."""
        if importlib.util.find_spec("phm.assistant.services") is None:
            return
        from phm.assistant import services as assistant_services

        loader = getattr(assistant_services, "load_demo_kb", None)
        if loader is not None:
            summary = loader()
            self.stdout.write(f"knowledge base: {summary}")
