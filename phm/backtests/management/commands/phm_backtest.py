"""``python manage.py phm_backtest``: replay stored history through the detectors, alarm rules and
diagnoser, and print the report scored against the recorded faults.

    phm_backtest --start 2026-03-01T00:00 --end 2026-03-08T00:00              every equipment, active versions
    phm_backtest --hours 24 --equipment P-101 --equipment P-201 --no-diagnosis
    phm_backtest --hours 6 --json report.json
    phm_backtest --hours 720 --ground-truth work_orders                       scored against the corrective work orders
"""

from __future__ import annotations

import json
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from phm.analytics.models import DiagnoserVersion, ModelVersion
from phm.assets.models import Equipment
from phm.backtests import services
from phm.backtests.models import GroundTruth
from phm.backtests.summary import report_lines


class Command(BaseCommand):
    help = "Replay stored history through the detectors, alarm rules and diagnoser; print the report."

    def add_arguments(self, parser):
        parser.add_argument("--start", help="ISO date-time (UTC if no zone); default: --hours before --end.")
        parser.add_argument("--end", help="ISO date-time; default now.")
        parser.add_argument("--hours", type=float, default=24.0, help="Length of the range when --start is not given.")
        parser.add_argument("--equipment", action="append", default=[], help="Equipment tag (repeat); default every equipment with a detector.")
        parser.add_argument("--model-version", dest="model_versions", action="append", type=int, default=[], help="ModelVersion id to replay (repeat); default the active ones.")
        parser.add_argument("--diagnoser", type=int, help="Diagnoser version number; default the active one.")
        parser.add_argument("--no-diagnosis", action="store_true", help="Alarms only.")
        parser.add_argument("--rediagnose", default="0,300,900", help="Seconds after the raise to diagnose at, comma-separated.")
        parser.add_argument("--ground-truth", choices=GroundTruth.values, default=GroundTruth.INJECTIONS,
                            help="Known faults to score against: recorded fault injections (default), corrective work orders, or both.")
        parser.add_argument("--queue", action="store_true", help="Send the run to a worker instead of running it here.")
        parser.add_argument("--json", help="Write the report to this file.")

    def handle(self, *args, **options):
        end = _aware(options["end"], "--end") if options["end"] else timezone.now()
        start = _aware(options["start"], "--start") if options["start"] else end - timedelta(hours=options["hours"])
        equipment = list(Equipment.objects.filter(tag__in=options["equipment"]))
        missing = sorted(set(options["equipment"]) - {e.tag for e in equipment})
        if missing:
            raise CommandError(f"unknown equipment: {', '.join(missing)}")
        versions = list(ModelVersion.objects.select_related("config__equipment").filter(pk__in=options["model_versions"]))
        if len(versions) != len(set(options["model_versions"])):
            unknown = sorted(set(options["model_versions"]) - {v.pk for v in versions})
            raise CommandError(f"unknown model version id(s): {unknown}")
        diagnoser = None
        if options["diagnoser"] is not None:
            diagnoser = DiagnoserVersion.objects.filter(version=options["diagnoser"]).first()
            if diagnoser is None:
                raise CommandError(f"no diagnoser version {options['diagnoser']}")
        try:
            offsets = [float(x) for x in options["rediagnose"].split(",") if x.strip()]
        except ValueError:
            raise CommandError(f"--rediagnose: {options['rediagnose']!r} is not a comma-separated list of seconds") from None
        try:
            run = services.create_backtest(
                start=start, end=end, equipment=equipment, versions=versions, diagnoser=diagnoser, diagnose=not options["no_diagnosis"],
                rediagnose_after_s=offsets, ground_truth=options["ground_truth"], enqueue=options["queue"],
            )
        except services.BacktestError as exc:
            raise CommandError(str(exc)) from None
        if options["queue"]:
            self.stdout.write(f"backtest {run.pk} queued; follow it at /backtests/{run.pk}/ or GET /api/v1/backtests/{run.pk}/")
            return
        run = services.run_backtest(run_id=run.pk)
        if run.status != "succeeded":
            raise CommandError(f"backtest {run.pk} {run.status}: {run.error}")
        for line in report_lines(run.report):
            self.stdout.write(line)
        self.stdout.write(f"backtest {run.pk}: /backtests/{run.pk}/")
        if options["json"]:
            with open(options["json"], "w", encoding="utf-8") as handle:
                json.dump(run.report, handle, indent=2)
            self.stdout.write(f"report written to {options['json']}")


def _aware(value: str, option: str):
    from datetime import UTC

    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"{option}: {value!r} is not an ISO date-time (e.g. 2026-03-01T00:00Z)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
