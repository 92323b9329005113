"""Two evaluators racing on one point raise one alarm; alarm-flood statistics per operator."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections

from phm.alarms import selectors, services
from phm.alarms.models import Alarm
from phm.alarms.services import AlarmPolicy, Sample
from tests.conftest import ALL_DATABASES, make_plant


@pytest.mark.django_db(databases=ALL_DATABASES, transaction=True)
def test_two_workers_scoring_at_once_raise_one_alarm(db_alias, t0):
    pump, _ = make_plant(using=db_alias)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def evaluate(offset: int) -> None:
        try:
            barrier.wait()
            samples = [Sample(t0 + timedelta(seconds=offset + i), 3.0) for i in range(5)]
            services.evaluate_scores(equipment=pump, source="detector:race", samples=samples, policy=AlarmPolicy(threshold=1.0), using=db_alias)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections[db_alias].close()

    threads = [threading.Thread(target=evaluate, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Alarm.objects.using(db_alias).filter(equipment=pump, source="detector:race").count() == 1


def test_flood_statistics_count_annunciations_per_area_per_10_minutes(plant, t0):
    pump = plant[0]
    policy = AlarmPolicy(threshold=1.0)
    # 12 activations within 10 minutes (a flood by ISA-18.2), then 2 in the next window.
    for k in range(12):
        services.evaluate_scores(equipment=pump, source=f"s{k}", samples=[Sample(t0 + timedelta(seconds=30 * k), 2.0)], policy=policy)
    for k in range(2):
        services.evaluate_scores(equipment=pump, source=f"t{k}", samples=[Sample(t0 + timedelta(minutes=11 + k), 2.0)], policy=policy)
    stats = selectors.flood_statistics(start=t0, end=t0 + timedelta(minutes=20))
    assert stats.per_operator == {"north/water": [12, 2]}
    assert stats.peak_per_10min == {"north/water": 12} and stats.percent_time_in_flood == {"north/water": 50.0}
    assert stats.average_per_10min == {"north/water": 7.0}
