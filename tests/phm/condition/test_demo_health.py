"""The demo's hourly history of P-101 / P-201 gives a health trend a planner believes: it follows
the live simulator's daily cycle and noise (so the healthy baseline knows how much a healthy pump
moves), covers every sensor the live data has (so the live readings do not cut the history off),
and declines slowly with the wear instead of dropping to 0 in the first weeks."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from phm.assets.models import Equipment
from phm.condition import health
from phm.condition.demo_rul import DemoFleet, create_demo_histories, hourly_profile
from phm.condition.models import HealthPoint
from phm.telemetry.fields import datetime_to_us
from phm.telemetry.store import get_store
from tests.phm.condition.rul_helpers import NOW

#: The demo's own current runs (P-101 70 of 105 days, P-201 30 of 120); one sister pump keeps it quick.
FLEET = DemoFleet(sister_pumps=1, life_days=(40, 50))


@pytest.fixture
def demo(db, settings, tmp_path):
    from connectors.simulator import DEMO_PLANT
    from phm.assets.services import create_plant

    settings.DATA_ROOT = tmp_path
    create_plant(plant=DEMO_PLANT)
    # The live simulator's backfill comes first (phm_demo): two hours of every pump sensor, at the
    # simulator's healthy level of that hour.
    live = []
    for tag in ("P-101", "P-201"):
        profile = hourly_profile(tag=tag)
        for sensor in Equipment.objects.get(tag=tag).sensors.all():
            for s in range(1, 7200, 60):
                at = NOW - timedelta(seconds=s)
                live.append((sensor.pk, datetime_to_us(at), float(profile.by_hour[sensor.tag.split(".", 1)[1]][at.hour]), 192))
    get_store().write(live)
    create_demo_histories(now=NOW, fleet=FLEET)
    for tag in ("P-101", "P-201"):
        health.update_health(equipment=Equipment.objects.get(tag=tag), now=NOW)


def trend(tag: str) -> np.ndarray:
    return np.array(list(HealthPoint.objects.filter(equipment__tag=tag).order_by("ts").values_list("health", flat=True)))


def test_every_live_sensor_has_history_so_the_trend_covers_the_run(demo):
    for tag, days in (("P-101", 70), ("P-201", 30)):
        assert len(trend(tag)) >= (days - 1) * 24, tag


def test_history_follows_the_simulators_daily_cycle(demo):
    current = Equipment.objects.get(tag="P-101").sensors.get(tag__endswith=".CURRENT")
    start = NOW - timedelta(days=40)
    day = [v for _, v in get_store().raw_points(current.pk, datetime_to_us(start), datetime_to_us(start + timedelta(days=1)), limit=100)]
    assert len(day) == 24 and (max(day) - min(day)) / np.mean(day) > 0.3  # live: about 44-94 A over a day


def test_health_declines_slowly_with_wear(demo):
    p101, p201 = trend("P-101"), trend("P-201")
    for name, series in (("P-101", p101), ("P-201", p201)):
        assert np.median(series[48:7 * 24]) >= 0.8, f"{name} first week"
    assert np.median(p201[-24:]) >= 0.5  # 30 of 120 days: a young pump
    assert 0.05 < np.median(p101[-24:]) < np.median(p201[-24:])  # 70 of 105 days: worn, not yet at the end
    assert np.median(p101[-7 * 24:]) < np.median(p101[14 * 24:21 * 24])



def test_a_step_is_the_mean_over_time_not_over_samples(db):
    """Where hourly history meets 1 Hz live data (the demo, or a historian backfill before a live
    connector), a day step is the day's mean: two live hours must not outweigh 22 hourly ones."""
    from tests.conftest import make_plant

    pump, _ = make_plant()
    sensor = pump.sensors.order_by("pk").first()
    day_start = NOW - timedelta(days=1)
    rows = [(sensor.pk, datetime_to_us(day_start + timedelta(hours=h)), 1.0, 192) for h in range(22)]
    rows += [(sensor.pk, datetime_to_us(day_start + timedelta(hours=22, seconds=s)), 2.0, 192) for s in range(7200)]
    get_store().write(rows)
    frame = health.step_frame(sensors=[sensor], columns=["x"], start=day_start, end=NOW, step_s=86400.0)
    assert frame["x"].tolist() == pytest.approx([(22 * 1.0 + 2 * 2.0) / 24])
