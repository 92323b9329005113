"""The readings store boundary (see :mod:`.base`), chosen by ``PHM_READINGS_STORE``:
``sql`` (Django's database, the default) or ``clickhouse`` (``PHM_CLICKHOUSE_URL``)."""

from __future__ import annotations

from threading import Lock

from django.conf import settings

from phm.telemetry.store.base import (
    DAY_US,
    HOUR_US,
    MINUTE_US,
    LatestValue,
    ReadingStore,
    RetentionReport,
    RollupRow,
    Row,
    Tier,
)

__all__ = ["DAY_US", "HOUR_US", "MINUTE_US", "LatestValue", "ReadingStore", "RetentionReport", "RollupRow", "Row", "Tier",
           "forget_stores", "get_store"]
STORE_KINDS = ("sql", "clickhouse")
_stores: dict[tuple, ReadingStore] = {}
_lock = Lock()


def get_store(using: str = "default") -> ReadingStore:
    """The configured store, for the metadata database ``using``; one per process and alias."""
    kind = settings.PHM_READINGS_STORE
    if kind not in STORE_KINDS:
        raise ValueError(f"PHM_READINGS_STORE must be one of {', '.join(STORE_KINDS)}, got {kind!r}")
    key = (kind, using, settings.PHM_CLICKHOUSE_URL if kind == "clickhouse" else "", settings.PHM_RETENTION_RAW_DAYS,
           settings.PHM_RETENTION_ROLLUP_DAYS)
    store = _stores.get(key)
    if store is None:
        with _lock:
            store = _stores.get(key) or _stores.setdefault(key, _make_store(kind, using))
    return store


def _make_store(kind: str, using: str) -> ReadingStore:
    if kind == "sql":
        from phm.telemetry.store.sql import SqlReadingStore

        return SqlReadingStore(using=using)
    from phm.telemetry.store.clickhouse import ClickHouseReadingStore, ClickHouseSchema, connect

    if not settings.PHM_CLICKHOUSE_URL:
        raise ValueError("PHM_READINGS_STORE=clickhouse needs PHM_CLICKHOUSE_URL (http://host:8123/phm or chdb:///dir)")
    schema = ClickHouseSchema(raw_days=settings.PHM_RETENTION_RAW_DAYS, rollup_days=settings.PHM_RETENTION_ROLLUP_DAYS)
    return ClickHouseReadingStore(client=connect(settings.PHM_CLICKHOUSE_URL), using=using, schema=schema)


def forget_stores() -> None:
    """Drop this process's stores (tests that change the settings)."""
    with _lock:
        _stores.clear()
