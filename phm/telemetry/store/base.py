"""The readings store boundary: the few operations the rest of the app needs from wherever the
readings live.

Ingestion writes batches through :meth:`ReadingStore.write`; charts, detectors, diagnosis and the
assistant read through the other methods. Two implementations: :mod:`.sql` over Django's
databases (SQLite / PostgreSQL, the default) and :mod:`.clickhouse` for plants that outgrow one
PostgreSQL. Metadata (assets, alarms, jobs) and the one-row-per-sensor latest values stay in the
Django database whatever the store, as ThingsBoard and other platforms split it: the dashboard
joins latest values with sensors, and that table grows with the number of tags, not with time.

Every row crossing the boundary is ``(sensor_id, ts_us, value, quality)``: integer microseconds
since the epoch (UTC), the same key on every engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from phm.telemetry.bulk import upsert_rows
from phm.telemetry.fields import datetime_to_us

Row = tuple[int, int, float, int]  # sensor_id, ts (µs since the epoch), value, quality
#: bucket number -> (sum, min, max, count)
BucketSums = dict[int, tuple[float, float, float, int]]

SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
LATEST_TABLE = "telemetry_latestreading"


class Tier(Enum):
    """Roll-up tiers, finest first. A tier row holds count / sum / min / max of one sensor over
    one unit of time; the hour tier is summed from the minute tier, never from raw rows, so it
    survives the raw retention and is cheap to keep forever."""

    MINUTE = MINUTE_US
    HOUR = HOUR_US

    @property
    def unit_us(self) -> int:
        return self.value


@dataclass(frozen=True, slots=True)
class LatestValue:
    ts_us: int
    value: float
    quality: int


@dataclass(frozen=True, slots=True)
class RollupRow:
    unit: int  # minutes (or hours) since the epoch
    samples: int
    total: float
    minimum: float
    maximum: float


@dataclass(slots=True)
class RetentionReport:
    raw_cutoff_us: int | None = None
    rollup_cutoff_us: int | None = None
    dropped_partitions: list[str] = field(default_factory=list)
    deleted_raw_rows: int = 0
    deleted_rollup_rows: int = 0


def merge_bucket_sums(sums: BucketSums, extra: BucketSums) -> None:
    for bucket, (total, low, high, count) in extra.items():
        if bucket in sums:
            t, lo, hi, n = sums[bucket]
            sums[bucket] = (t + total, min(lo, low), max(hi, high), n + count)
        else:
            sums[bucket] = (total, low, high, count)


def unit_runs(rows: Iterable[tuple], unit_us: int) -> list[tuple[int, int, int]]:
    """(sensor_id, first_unit, last_unit + 1) for each run of consecutive time units (minutes,
    hours) touched by ``rows`` (sensor_id, ts_us, …): a streaming batch gives one short run per
    sensor, and two readings a month apart give two one-unit runs, not a month to recompute."""
    units_by_sensor: dict[int, set[int]] = {}
    for row in rows:
        units_by_sensor.setdefault(row[0], set()).add(row[1] // unit_us)
    return runs_of(units_by_sensor)


def runs_of(units_by_sensor: dict[int, set[int]]) -> list[tuple[int, int, int]]:
    runs: list[tuple[int, int, int]] = []
    for sensor_id, units in units_by_sensor.items():
        ordered = sorted(units)
        first = previous = ordered[0]
        for unit in ordered[1:]:
            if unit != previous + 1:
                runs.append((sensor_id, first, previous + 1))
                first = unit
            previous = unit
        runs.append((sensor_id, first, previous + 1))
    return runs


def coarser_runs(runs: Sequence[tuple[int, int, int]], factor: int) -> list[tuple[int, int, int]]:
    """Runs of minutes -> the runs of hours holding them (factor 60)."""
    units: dict[int, set[int]] = {}
    for sensor_id, first, end in runs:
        units.setdefault(sensor_id, set()).update(range(first // factor, (end - 1) // factor + 1))
    return runs_of(units)


class ReadingStore(ABC):
    """Where readings live. ``using`` is the Django database alias of the metadata (sensors and
    their latest values), which every implementation keeps in step with its own writes."""

    name: str = ""

    def __init__(self, *, using: str = "default") -> None:
        self.using = using

    # --- writes -----------------------------------------------------------------------------

    @abstractmethod
    def write(self, rows: Sequence[Row]) -> int:
        """Store the rows not stored yet (the key is (sensor, ts): a replayed batch, or a row
        repeated inside one, is stored once), keep the roll-ups exact and the latest values
        current; return how many rows were new."""

    @abstractmethod
    def delete_range(self, *, sensor_ids: Sequence[int] | None, start_us: int, end_us: int) -> int:
        """Delete readings in [start, end) of ``sensor_ids`` (all when None) and bring the
        roll-ups of the touched minutes and hours down with them; return rows deleted (the
        ClickHouse store returns the count it asked to delete: deletes are asynchronous there)."""

    @abstractmethod
    def rebuild_rollups(self, *, sensor_ids: Sequence[int] | None = None, start_us: int | None = None) -> int:
        """Recompute both roll-up tiers from the raw readings, for minutes from ``start_us`` on
        (all when None; roll-ups older than the raw retention are left as they are, since their
        raw rows are gone); return the number of minute rows written."""

    @abstractmethod
    def apply_retention(self, *, now_us: int, raw_days: int, rollup_days: int) -> RetentionReport:
        """Drop raw readings older than ``raw_days`` and minute roll-ups older than ``rollup_days``
        (0: keep forever). The hour tier is kept."""

    # --- reads ------------------------------------------------------------------------------

    @abstractmethod
    def raw_points(self, sensor_id: int, start_us: int, end_us: int, *, limit: int) -> list[tuple[int, float]]:
        """(ts, value) of one sensor in [start, end), oldest first, at most ``limit``."""

    @abstractmethod
    def raw_rows(self, sensor_ids: Sequence[int], start_us: int, end_us: int) -> list[tuple[int, int, float]]:
        """(sensor_id, ts, value) of several sensors in [start, end), in no particular order."""

    @abstractmethod
    def first_ts(self, sensor_ids: Sequence[int], start_us: int, end_us: int) -> int | None:
        """The oldest timestamp of any of ``sensor_ids`` in [start, end], or None."""

    @abstractmethod
    def raw_bucket_sums(self, sensor_id: int, start_us: int, end_us: int, bucket_us: int, origin_us: int) -> BucketSums:
        """Raw readings in [start, end) aggregated on the server per bucket ``(ts - origin) // bucket``."""

    @abstractmethod
    def rollup_bucket_sums(self, tier: Tier, sensor_id: int, first_unit: int, end_unit: int, bucket_us: int, origin_us: int) -> BucketSums:
        """Roll-up rows of ``tier`` in [first_unit, end_unit) aggregated on the server per bucket."""

    @abstractmethod
    def rollups(self, tier: Tier, sensor_id: int, first_unit: int, end_unit: int) -> list[RollupRow]:
        """The roll-up rows of one sensor in [first_unit, end_unit), oldest first."""

    def bucket_sums(self, sensor_id: int, start_us: int, end_us: int, bucket_us: int, origin_us: int) -> BucketSums:
        """Readings in [start, end) per bucket, from the coarsest tier whose units fit the buckets
        (both ``bucket_us`` and ``origin_us`` whole units of it): whole hours from the hour tier,
        the partial hours at the edges from the minute tier, the partial minutes from raw rows,
        so the result equals the raw aggregate at a small fraction of the rows read."""
        for tier in (Tier.HOUR, Tier.MINUTE):
            unit = tier.unit_us
            if bucket_us % unit or origin_us % unit:
                continue
            first_unit, end_unit = -(-start_us // unit), end_us // unit
            if first_unit >= end_unit:
                continue
            sums = self.rollup_bucket_sums(tier, sensor_id, first_unit, end_unit, bucket_us, origin_us)
            for edge_start, edge_end in ((start_us, first_unit * unit), (end_unit * unit, end_us)):
                if edge_start < edge_end:
                    merge_bucket_sums(sums, self.bucket_sums(sensor_id, edge_start, edge_end, bucket_us, origin_us))
            return sums
        return self.raw_bucket_sums(sensor_id, start_us, end_us, bucket_us, origin_us)

    def hour_samples(self, sensor_id: int, start_us: int, end_us: int) -> int:
        """Readings counted by the hour tier in the whole hours inside [start, end): a cheap lower
        bound of the readings in the range (a month of one sensor: 720 roll-up rows)."""
        first_hour, end_hour = -(-start_us // HOUR_US), end_us // HOUR_US
        if first_hour >= end_hour:
            return 0
        sums = self.rollup_bucket_sums(Tier.HOUR, sensor_id, first_hour, end_hour, (end_hour - first_hour) * HOUR_US, first_hour * HOUR_US)
        return sum(count for _, _, _, count in sums.values())

    # --- latest values: one row per sensor in the Django database, whatever the store -------------

    def latest(self, sensor_ids: Sequence[int]) -> dict[int, LatestValue]:
        from phm.telemetry.models import LatestReading

        found: dict[int, LatestValue] = {}
        ids = list(sensor_ids)
        for offset in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            rows = LatestReading.objects.using(self.using).filter(sensor_id__in=ids[offset:offset + 500]).values_list("sensor_id", "ts", "value", "quality")
            for sensor_id, ts, value, quality in rows:
                found[sensor_id] = LatestValue(datetime_to_us(ts), value, quality)
        return found

    def advance_latest(self, rows: Iterable[Row]) -> None:
        """Move each sensor's latest value forward to the newest of ``rows`` (never back: a late
        or replayed batch leaves a newer value in place)."""
        newest: dict[int, Row] = {}
        for row in rows:
            current = newest.get(row[0])
            if current is None or row[1] > current[1]:
                newest[row[0]] = row
        upsert_rows(
            LATEST_TABLE, ["sensor_id", "ts", "value", "quality"], ["bigint", "bigint", "float8", "smallint"], list(newest.values()),
            f"ON CONFLICT (sensor_id) DO UPDATE SET ts = excluded.ts, value = excluded.value, quality = excluded.quality, "
            f"received_at = excluded.received_at WHERE excluded.ts > {LATEST_TABLE}.ts",
            using=self.using, constants={"received_at": "CURRENT_TIMESTAMP"},
        )
