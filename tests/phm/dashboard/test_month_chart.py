"""A month of 1 Hz data on one sensor renders the equipment page (server-side bucketing over the
per-minute roll-ups). Slow: inserting 2.6 million rows takes most of a minute. How fast it is
is measured by ``bench/chart.py`` (machines here are shared, so no timing assertions here)."""

from __future__ import annotations

import math
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from phm.telemetry.fields import datetime_to_us
from phm.telemetry.rollups import rebuild_rollups
from tests.conftest import ALL_DATABASES

MONTH_S = 30 * 24 * 3600


def _insert_month_at_1hz(sensor_id: int, end, using: str = "default") -> None:
    end_us = datetime_to_us(end)
    start_us = end_us - MONTH_S * 1_000_000
    with connections[using].cursor() as cursor:
        for chunk_start in range(0, MONTH_S, 200_000):
            rows = [(sensor_id, start_us + i * 1_000_000, 2.0 + math.sin(i / 600.0), 192)
                    for i in range(chunk_start, min(chunk_start + 200_000, MONTH_S))]
            cursor.executemany("INSERT INTO telemetry_reading (sensor_id, ts, value, quality) VALUES (%s, %s, %s, %s)", rows)
    # Written around ingestion (as a bulk restore would be), so the roll-ups are rebuilt once.
    rebuild_rollups(sensor_ids=[sensor_id], using=using)


@pytest.mark.slow
def test_month_of_1hz_data_renders_the_equipment_page(client, plant, api_user):
    _, sensors = plant
    now = timezone.now()
    _insert_month_at_1hz(sensors["vibration"].pk, now - timedelta(seconds=1))
    client.force_login(api_user)
    client.get("/equipment/P-101/?range=1h")  # warm the URL and template caches
    started = time.perf_counter()
    response = client.get("/equipment/P-101/?range=30d")
    seconds = time.perf_counter() - started
    assert response.status_code == 200
    assert 'data-sensor="P-101.VIB"' in response.content.decode()
    print(f"30 d at 1 Hz ({MONTH_S} rows): page rendered in {seconds:.2f} s")


@pytest.mark.slow
@pytest.mark.django_db(databases=ALL_DATABASES)
def test_month_series_query_per_engine(db_alias):
    """The bucketing query alone, on SQLite and PostgreSQL: the part of the page that grows with the data."""
    from phm.telemetry.selectors import sensor_series
    from tests.conftest import make_plant

    _, sensors = make_plant(using=db_alias)
    now = timezone.now()
    _insert_month_at_1hz(sensors["vibration"].pk, now - timedelta(seconds=1), using=db_alias)
    started = time.perf_counter()
    series = sensor_series(sensor=sensors["vibration"], start=now - timedelta(days=30), end=now, max_points=600, using=db_alias)
    seconds = time.perf_counter() - started
    print(f"{db_alias}: sensor_series over 30 d at 1 Hz: {seconds:.2f} s, {len(series.points)} points")
    assert 590 <= len(series.points) <= 600 and series.downsampled
    assert sum(p.count for p in series.points) == MONTH_S - 1  # the first second lies just before the range
