"""The readings store over Django's databases (SQLite embedded, PostgreSQL in production).

Readings go into ``telemetry_reading`` keyed by (sensor, ts); the roll-ups and the latest
values are written in the same transaction, so a reader never sees one without the other. On
PostgreSQL the table may be partitioned by day (:mod:`.partitions`): ingestion then makes sure
the days of a batch have partitions before it writes, and retention drops whole partitions.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections, transaction

from phm.telemetry import rollups
from phm.telemetry.rollups import HOUR_ROLLUP_TABLE, READING_TABLE, ROLLUP_TABLE
from phm.telemetry.store import partitions
from phm.telemetry.store.base import (
    DAY_US,
    MINUTE_US,
    BucketSums,
    ReadingStore,
    RetentionReport,
    RollupRow,
    Row,
    Tier,
    coarser_runs,
)

_TIER_TABLE = {Tier.MINUTE: (ROLLUP_TABLE, "minute"), Tier.HOUR: (HOUR_ROLLUP_TABLE, "hour")}


class SqlReadingStore(ReadingStore):
    name = "sql"

    def __init__(self, *, using: str = "default") -> None:
        super().__init__(using=using)
        self._partitioned: bool | None = None

    @property
    def connection(self):
        return connections[self.using]

    def partitioned(self) -> bool:
        if self._partitioned is None:
            self._partitioned = partitions.is_partitioned(self.using)
        return self._partitioned

    # --- writes -----------------------------------------------------------------------------

    def write(self, rows: Sequence[Row]) -> int:
        if not rows:
            return 0
        with transaction.atomic(using=self.using):
            if self.partitioned():
                partitions.ensure_for_range(min(r[1] for r in rows), max(r[1] for r in rows), using=self.using)
            inserted = self._insert(rows)
            if inserted:
                self.advance_latest(rows)
                rollups.refresh_rollups(rows, all_new=inserted == len(rows), using=self.using)
        return inserted

    def _insert(self, rows: Sequence[Row]) -> int:
        """Insert rows that are not stored yet; return how many were new."""
        vendor = self.connection.vendor
        if vendor == "postgresql":
            return _insert_rows_postgresql(rows, self.connection)
        if vendor == "sqlite":
            with self.connection.cursor() as cursor:
                cursor.executemany(f"INSERT OR IGNORE INTO {READING_TABLE} (sensor_id, ts, value, quality) VALUES (%s, %s, %s, %s)", rows)
                return cursor.rowcount
        raise NotImplementedError(f"bulk reading ingestion supports SQLite and PostgreSQL, not {vendor}")

    def delete_range(self, *, sensor_ids: Sequence[int] | None, start_us: int, end_us: int) -> int:
        if end_us <= start_us:
            raise ValueError("end_us must be after start_us")
        sensor_filter, params = _sensor_filter(sensor_ids)
        with transaction.atomic(using=self.using), self.connection.cursor() as cursor:
            cursor.execute(f"SELECT DISTINCT sensor_id FROM {ROLLUP_TABLE} WHERE minute >= %s AND minute < %s {sensor_filter}",
                           [start_us // MINUTE_US, -(-end_us // MINUTE_US), *params])
            touched = [row[0] for row in cursor.fetchall()]
            cursor.execute(f"DELETE FROM {READING_TABLE} WHERE ts >= %s AND ts < %s {sensor_filter}", [start_us, end_us, *params])
            deleted = cursor.rowcount
            minute_runs = [(sensor_id, start_us // MINUTE_US, -(-end_us // MINUTE_US)) for sensor_id in touched]
            hour_runs = coarser_runs(minute_runs, 60)
            # Recomputing cannot empty a minute (INSERT … SELECT writes only groups that have rows):
            # the touched units are deleted first, then those with rows left are written again.
            rollups.delete_rollup_units(minute_runs, table=ROLLUP_TABLE, column="minute", using=self.using)
            rollups.recompute_minutes(minute_runs, using=self.using)
            rollups.delete_rollup_units(hour_runs, table=HOUR_ROLLUP_TABLE, column="hour", using=self.using)
            rollups.recompute_hours(hour_runs, using=self.using)
        return deleted

    def rebuild_rollups(self, *, sensor_ids: Sequence[int] | None = None, start_us: int | None = None) -> int:
        with transaction.atomic(using=self.using):
            return rollups.rebuild_rollups(sensor_ids=sensor_ids, start_us=start_us, using=self.using)

    def apply_retention(self, *, now_us: int, raw_days: int, rollup_days: int) -> RetentionReport:
        report = RetentionReport()
        if raw_days > 0:
            report.raw_cutoff_us = cutoff = (now_us // DAY_US - raw_days) * DAY_US
            if self.partitioned():
                report.dropped_partitions = partitions.drop_before(cutoff, using=self.using)
            else:
                with transaction.atomic(using=self.using), self.connection.cursor() as cursor:
                    cursor.execute(f"DELETE FROM {READING_TABLE} WHERE ts < %s", [cutoff])
                    report.deleted_raw_rows = cursor.rowcount
        if rollup_days > 0:
            report.rollup_cutoff_us = cutoff = (now_us // DAY_US - rollup_days) * DAY_US
            with transaction.atomic(using=self.using), self.connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {ROLLUP_TABLE} WHERE minute < %s", [cutoff // MINUTE_US])
                report.deleted_rollup_rows = cursor.rowcount
        return report

    # --- reads ------------------------------------------------------------------------------

    def raw_points(self, sensor_id: int, start_us: int, end_us: int, *, limit: int) -> list[tuple[int, float]]:
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT ts, value FROM {READING_TABLE} WHERE sensor_id = %s AND ts >= %s AND ts < %s ORDER BY ts LIMIT %s",
                [sensor_id, start_us, end_us, limit],
            )
            return cursor.fetchall()

    def raw_rows(self, sensor_ids: Sequence[int], start_us: int, end_us: int) -> list[tuple[int, int, float]]:
        if not sensor_ids:
            return []
        placeholders = ", ".join(["%s"] * len(sensor_ids))
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT sensor_id, ts, value FROM {READING_TABLE} WHERE sensor_id IN ({placeholders}) AND ts >= %s AND ts < %s",
                [*sensor_ids, start_us, end_us],
            )
            return cursor.fetchall()

    def first_ts(self, sensor_ids: Sequence[int], start_us: int, end_us: int) -> int | None:
        if not sensor_ids:
            return None
        placeholders = ", ".join(["%s"] * len(sensor_ids))
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT MIN(ts) FROM {READING_TABLE} WHERE sensor_id IN ({placeholders}) AND ts >= %s AND ts <= %s",
                [*sensor_ids, start_us, end_us],
            )
            return cursor.fetchone()[0]

    def raw_bucket_sums(self, sensor_id: int, start_us: int, end_us: int, bucket_us: int, origin_us: int) -> BucketSums:
        # Integer division of int64 microseconds is the same on SQLite and PostgreSQL (ts >= origin).
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT (ts - %s) / %s AS bucket, SUM(value), MIN(value), MAX(value), COUNT(*) FROM {READING_TABLE} "
                "WHERE sensor_id = %s AND ts >= %s AND ts < %s GROUP BY bucket",
                [origin_us, bucket_us, sensor_id, start_us, end_us],
            )
            return {int(b): (float(t), lo, hi, int(n)) for b, t, lo, hi, n in cursor.fetchall()}

    def rollup_bucket_sums(self, tier: Tier, sensor_id: int, first_unit: int, end_unit: int, bucket_us: int, origin_us: int) -> BucketSums:
        table, column = _TIER_TABLE[tier]
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT ({column} * {tier.unit_us} - %s) / %s AS bucket, SUM(total), MIN(minimum), MAX(maximum), SUM(samples) "
                f"FROM {table} WHERE sensor_id = %s AND {column} >= %s AND {column} < %s GROUP BY bucket",
                [origin_us, bucket_us, sensor_id, first_unit, end_unit],
            )
            return {int(b): (float(t), lo, hi, int(n)) for b, t, lo, hi, n in cursor.fetchall()}

    def rollups(self, tier: Tier, sensor_id: int, first_unit: int, end_unit: int) -> list[RollupRow]:
        table, column = _TIER_TABLE[tier]
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {column}, samples, total, minimum, maximum FROM {table} "
                f"WHERE sensor_id = %s AND {column} >= %s AND {column} < %s ORDER BY {column}",
                [sensor_id, first_unit, end_unit],
            )
            return [RollupRow(*row) for row in cursor.fetchall()]


def _sensor_filter(sensor_ids: Sequence[int] | None) -> tuple[str, list[int]]:
    if sensor_ids is None:
        return "", []
    if not sensor_ids:
        return "AND false", []
    return f"AND sensor_id IN ({', '.join(['%s'] * len(sensor_ids))})", list(sensor_ids)


def _insert_rows_postgresql(rows: Sequence[Row], connection) -> int:
    """Binary COPY straight into the table when the batch is all new (the streaming case, at the
    driver's own speed); if any row exists already, the savepoint rolls the COPY back and the
    batch goes through a temporary staging table with ON CONFLICT DO NOTHING, which counts them."""
    import psycopg

    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            _copy_rows(cursor.cursor, READING_TABLE, rows)
        return len(rows)
    except psycopg.errors.UniqueViolation:
        pass
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS reading_stage (sensor_id bigint, ts bigint, value float8, quality int2) ON COMMIT DELETE ROWS"
        )
        cursor.execute("TRUNCATE reading_stage")
        _copy_rows(cursor.cursor, "reading_stage", rows)
        cursor.execute(f"INSERT INTO {READING_TABLE} (sensor_id, ts, value, quality) SELECT sensor_id, ts, value, quality FROM reading_stage ON CONFLICT DO NOTHING")
        return cursor.rowcount


def _copy_rows(raw_cursor, table: str, rows: Sequence[Row]) -> None:
    with raw_cursor.copy(f"COPY {table} (sensor_id, ts, value, quality) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "int8", "float8", "int2"])
        for row in rows:
            copy.write_row(row)

