"""Fixtures of the readings-store tests: a ClickHouse store on chdb-core (the ClickHouse engine in
this process), one database per test on one embedded engine per test session."""

from __future__ import annotations

import uuid
from functools import lru_cache
from pathlib import Path

import pytest

pytest.importorskip("chdb")


@lru_cache(maxsize=1)
def _process_chdb_dir() -> Path:
    from django.conf import settings

    return Path(settings.DATA_ROOT) / "chdb"  # the test run's own temporary data root


@pytest.fixture(scope="session")
def chdb_dir():
    # chdb runs one embedded engine per process, on one directory: every test module shares it
    # (a session fixture imported into two modules would be two fixtures, and two directories).
    return _process_chdb_dir()


@pytest.fixture
def clickhouse_settings(settings, chdb_dir):
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
