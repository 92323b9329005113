"""Roll-ups of readings in Django's databases (SQLite / PostgreSQL): a minute tier kept by
ingestion from the raw readings, and an hour tier summed from the minute tier.

Ingestion keeps them exact in the transaction that stores the readings: a batch whose rows were
all new adds its own per-minute sums; a batch with duplicates (a replay, an at-least-once
redelivery) has its minutes recomputed from the raw readings (``INSERT … SELECT … GROUP BY …
ON CONFLICT DO UPDATE``), as does ``rebuild_rollups`` for data written around ingestion. The hours
holding the touched minutes are then recomputed from their (at most 60) minute rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connections

from phm.telemetry.bulk import upsert_rows
from phm.telemetry.store.base import MINUTE_US, Row, coarser_runs, unit_runs

ROLLUP_TABLE = "telemetry_readingrollup"
HOUR_ROLLUP_TABLE = "telemetry_readingrolluphour"
READING_TABLE = "telemetry_reading"
_COLUMNS = "samples, total, minimum, maximum"
_UPDATE_ALL = ("DO UPDATE SET samples = excluded.samples, total = excluded.total, "
               "minimum = excluded.minimum, maximum = excluded.maximum")


def floor_div_sql(column: str, unit: int) -> str:
    """SQL for floor(column / unit), for statements executed *with* parameters (``%%`` is ``%``).
    Negative values too: both engines truncate integer division toward zero, so the non-negative
    remainder is subtracted first."""
    return f"(({column} - ((({column} %% {unit}) + {unit}) %% {unit})) / {unit})"


def floor_minute_sql(column: str) -> str:
    return floor_div_sql(column, MINUTE_US)


# Three bound parameters per run (SQLite allows 32,766 per statement); SQLite also caps a
# compound SELECT at 500 terms.
_RUNS_PER_STATEMENT = 500


def minute_runs(rows: Iterable[Row]) -> list[tuple[int, int, int]]:
    return unit_runs(rows, MINUTE_US)


def refresh_rollups(rows: Sequence[Row], *, all_new: bool, using: str = "default") -> None:
    """Bring the roll-ups of every minute (and hour) that ``rows`` touched up to date (call it in
    the transaction that inserted them).

    ``all_new``: every row was inserted by this batch (the streaming case). The batch's own
    per-minute sums are then added to the stored ones, which costs the same however many rows
    the minute already holds (a 1 kHz sensor flushed every 20 ms would otherwise re-read up to
    60,000 rows per flush). When some rows were duplicates, the touched minutes are recomputed
    from the raw readings instead, since which rows were new is not known.
    """
    runs = minute_runs(rows)
    if all_new:
        add_to_rollups(rows, using=using)
    else:
        recompute_minutes(runs, using=using)
    recompute_hours(coarser_runs(runs, 60), using=using)


def add_to_rollups(rows: Iterable[Row], *, using: str = "default") -> None:
    """Add rows known to be newly stored to their minutes' roll-ups."""
    sums: dict[tuple[int, int], list] = {}
    for sensor_id, ts, value, _quality in rows:
        key = (sensor_id, ts // MINUTE_US)
        entry = sums.get(key)
        if entry is None:
            sums[key] = [1, value, value, value]
        else:
            entry[0] += 1
            entry[1] += value
            if value < entry[2]:
                entry[2] = value
            elif value > entry[3]:
                entry[3] = value
    least, greatest = ("LEAST", "GREATEST") if connections[using].vendor == "postgresql" else ("min", "max")
    t = ROLLUP_TABLE
    upsert_rows(
        t, ["sensor_id", "minute", "samples", "total", "minimum", "maximum"], ["bigint", "bigint", "int", "float8", "float8", "float8"],
        [(sensor_id, minute, n, total, low, high) for (sensor_id, minute), (n, total, low, high) in sums.items()],
        f"ON CONFLICT (sensor_id, minute) DO UPDATE SET samples = {t}.samples + excluded.samples, "
        f"total = {t}.total + excluded.total, minimum = {least}({t}.minimum, excluded.minimum), "
        f"maximum = {greatest}({t}.maximum, excluded.maximum)",
        using=using,
    )


def recompute_minutes(runs: Sequence[tuple[int, int, int]], *, using: str = "default") -> None:
    """Recompute minute roll-ups for (sensor_id, first_minute, end_minute) runs from the raw readings."""
    _recompute(runs, source=READING_TABLE, source_column="ts", unit_us=MINUTE_US, target=ROLLUP_TABLE, target_column="minute",
               aggregates="COUNT(*), SUM(value), MIN(value), MAX(value)", using=using)


def recompute_hours(runs: Sequence[tuple[int, int, int]], *, using: str = "default") -> None:
    """Recompute hour roll-ups for (sensor_id, first_hour, end_hour) runs from the minute tier."""
    _recompute(runs, source=ROLLUP_TABLE, source_column="minute", unit_us=60, target=HOUR_ROLLUP_TABLE, target_column="hour",
               aggregates="SUM(samples), SUM(total), MIN(minimum), MAX(maximum)", using=using)


def _recompute(runs, *, source: str, source_column: str, unit_us: int, target: str, target_column: str, aggregates: str, using: str) -> None:
    # One UNION ALL branch per run, not a join against a VALUES list: PostgreSQL cannot estimate
    # a range join and picks a sequential scan of the whole readings table for it (measured: 39 ms
    # per 1,000-row batch at 200k rows, growing with the table); a branch with its own bounds is
    # an index range scan on the primary key on both engines.
    columns = "sensor_id, ts, value" if source == READING_TABLE else f"sensor_id, {source_column}, {_COLUMNS}"
    branch = f"SELECT {columns} FROM {source} WHERE sensor_id = %s AND {source_column} >= %s AND {source_column} < %s"
    for offset in range(0, len(runs), _RUNS_PER_STATEMENT):
        chunk = runs[offset:offset + _RUNS_PER_STATEMENT]
        params: list[int] = []
        for sensor_id, first, end in chunk:
            params += [sensor_id, first * unit_us, end * unit_us]
        with connections[using].cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {target} (sensor_id, {target_column}, {_COLUMNS}) "
                f"SELECT sensor_id, {floor_div_sql(source_column, unit_us)}, {aggregates} "
                f"FROM ({' UNION ALL '.join([branch] * len(chunk))}) AS touched "
                f"WHERE true GROUP BY 1, 2 ON CONFLICT (sensor_id, {target_column}) {_UPDATE_ALL}",
                params,
            )


