"""phm_demo: the plant, its backfilled history with recorded faults, and fault injection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from phm.assets.models import Equipment, Sensor
from phm.telemetry.models import FaultInjection, LogEvent, Reading


def run(*args) -> str:
    out = StringIO()
    call_command("phm_demo", *args, "--no-knowledge-base", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_creates_plant_and_history_with_recorded_faults():
    output = run("--hours", "0.25", "--no-rul")
    assert Equipment.objects.count() == 5 and Sensor.objects.count() == 29
    assert {f.fault for f in FaultInjection.objects.all()} == {"cavitation", "condenser_fouling", "stuck_sensor", "bearing_wear"}
    # 23 sensors at 1 Hz and 6 at 0.1 Hz over 15 minutes
    assert Reading.objects.count() == pytest.approx(23 * 900 + 6 * 90, abs=40)
    assert LogEvent.objects.exists()
    assert "backfilled" in output
    from phm.analytics.models import ModelVersion

    # One detector per equipment. With only 15 min of history the chiller (10 s sampling) may have
    # too few fault-free steps; then the command says so instead of training on faults.
    active = set(ModelVersion.objects.filter(is_active=True).values_list("config__equipment__tag", flat=True))
    assert {"P-101", "P-201", "M-101", "F-401"} <= active
    assert "CH-501" in active or "CH-501: training failed: " in output
    assert "history exists already" in run("--hours", "0.25")  # idempotent
    assert Equipment.objects.count() == 5


@pytest.mark.django_db
def test_pumps_get_run_to_failure_histories_and_an_active_rul_model(settings, tmp_path):
    from phm.condition.models import HealthPoint, RULEstimate, RULModelVersion

    settings.DATA_ROOT = tmp_path
    output = run("--hours", "0.02", "--no-detectors")
    version = RULModelVersion.objects.get(is_active=True)
    assert version.equipment_type == "pump" and version.histories == 16
    assert Equipment.objects.filter(tag__startswith="SP-").count() == 16
    assert not Sensor.objects.filter(equipment__tag__startswith="SP-", enabled=True).exists()  # retired: never stale
    for tag in ("P-101", "P-201"):
        assert RULEstimate.objects.filter(equipment__tag=tag).exists() and HealthPoint.objects.filter(equipment__tag=tag).exists()
        assert f"{tag}: RUL " in output
    # P-101 is further into its life than P-201.
    assert RULEstimate.objects.get(equipment__tag="P-101").rul_days < RULEstimate.objects.get(equipment__tag="P-201").rul_days


@pytest.mark.django_db
def test_inject_records_a_fault_for_the_running_simulator():
    run("--hours", "0")
    output = run("--inject", "cavitation", "--equipment", "P-101", "--duration-minutes", "5")
    fault = FaultInjection.objects.get(source="manual")
    assert fault.fault == "cavitation" and fault.equipment.tag == "P-101" and "injected cavitation" in output


@pytest.mark.django_db
def test_inject_refuses_a_fault_the_equipment_cannot_have():
    run("--hours", "0")
    with pytest.raises(CommandError, match="cannot have 'cavitation'"):
        run("--inject", "cavitation", "--equipment", "CH-501")
    with pytest.raises(CommandError, match="needs --equipment"):
        run("--inject", "cavitation")


@pytest.mark.django_db
def test_live_stream_resumes_after_the_backfill_without_a_gap():
    from datetime import timedelta

    from django.utils import timezone

    from connectors.simulator import DEMO_PLANT
    from phm.telemetry.simulation import _resume_point

    now = timezone.now().replace(microsecond=0)
    assert _resume_point(plant=DEMO_PLANT, now=now) == now  # nothing stored yet
    run("--hours", "0.02")
    newest = Reading.objects.order_by("-ts").first().ts
    assert _resume_point(plant=DEMO_PLANT, now=newest + timedelta(minutes=3)) == newest + timedelta(seconds=1)
    assert _resume_point(plant=DEMO_PLANT, now=newest + timedelta(hours=2)) == newest + timedelta(hours=2)


@pytest.mark.django_db
def test_the_demo_history_ends_its_last_fault_long_enough_before_now_to_start_without_an_alarm():
    """Live check, 6 December: the day-long history's last fault (P-101 bearing wear) ended 58 min
    before the live stream began; the bearing was still cooling, and the demo opened with an alarm
    ("TEMP_BRG low") that every later P-101 fault continued instead of raising its own."""
    from connectors.simulator import DEMO_PLANT
    from phm.assets.services import create_plant
    from phm.telemetry.simulation import schedule_demo_history

    create_plant(plant=DEMO_PLANT)
    now = datetime(2026, 12, 6, 19, 52, tzinfo=UTC)
    faults = schedule_demo_history(now=now, hours=24)
    assert faults
    latest_end = max(f.end for f in faults)
    assert now - latest_end >= timedelta(hours=2), latest_end
    assert min(f.start for f in faults) >= now - timedelta(hours=16)  # the first third stays clean for training
