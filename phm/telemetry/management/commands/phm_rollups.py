"""Rebuild the per-minute reading roll-ups from the raw readings (after a bulk restore or a repair)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from phm.assets.models import Sensor
from phm.telemetry.rollups import rebuild_rollups


class Command(BaseCommand):
    help = "Recompute per-minute roll-ups from the raw readings, for some sensors (--sensor TAG ...) or all."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--sensor", action="append", default=[], metavar="TAG", help="sensor tag; repeat for several (default: all sensors)")
        parser.add_argument("--database", default="default")

    def handle(self, *args, sensor: list[str], database: str, **options) -> None:
        sensor_ids = None
        if sensor:
            found = dict(Sensor.objects.using(database).filter(tag__in=sensor).values_list("tag", "id"))
            missing = sorted(set(sensor) - set(found))
            if missing:
                raise CommandError(f"unknown sensor tag(s): {', '.join(missing)}")
            sensor_ids = list(found.values())
        written = rebuild_rollups(sensor_ids=sensor_ids, using=database)
        self.stdout.write(f"rebuilt {written} roll-up rows for {'all sensors' if sensor_ids is None else f'{len(sensor_ids)} sensor(s)'}")
