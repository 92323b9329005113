"""Readings storage upkeep: ``partition`` (convert the PostgreSQL readings table to daily
partitions, once), ``maintain`` (create partitions ahead, apply retention; run it daily, beat
does), ``status`` (store, partitions, sizes)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from phm.telemetry.store import get_store, partitions
from phm.telemetry.store.retention import maintain_store


class Command(BaseCommand):
    help = "Readings storage: partition | maintain | status"

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["partition", "maintain", "status"])
        parser.add_argument("--database", default="default")
        parser.add_argument("--ahead-days", type=int, default=None, help="partitions ahead of today (default PHM_PARTITION_AHEAD_DAYS)")
        parser.add_argument("--keep-old", action="store_true", help="partition: keep the old table as telemetry_reading_unpartitioned")
        partman = parser.add_mutually_exclusive_group()
        partman.add_argument("--partman", dest="use_partman", action="store_true", default=None,
                             help="partition: register the table with pg_partman (default: when the server has it)")
        partman.add_argument("--no-partman", dest="use_partman", action="store_false", help="partition: the app manages partitions alone")

    def handle(self, *args, action: str, database: str, ahead_days: int | None, keep_old: bool, use_partman: bool | None, **options) -> None:
        ahead = settings.PHM_PARTITION_AHEAD_DAYS if ahead_days is None else ahead_days
        if ahead < 0:
            raise CommandError(f"--ahead-days must be >= 0, got {ahead}")
        now_us = time.time_ns() // 1000
        try:
            if action == "partition":
                report = partitions.partition_existing_table(using=database, ahead_days=ahead, now_us=now_us, keep_old=keep_old,
                                                             use_partman=use_partman)
                total = len(partitions.partitions(database))
                self.stdout.write(
                    f"partitioned telemetry_reading: {report.rows} rows into {total} daily partitions in {report.seconds:.2f} s"
                    + ("; registered with pg_partman" if report.partman else "")
                    + (f"; old table kept as {report.kept_old_table}" if report.kept_old_table else "")
                )
            elif action == "maintain":
                summary = maintain_store(get_store(database), now_us=now_us, ahead_days=ahead)
                self.stdout.write(summary)
            else:
                self._status(database)
        except partitions.PartitionError as exc:
            raise CommandError(str(exc)) from exc

    def _status(self, database: str) -> None:
        store = get_store(database)
        self.stdout.write(f"store: {store.name}; retention raw {settings.PHM_RETENTION_RAW_DAYS or 'forever'} d, "
                          f"minute roll-ups {settings.PHM_RETENTION_ROLLUP_DAYS or 'forever'} d, hour roll-ups forever")
        if store.name == "sql" and partitions.is_partitioned(database):
            found = partitions.partitions(database)
            managed = " (pg_partman)" if partitions.partman_schema(database) else ""
            self.stdout.write(f"telemetry_reading: {len(found)} daily partitions{managed}")
            for info in found:
                self.stdout.write(f"  {info.name}  {info.day}  ~{info.rows} rows  {info.bytes / 1e6:.1f} MB")
        elif store.name == "sql":
            self.stdout.write("telemetry_reading: not partitioned" + (" (run: phm_readings partition)" if _is_postgresql(database) else ""))


def _is_postgresql(database: str) -> bool:
    from django.db import connections

    return connections[database].vendor == "postgresql"
