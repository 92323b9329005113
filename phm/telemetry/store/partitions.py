"""PostgreSQL range partitions of the readings table by day on the int64 µs ``ts`` column.

Why daily partitions: retention becomes ``DROP TABLE`` of whole days (milliseconds, no vacuum,
no index bloat) instead of a ``DELETE`` of millions of rows, and a chart over the last hours
touches one or two partitions. The primary key (sensor_id, ts) holds the partition key, so it
stays the idempotency key on every partition.

Partitions are created ahead (``PHM_PARTITION_AHEAD_DAYS``) by ``phm_readings maintain``, and
ingestion creates the day of any row that falls outside them (a backfill, a late spool), so a
write never fails for want of a partition. An existing unpartitioned table is converted in one
transaction by ``phm_readings partition`` (:func:`partition_existing_table`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connections, transaction

from phm.telemetry.store.base import DAY_US

PARENT = "telemetry_reading"
_BOUNDS = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")
#: (database name, day) of the partitions this process knows to exist, so ingestion asks the
#: catalog only for a day it has not seen.
_KNOWN_DAYS: set[tuple[str, int]] = set()


class PartitionError(RuntimeError):
    """A partition operation cannot be done as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    name: str
    start_us: int
    end_us: int
    rows: int  # the planner's estimate (pg_class.reltuples), exact after ANALYZE
    bytes: int  # table + indexes + TOAST

    @property
    def day(self) -> str:
        return datetime.fromtimestamp(self.start_us / 1e6, tz=UTC).strftime("%Y-%m-%d")


@dataclass(slots=True)
class ConversionReport:
    rows: int = 0
    partitions: list[str] = field(default_factory=list)
    seconds: float = 0.0
    kept_old_table: str | None = None


def is_partitioned(using: str = "default") -> bool:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(%s)", [PARENT])
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def _require_postgresql(using: str) -> None:
    vendor = connections[using].vendor
    if vendor != "postgresql":
        raise PartitionError(f"readings partitions need PostgreSQL; database {using!r} is {vendor}")


def partition_name(day: int) -> str:
    """``telemetry_reading_d20260301`` for the day number (days since the epoch)."""
    return f"{PARENT}_d{datetime.fromtimestamp(day * 86_400, tz=UTC):%Y%m%d}"


def partitions(using: str = "default") -> list[PartitionInfo]:
    """The partitions of the readings table, oldest first."""
    _require_postgresql(using)
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples::bigint, pg_total_relation_size(c.oid) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
            [PARENT],
        )
        found = []
        for name, bound, rows, size in cursor.fetchall():
            match = _BOUNDS.search(bound or "")
            if match is None:
                raise PartitionError(f"partition {name} has bounds this app does not manage: {bound}")
            found.append(PartitionInfo(name, int(match[1]), int(match[2]), max(int(rows), 0), int(size)))
    return sorted(found, key=lambda p: p.start_us)


def ensure_days(first_day: int, last_day: int, *, using: str = "default") -> list[str]:
    """Create the daily partitions [first_day, last_day] that do not exist; return their names."""
    database = connections[using].settings_dict["NAME"]
    missing = [day for day in range(first_day, last_day + 1) if (database, day) not in _KNOWN_DAYS]
    if not missing:
        return []
    existing = {p.start_us // DAY_US for p in partitions(using)}
    created = []
    with connections[using].cursor() as cursor:
        for day in missing:
            if day not in existing:
                name = partition_name(day)
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {PARENT} FOR VALUES FROM ({day * DAY_US}) TO ({(day + 1) * DAY_US})"
                )
                created.append(name)
            _KNOWN_DAYS.add((database, day))
    return created


def ensure_for_range(first_us: int, last_us: int, *, using: str = "default") -> list[str]:
    """The partitions holding [first_us, last_us], created when missing (called by ingestion)."""
    return ensure_days(first_us // DAY_US, last_us // DAY_US, using=using)


def forget_known_days() -> None:
    """Drop this process's cache of existing partitions (after partitions were dropped elsewhere)."""
    _KNOWN_DAYS.clear()


def drop_before(cutoff_us: int, *, using: str = "default") -> list[str]:
    """Drop every partition that ends at or before ``cutoff_us``: retention by whole days."""
    dropped = []
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        for info in partitions(using):
            if info.end_us <= cutoff_us:
                cursor.execute(f"DROP TABLE {info.name}")
                dropped.append(info.name)
    forget_known_days()
    return dropped


def partition_existing_table(*, using: str = "default", ahead_days: int, now_us: int, keep_old: bool = False) -> ConversionReport:
    """Convert an unpartitioned readings table into a daily-partitioned one, in one transaction
    (readers and writers wait for it; the old table is renamed away, copied, then dropped unless
    ``keep_old``). Days from the oldest reading to ``ahead_days`` after ``now_us`` get partitions.
    The table keeps its name, columns and primary key, so Django and its migrations see no change."""
    _require_postgresql(using)
    if is_partitioned(using):
        raise PartitionError(f"{PARENT} is partitioned already")
    started = time.perf_counter()
    report = ConversionReport()
    old = f"{PARENT}_unpartitioned"
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute(f"LOCK TABLE {PARENT} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(f"SELECT MIN(ts), MAX(ts) FROM {PARENT}")
        low, high = cursor.fetchone()
        cursor.execute(f"ALTER TABLE {PARENT} RENAME TO {old}")
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'p'", [old]
        )
        (primary_key,) = cursor.fetchone()
        cursor.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {primary_key} TO {old}_pkey")
        cursor.execute(
            f"CREATE TABLE {PARENT} (sensor_id bigint NOT NULL, ts bigint NOT NULL, value double precision NOT NULL, "
            f"quality smallint NOT NULL, CONSTRAINT {primary_key} PRIMARY KEY (sensor_id, ts)) PARTITION BY RANGE (ts)"
        )
        first_day = (low if low is not None else now_us) // DAY_US
        last_day = max(high if high is not None else now_us, now_us) // DAY_US + ahead_days
        forget_known_days()
        report.partitions = ensure_days(first_day, last_day, using=using)
        cursor.execute(f"INSERT INTO {PARENT} (sensor_id, ts, value, quality) SELECT sensor_id, ts, value, quality FROM {old}")
        report.rows = cursor.rowcount
        if keep_old:
            report.kept_old_table = old
        else:
            cursor.execute(f"DROP TABLE {old}")
    if not keep_old:
        with connections[using].cursor() as cursor:
            cursor.execute(f"ANALYZE {PARENT}")
    report.seconds = time.perf_counter() - started
    return report


def maintain(*, using: str = "default", now_us: int, ahead_days: int) -> list[str]:
    """Create the partitions from today to ``ahead_days`` ahead; return the names created."""
    forget_known_days()
    today = now_us // DAY_US
    return ensure_days(today, today + ahead_days, using=using)