def delete_rollup_units(runs: Sequence[tuple[int, int, int]], *, table: str, column: str, using: str) -> None:
    with connections[using].cursor() as cursor:
        for sensor_id, first, end in runs:
            cursor.execute(f"DELETE FROM {table} WHERE sensor_id = %s AND {column} >= %s AND {column} < %s", [sensor_id, first, end])


def rebuild_rollups(*, sensor_ids: Sequence[int] | None = None, start_us: int | None = None, using: str = "default") -> int:
    """Drop and recompute both tiers of ``sensor_ids`` (all sensors when None) from the raw
    readings, for minutes from ``start_us`` on (all when None): for data written around ingestion
    (bulk loads, restores) or a repair. Returns the number of minute rows written."""
    conditions, params = [], []
    if sensor_ids is not None:
        conditions.append(f"sensor_id IN ({', '.join(['%s'] * len(sensor_ids))})")
        params += list(sensor_ids)
    first_minute = None if start_us is None else start_us // MINUTE_US
    first_hour = None if first_minute is None else first_minute // 60

    def where(column: str, first: int | None) -> tuple[str, list]:
        extra = [] if first is None else [f"{column} >= %s"]
        clauses = conditions + extra
        return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params + ([] if first is None else [first])

    with connections[using].cursor() as cursor:
        # The raw rows of the first minute start at a whole minute: widen start_us down to it.
        raw_where, raw_params = where("ts", None if first_minute is None else first_minute * MINUTE_US)
        minute_where, minute_params = where("minute", first_minute)
        cursor.execute(f"DELETE FROM {ROLLUP_TABLE} {minute_where}", minute_params)
        cursor.execute(
            f"INSERT INTO {ROLLUP_TABLE} (sensor_id, minute, {_COLUMNS}) "
            f"SELECT sensor_id, {floor_minute_sql('ts')}, COUNT(*), SUM(value), MIN(value), MAX(value) "
            f"FROM {READING_TABLE} {raw_where} GROUP BY 1, 2",
            raw_params,
        )
        written = cursor.rowcount
        hour_where, hour_params = where("hour", first_hour)
        source_where, source_params = where("minute", None if first_hour is None else first_hour * 60)
        cursor.execute(f"DELETE FROM {HOUR_ROLLUP_TABLE} {hour_where}", hour_params)
        cursor.execute(
            f"INSERT INTO {HOUR_ROLLUP_TABLE} (sensor_id, hour, {_COLUMNS}) "
            f"SELECT sensor_id, {floor_div_sql('minute', 60)}, SUM(samples), SUM(total), MIN(minimum), MAX(maximum) "
            f"FROM {ROLLUP_TABLE} {source_where} GROUP BY 1, 2",
            source_params,
        )
        return written
