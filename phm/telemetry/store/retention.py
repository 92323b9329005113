"""Daily upkeep of whichever readings store is configured: partitions ahead (PostgreSQL) and
retention (``PHM_RETENTION_RAW_DAYS``, ``PHM_RETENTION_ROLLUP_DAYS``)."""

from __future__ import annotations

from django.conf import settings

from phm.telemetry.store import partitions
from phm.telemetry.store.base import ReadingStore


def maintain_store(store: ReadingStore, *, now_us: int, ahead_days: int) -> str:
    """Create partitions ahead (partitioned PostgreSQL), then drop what retention says; return a
    one-line summary."""
    created: list[str] = []
    if store.name == "sql" and partitions.is_partitioned(store.using):
        created = partitions.maintain(using=store.using, now_us=now_us, ahead_days=ahead_days)
    report = store.apply_retention(now_us=now_us, raw_days=settings.PHM_RETENTION_RAW_DAYS, rollup_days=settings.PHM_RETENTION_ROLLUP_DAYS)
    return (f"{store.name}: {len(created)} partition(s) created ahead; dropped {len(report.dropped_partitions)} partition(s), "
            f"deleted {report.deleted_raw_rows} raw row(s) and {report.deleted_rollup_rows} minute roll-up row(s)")
