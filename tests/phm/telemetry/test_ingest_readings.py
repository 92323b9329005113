"""ingest_readings on SQLite and PostgreSQL: bulk, idempotent, quarantine with reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from connectors.records import Quality, Reading
from phm.telemetry.models import LatestReading, QuarantinedRecord, Reading as ReadingRow
from phm.telemetry.services import ingest_readings
from tests.conftest import ALL_DATABASES, make_plant

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)


def test_batch_is_stored_and_counted(db_alias, t0):
    _, sensors = make_plant(db_alias)
    batch = [Reading("P-101.VIB", t0 + timedelta(seconds=i), 2.0 + i / 100) for i in range(500)]
    result = ingest_readings(readings=batch, using=db_alias)
    assert (result.accepted, result.duplicate, result.rejected) == (500, 0, 0)
    assert ReadingRow.objects.using(db_alias).filter(sensor=sensors["vibration"]).count() == 500


def test_replayed_batch_counts_duplicates_and_stores_nothing_twice(db_alias, t0):
    make_plant(db_alias)
    batch = [Reading("P-101.VIB", t0 + timedelta(seconds=i), float(i)) for i in range(100)]
    ingest_readings(readings=batch[:60], using=db_alias)
    result = ingest_readings(readings=batch, using=db_alias)
    assert (result.accepted, result.duplicate) == (40, 60)
    assert ReadingRow.objects.using(db_alias).count() == 100


def test_same_instant_in_another_zone_is_a_duplicate(db_alias, t0):
    make_plant(db_alias)
    ingest_readings(readings=[Reading("P-101.VIB", t0, 1.0)], using=db_alias)
    plus_two = t0.astimezone(timezone(timedelta(hours=2)))
    result = ingest_readings(readings=[Reading("P-101.VIB", plus_two, 9.0)], using=db_alias)
    assert result.duplicate == 1
    assert ReadingRow.objects.using(db_alias).get().value == 1.0


def test_bad_records_are_quarantined_and_good_ones_kept(db_alias, t0):
    make_plant(db_alias)
    batch = [
        {"sensor": "P-101.VIB", "ts": "2026-03-01T00:00:00Z", "value": 1.5},
        {"sensor": "NOPE", "ts": "2026-03-01T00:00:00Z", "value": 1.5},
        {"sensor": "P-101.VIB", "ts": "2026-03-01T00:00:01", "value": 1.5},
        {"sensor": "P-101.VIB", "ts": "2026-03-01T00:00:02Z", "value": float("inf")},
        {"sensor": "P-101.VIB", "ts": "2026-03-01T00:00:03Z", "value": "high"},
        {"sensor": "P-101.VIB", "ts": "yesterday", "value": 1.0},
        {"sensor": "P-101.VIB", "ts": "2026-03-01T00:00:04+01:00", "value": 2},
    ]
    result = ingest_readings(readings=batch, channel="test", using=db_alias)
    assert (result.accepted, result.rejected) == (2, 5)
    errors = {r.index: r.error for r in result.rejections}
    assert "unknown sensor 'NOPE'" in errors[1]
    assert "no time zone" in errors[2]
    assert "not finite" in errors[3]
    assert "must be a number" in errors[4]
    assert "not an ISO 8601" in errors[5]
    quarantined = QuarantinedRecord.objects.using(db_alias).order_by("batch_index")
    assert [q.batch_index for q in quarantined] == [1, 2, 3, 4, 5]
    assert quarantined[0].payload["sensor"] == "NOPE" and quarantined[0].channel == "test"


def test_out_of_range_value_is_kept_with_uncertain_quality(db_alias, t0):
    make_plant(db_alias)
    ingest_readings(readings=[Reading("P-101.VIB", t0, 75.0)], using=db_alias)
    assert ReadingRow.objects.using(db_alias).get().quality == Quality.UNCERTAIN


def test_latest_reading_only_moves_forward(db_alias, t0):
    _, sensors = make_plant(db_alias)
    ingest_readings(readings=[Reading("P-101.TEMP", t0 + timedelta(minutes=5), 40.0)], using=db_alias)
    ingest_readings(readings=[Reading("P-101.TEMP", t0, 30.0)], using=db_alias)  # late arrival
    latest = LatestReading.objects.using(db_alias).get(sensor=sensors["temperature"])
    assert latest.value == 40.0 and latest.ts == t0 + timedelta(minutes=5)


def test_timestamps_round_trip_exactly(db_alias):
    make_plant(db_alias)
    ts = datetime(2026, 3, 1, 12, 0, 0, 123457, tzinfo=UTC)
    ingest_readings(readings=[Reading("P-101.VIB", ts, 1.0)], using=db_alias)
    assert ReadingRow.objects.using(db_alias).get().ts == ts
    assert ReadingRow.objects.using(db_alias).filter(ts__gte=ts).count() == 1


def test_staleness_counts_sampling_periods_with_a_one_second_floor(db_alias, t0):
    from phm.telemetry.models import LatestReading
    from phm.telemetry.selectors import is_stale

    _, sensors = make_plant(db_alias)
    vibration = sensors["vibration"]
    assert is_stale(sensor=vibration, latest=None, now=t0)
    ingest_readings(readings=[Reading("P-101.VIB", t0, 1.0)], using=db_alias)
    latest = LatestReading.objects.using(db_alias).get(sensor=vibration)
    assert not is_stale(sensor=vibration, latest=latest, now=t0 + timedelta(seconds=5))
    assert is_stale(sensor=vibration, latest=latest, now=t0 + timedelta(seconds=6))
    vibration.sampling_period_s = 0.1  # a fast sensor is still given 5 s, not 0.5 s
    assert not is_stale(sensor=vibration, latest=latest, now=t0 + timedelta(seconds=4))
