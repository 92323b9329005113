"""Fixtures of the readings-store tests: a ClickHouse store on chdb-core (the ClickHouse engine in
this process), one database per test on one embedded engine per test session."""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("chdb")


@pytest.fixture
def clickhouse_settings(settings, chdb_dir):  # chdb_dir: tests/conftest.py, one per session
    """PHM_READINGS_STORE=clickhouse on a fresh chdb database; dropped afterwards."""
    from phm.telemetry.store import forget_stores, get_store

    settings.PHM_READINGS_STORE = "clickhouse"
    settings.PHM_CLICKHOUSE_URL = f"chdb://{chdb_dir}?database=t_{uuid.uuid4().hex[:12]}"
    settings.PHM_RETENTION_RAW_DAYS = 0
    settings.PHM_RETENTION_ROLLUP_DAYS = 0
    forget_stores()
    yield settings
    get_store().drop_everything()
    forget_stores()


@pytest.fixture
def ch_store(clickhouse_settings):
    from phm.telemetry.store import get_store

    return get_store()
