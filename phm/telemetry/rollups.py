"""Per-minute roll-ups of readings: kept by ingestion, read by long-range charts.

Ingestion keeps them exact in the transaction that stores the readings: a batch whose rows were
all new adds its own per-minute sums; a batch with duplicates (a replay, an at-least-once
redelivery) has its minutes recomputed from the raw readings (``INSERT … SELECT … GROUP BY …
ON CONFLICT DO UPDATE``), as does ``rebuild_rollups`` for data written around ingestion.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connections

from phm.telemetry.bulk import upsert_rows

MINUTE_US = 60_000_000
ROLLUP_TABLE = "telemetry_readingrollup"
READING_TABLE = "telemetry_reading"


def floor_minute_sql(column: str) -> str:
    """SQL for floor(column / 1 min), for statements executed *with* parameters (``%%`` is ``%``).
    Negative timestamps too: both engines truncate integer division toward zero, so the
    non-negative remainder is subtracted first."""
    return f"(({column} - ((({column} %% {MINUTE_US}) + {MINUTE_US}) %% {MINUTE_US})) / {MINUTE_US})"


# Three bound parameters per run (SQLite allows 32,766 per statement); SQLite also caps a
# compound SELECT at 500 terms.
_RUNS_PER_STATEMENT = 500


def minute_runs(rows: Iterable[tuple[int, int, float, int]]) -> list[tuple[int, int, int]]:
    """(sensor_id, first_minute, last_minute + 1) for each run of consecutive minutes touched by
    ``rows`` (sensor_id, ts_us, …): a streaming batch gives one short run per sensor, and two
    readings a month apart give two one-minute runs, not a month to recompute."""
    minutes_by_sensor: dict[int, set[int]] = {}
    for row in rows:
        minutes_by_sensor.setdefault(row[0], set()).add(row[1] // MINUTE_US)
    runs: list[tuple[int, int, int]] = []
    for sensor_id, minutes in minutes_by_sensor.items():
        ordered = sorted(minutes)
        first = previous = ordered[0]
        for minute in ordered[1:]:
            if minute != previous + 1:
                runs.append((sensor_id, first, previous + 1))
                first = minute
            previous = minute
        runs.append((sensor_id, first, previous + 1))
    return runs


def refresh_rollups(rows: Sequence[tuple[int, int, float, int]], *, all_new: bool, using: str = "default") -> None:
    """Bring the roll-ups of every minute that ``rows`` touched up to date (call it in the
    transaction that inserted them).

    ``all_new``: every row was inserted by this batch (the streaming case). The batch's own
    per-minute sums are then added to the stored ones, which costs the same however many rows
    the minute already holds (a 1 kHz sensor flushed every 20 ms would otherwise re-read up to
    60,000 rows per flush). When some rows were duplicates, the touched minutes are recomputed
    from the raw readings instead, since which rows were new is not known.
    """
    if all_new:
        add_to_rollups(rows, using=using)
    else:
        recompute_minutes(minute_runs(rows), using=using)


def add_to_rollups(rows: Iterable[tuple[int, int, float, int]], *, using: str = "default") -> None:
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
    """Recompute roll-ups for (sensor_id, first_minute, end_minute) runs from the raw readings."""
    for offset in range(0, len(runs), _RUNS_PER_STATEMENT):
        _recompute_chunk(runs[offset:offset + _RUNS_PER_STATEMENT], using=using)


def _recompute_chunk(runs: Sequence[tuple[int, int, int]], *, using: str) -> None:
    # One UNION ALL branch per run, not a join against a VALUES list: PostgreSQL cannot estimate
    # a range join and picks a sequential scan of the whole readings table for it (measured: 39 ms
    # per 1,000-row batch at 200k rows, growing with the table); a branch with its own bounds is
    # an index range scan on the primary key on both engines.
    branch = f"SELECT sensor_id, ts, value FROM {READING_TABLE} WHERE sensor_id = %s AND ts >= %s AND ts < %s"
    params: list[int] = []
    for sensor_id, first_minute, end_minute in runs:
        params += [sensor_id, first_minute * MINUTE_US, end_minute * MINUTE_US]
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {ROLLUP_TABLE} (sensor_id, minute, samples, total, minimum, maximum) "
            f"SELECT sensor_id, {floor_minute_sql('ts')}, COUNT(*), SUM(value), MIN(value), MAX(value) "
            f"FROM ({' UNION ALL '.join([branch] * len(runs))}) AS touched "
            "WHERE true GROUP BY 1, 2 "
            "ON CONFLICT (sensor_id, minute) DO UPDATE SET samples = excluded.samples, total = excluded.total, "
            "minimum = excluded.minimum, maximum = excluded.maximum",
            params,
        )


def rebuild_rollups(*, sensor_ids: Sequence[int] | None = None, using: str = "default") -> int:
    """Drop and recompute the roll-ups of ``sensor_ids`` (all sensors when None) from the raw
    readings: for data written around ingestion (bulk loads, restores) or a repair. Returns the
    number of roll-up rows written."""
    where, params = ("", []) if sensor_ids is None else (
        f"WHERE sensor_id IN ({', '.join(['%s'] * len(sensor_ids))})", list(sensor_ids))
    with connections[using].cursor() as cursor:
        cursor.execute(f"DELETE FROM {ROLLUP_TABLE} {where}", params)
        cursor.execute(
            f"INSERT INTO {ROLLUP_TABLE} (sensor_id, minute, samples, total, minimum, maximum) "
            f"SELECT sensor_id, {floor_minute_sql('ts')}, COUNT(*), SUM(value), MIN(value), MAX(value) "
            f"FROM {READING_TABLE} {where} GROUP BY 1, 2",
            params,
        )
        return cursor.rowcount
