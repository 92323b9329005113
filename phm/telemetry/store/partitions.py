"""PostgreSQL range partitions of the readings table by day on the int64 µs ``ts`` column.

Why daily partitions: retention becomes ``DROP TABLE`` of whole days (milliseconds, no vacuum,
no index bloat) instead of a ``DELETE`` of millions of rows, and a chart over the last hours
touches one or two partitions. The primary key (sensor_id, ts) holds the partition key, so it
stays the idempotency key on every partition.

Partitions are created ahead (``PHM_PARTITION_AHEAD_DAYS``) by ``phm_readings maintain``, and
ingestion creates the day of any row that falls outside them (a backfill, a late spool), so a
write never fails for want of a partition. An existing unpartitioned table is converted in one
transaction by ``phm_readings partition`` (:func:`partition_existing_table`).

When the server has the ``pg_partman`` extension, the conversion registers the table with it
(``create_parent``: daily integer ranges, a default partition) and ``maintain`` also runs
``run_maintenance``; partitions made by the app then carry partman's names
(``telemetry_reading_p<first µs>``), so the two never create the same day twice. Retention stays
the app's (``PHM_RETENTION_RAW_DAYS``), the same with and without partman.
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
    partman: bool = False


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


def partition_name(day: int, *, partman: bool = False) -> str:
    """``telemetry_reading_d20260301`` for the day number (days since the epoch), or pg_partman's
    name for the same range (``telemetry_reading_p<first µs>``) when partman manages the table."""
    if partman:
        return f"{PARENT}_p{day * DAY_US}"
    return f"{PARENT}_d{datetime.fromtimestamp(day * 86_400, tz=UTC):%Y%m%d}"


def partman_available(using: str = "default") -> bool:
    """The server can install pg_partman (its package is on the server)."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_partman'")
        return cursor.fetchone() is not None


def partman_schema(using: str = "default") -> str | None:
    """The schema pg_partman is installed in, when it manages the readings table; else None."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT n.nspname, e.extversion FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_partman'")
        row = cursor.fetchone()
        if row is None:
            return None
        cursor.execute(f"SELECT 1 FROM {row[0]}.part_config WHERE parent_table = %s", [f"public.{PARENT}"])
        return row[0] if cursor.fetchone() else None


def _register_with_partman(cursor, *, first_day: int, ahead_days: int) -> None:
    cursor.execute("CREATE SCHEMA IF NOT EXISTS partman")
    cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA partman")
    cursor.execute("SELECT n.nspname, e.extversion FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_partman'")
    schema, version = cursor.fetchone()
    # pg_partman 4 calls PostgreSQL's declarative partitioning 'native', 5 calls it 'range'.
    kind = "native" if int(version.split(".")[0]) < 5 else "range"
    cursor.execute(
        f"SELECT {schema}.create_parent(p_parent_table := %s, p_control := 'ts', p_type := %s, p_interval := %s, "
        "p_premake := %s, p_start_partition := %s)",
        [f"public.{PARENT}", kind, str(DAY_US), max(ahead_days, 1), str(first_day * DAY_US)],
    )


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
            if bound == "DEFAULT":
                continue  # pg_partman's catch-all partition: no day of its own
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
    partman = partman_schema(using) is not None
    created = []
    with connections[using].cursor() as cursor:
        for day in missing:
            if day not in existing:
                name = partition_name(day, partman=partman)
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


def partition_existing_table(
    *, using: str = "default", ahead_days: int, now_us: int, keep_old: bool = False, use_partman: bool | None = None
) -> ConversionReport:
    """Convert an unpartitioned readings table into a daily-partitioned one, in one transaction
    (readers and writers wait for it; the old table is renamed away, copied, then dropped unless
    ``keep_old``). Days from the oldest reading to ``ahead_days`` after ``now_us`` get partitions.
    The table keeps its name, columns and primary key, so Django and its migrations see no change.
    ``use_partman``: register with pg_partman (None: when the server has it)."""
    _require_postgresql(using)
    if is_partitioned(using):
        raise PartitionError(f"{PARENT} is partitioned already")
    if use_partman is None:
        use_partman = partman_available(using)
    elif use_partman and not partman_available(using):
        raise PartitionError("pg_partman is not installed on this PostgreSQL server (e.g. apt-get install postgresql-<version>-partman)")
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
        if use_partman:
            _register_with_partman(cursor, first_day=first_day, ahead_days=ahead_days)
        report.partman = use_partman
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
    schema = partman_schema(using)
    if schema is not None:
        with connections[using].cursor() as cursor:
            cursor.execute(f"UPDATE {schema}.part_config SET premake = %s WHERE parent_table = %s", [max(ahead_days, 1), f"public.{PARENT}"])
            cursor.execute(f"SELECT {schema}.run_maintenance(p_parent_table := %s)", [f"public.{PARENT}"])
    today = now_us // DAY_US
    return ensure_days(today, today + ahead_days, using=using)
