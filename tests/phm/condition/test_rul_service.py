"""Health and RUL services: histories from work orders, the training job and its versions, stored
estimates with their interval and history count, the lead-time alert raised once, health rows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from phm.assets.models import Equipment, WorkOrder
from phm.condition import health, rul
from phm.condition.models import HealthPoint, RULEstimate, RULTrainingProgress
from tests.phm.condition.rul_helpers import FAST_PARAMS, NOW, SMALL_FLEET, demo_plant_with_histories


@pytest.fixture
def fleet(db, settings, tmp_path):
    settings.DATA_ROOT = tmp_path
    demo_plant_with_histories()


def train(**overrides):
    job = rul.start_rul_training(equipment_type="pump", params={**FAST_PARAMS, **overrides}, enqueue=False)
    return rul.run_rul_training(job_id=job.pk)


def test_histories_are_the_runs_ended_by_failure_work_orders(fleet):
    histories = rul.run_to_failure_histories(equipment_type="pump")
    assert len(histories) == SMALL_FLEET.sister_pumps
    sister = Equipment.objects.get(tag="SP-01")
    first = histories[0]
    # A second run on the same pump starts where its repair ended; a repair without failure is no history.
    WorkOrder.objects.create(equipment=sister, number="WO-X-1", opened_at=first.end + timedelta(days=30), ends_run=True)
    WorkOrder.objects.create(equipment=sister, number="WO-X-2", opened_at=first.end + timedelta(days=60),
                             failed_at=first.end + timedelta(days=60), ends_run=True)
    again = [h for h in rul.run_to_failure_histories(equipment_type="pump") if h.equipment == sister]
    assert len(again) == 2 and again[1].start == first.end + timedelta(days=30)


def test_too_few_histories_are_refused_with_the_count(fleet):
    with pytest.raises(rul.RULError, match="0 run-to-failure histories for equipment type 'fan'"):
        rul.start_rul_training(equipment_type="fan", enqueue=False)
    outcome = rul.estimate_rul(equipment=Equipment.objects.get(tag="F-401"), now=NOW)
    assert outcome.status == "not_enough_history" and "0 run-to-failure histories" in outcome.message


def test_training_job_versions_activates_and_rolls_back(fleet, tmp_path):
    job = train()
    assert job.status == "succeeded", job.error
    stages = list(RULTrainingProgress.objects.filter(job=job).values_list("stage", flat=True))
    assert stages[0] == "queued" and "interval fold 5/5" in stages and stages[-1] == "done"
    v1 = job.result
    assert v1.is_active and v1.histories == SMALL_FLEET.sister_pumps and len(v1.history_work_orders) == SMALL_FLEET.sister_pumps
    assert (tmp_path / v1.artifact / "config.json").is_file()
    assert "vibration_rms" in v1.measurements
    v2 = train(seed=1).result
    v1.refresh_from_db()
    assert v2.version == 2 and v2.is_active and not v1.is_active
    assert rul.rollback(equipment_type="pump") == v1
    with pytest.raises(rul.RULError, match="oldest"):
        rul.rollback(equipment_type="pump")


def test_estimate_has_an_interval_and_says_how_many_histories(fleet):
    train()
    pump = Equipment.objects.get(tag="P-101")
    outcome = rul.estimate_rul(equipment=pump, now=NOW)
    estimate = outcome.estimate
    assert outcome.status == "ok"
    assert estimate.lower_days <= estimate.rul_days <= estimate.upper_days
    assert estimate.histories == SMALL_FLEET.sister_pumps and estimate.level == 0.8
    # P-101 is 50 days into a 60-day life: far nearer failure than P-201 (10 of 80).
    young = rul.estimate_rul(equipment=Equipment.objects.get(tag="P-201"), now=NOW).estimate
    assert estimate.rul_days < young.rul_days
    # The same moment estimated twice is one row.
    rul.estimate_rul(equipment=pump, now=NOW)
    assert RULEstimate.objects.filter(equipment=pump).count() == 1


def test_lead_time_alert_is_raised_once_through_the_alarm_services(fleet):
    from phm.alarms.models import Alarm, OutboxMessage

    train()
    pump = Equipment.objects.get(tag="P-101")
    pump.planning_lead_time_days = 1000.0  # every lower bound is below it
    pump.save()
    for hours in (0, 24, 48):
        rul.estimate_rul(equipment=pump, now=NOW + timedelta(hours=hours))
    alarms = Alarm.objects.filter(equipment=pump, source=rul.ALARM_SOURCE)
    assert alarms.count() == 1 and "below planning lead time 1000 d" in alarms.get().message
    assert OutboxMessage.objects.filter(payload__alarm__id=alarms.get().pk).count() == 1 or OutboxMessage.objects.count() >= 1
    # A generous lead time raises nothing on another pump.
    rul.estimate_rul(equipment=Equipment.objects.get(tag="P-201"), now=NOW)
    assert not Alarm.objects.filter(equipment__tag="P-201", source=rul.ALARM_SOURCE).exists()


def test_health_is_stored_per_step_and_falls_with_wear(fleet):
    pump = Equipment.objects.get(tag="P-101")
    update = health.update_health(equipment=pump, now=NOW)
    points = list(HealthPoint.objects.filter(equipment=pump).order_by("ts"))
    assert update.points == len(points) > 1000  # hourly steps over ~50 days
    assert sum(p.health for p in points[:48]) / 48 > 0.85
    assert sum(p.health for p in points[-24:]) / 24 < 0.5
    # Recomputing replaces the run's rows rather than adding to them.
    health.update_health(equipment=pump, now=NOW)
    assert HealthPoint.objects.filter(equipment=pump).count() == len(points)


def test_beat_task_updates_health_and_rul_of_every_equipment(fleet, monkeypatch):
    from django.utils import timezone

    from phm.condition.tasks import update_health_and_rul

    train()
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    done = update_health_and_rul()
    assert done["failed"] == [] and done["rul"] == 2 and done["health"] >= 2


def test_a_missing_model_artifact_is_reported_not_raised(fleet, tmp_path):
    import shutil

    version = train().result
    shutil.rmtree(tmp_path / version.artifact)
    rul._loaded.clear()
    outcome = rul.estimate_rul(equipment=Equipment.objects.get(tag="P-101"), now=NOW)
    assert outcome.status == "model_unavailable" and f"pump v{version.version} cannot be loaded" in outcome.message
