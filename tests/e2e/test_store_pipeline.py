"""Ingestion -> detector scoring -> alarm -> diagnosis, with readings in ClickHouse (chdb, in this
process) and in daily-partitioned PostgreSQL: the app's own path, every read through the store.

The PostgreSQL run needs the app's default database on PostgreSQL (scoring and training use the
default alias); when this run's default is SQLite it runs itself again in a child pytest with
``DATABASE_URL`` on the local server, and skips with the reason when there is none.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

pytest.importorskip("models.detectors")

from phm.alarms.models import Alarm
from phm.analytics import diagnosis, diagnosis_demo, scoring, training
from phm.analytics.models import DetectorConfig, DiagnosisStatus
from phm.assets.models import Equipment
from phm.telemetry.fields import datetime_to_us
from phm.telemetry.models import Reading
from phm.telemetry.store import DAY_US, forget_stores, get_store, partitions
from tests.phm.analytics.diagnosis_helpers import (  # noqa: F401  (fixtures)
    alarm_end,
    diagnoser_version,
    fresh_knowledge_indexes,
    tiny_diagnoser_folder,
    tiny_models,
)
from tests.phm.telemetry.store_helpers import clickhouse_settings  # noqa: F401  (fixtures)

HISTORY_MIN, FAULT_MIN = 50, 20
CHILD_FLAG = "PHM_STORE_PIPELINE_CHILD"


def _run_pipeline() -> tuple[Alarm, object]:
    """Play a bearing fault into storage through ingestion, train a detector on the healthy part,
    score incrementally until it alarms, diagnose the alarm."""
    from connectors.simulator import DEMO_PLANT
    from phm.assets.services import create_plant

    create_plant(plant=DEMO_PLANT)
    end = alarm_end()
    injection = diagnosis_demo.play_fault(equipment_tag="P-101", fault="bearing_wear", end=end, fault_minutes=FAULT_MIN,
                                          history_minutes=HISTORY_MIN, image=True)
    pump = Equipment.objects.get(tag="P-101")
    config = DetectorConfig.objects.create(equipment=pump, name="pca-store", method="pca", params={"smooth": 5, "min_duration": 3},
                                           stride_s=10.0, window_s=60)
    config.sensors.set(pump.sensors.filter(enabled=True))
    start = end - timedelta(minutes=HISTORY_MIN)
    job = training.start_training(config=config, train_start=start, train_end=injection.start)
    assert training.run_training(job_id=job.pk).result is not None
    config.refresh_from_db()
    result = scoring.score_incremental(config=config)
    assert result.steps > 0, result.stopped
    alarm = Alarm.objects.get(equipment=pump, source=config.alarm_source)
    assert injection.start <= alarm.raised_at <= end
    stored = diagnosis.run_diagnosis(alarm_id=alarm.pk)
    return alarm, stored


def _assert_diagnosed(stored) -> None:
    assert stored.status == DiagnosisStatus.DONE, stored.error
    assert stored.fault and stored.result["evidence"]["sensors"], "the diagnosis read no sensor window"


@pytest.mark.django_db
def test_pipeline_on_clickhouse(clickhouse_settings, diagnoser_version):
    alarm, stored = _run_pipeline()
    _assert_diagnosed(stored)
    assert Reading.objects.count() == 0  # every reading went to ClickHouse
    store = get_store()
    sensor_ids = list(alarm.equipment.sensors.values_list("pk", flat=True))
    assert store.first_ts(sensor_ids, 0, 2**62) == datetime_to_us(alarm_end() - timedelta(minutes=HISTORY_MIN))


@pytest.mark.django_db
def test_pipeline_on_partitioned_postgresql(diagnoser_version):
    if connections["default"].vendor == "postgresql":
        forget_stores()
        partitions.forget_known_days()
        from django.core.management import call_command

        call_command("phm_readings", "partition", "--ahead-days", "1")
        try:
            _, stored = _run_pipeline()
            _assert_diagnosed(stored)
            assert partitions.is_partitioned("default")
            played_day = datetime_to_us(alarm_end()) // DAY_US
            assert played_day in {p.start_us // DAY_US for p in partitions.partitions("default")}
        finally:
            forget_stores()
            partitions.forget_known_days()
        return
    if os.environ.get(CHILD_FLAG):
        pytest.fail("the child run's default database is not PostgreSQL")
    if "postgres" not in settings.DATABASES:
        pytest.skip(settings.POSTGRES_UNAVAILABLE_REASON or "no PostgreSQL reachable")
    _run_child_on_postgresql()


def _run_child_on_postgresql() -> None:
    base = settings.POSTGRES_TEST_URL.rsplit("/", 1)[0]
    env = {**os.environ, CHILD_FLAG: "1", "PHM_TEST_POSTGRES": "0",
           # A database name of its own: the child's test database is test_<name>.
           "DATABASE_URL": f"{base}/phm_store_e2e_{uuid.uuid4().hex[:8]}"}
    env.pop("PHM_DATA_ROOT", None)
    root = Path(__file__).resolve().parents[2]
    child = subprocess.run(
        [sys.executable, "-m", "pytest", f"{Path(__file__).relative_to(root)}::test_pipeline_on_partitioned_postgresql", "-q", "-x",
         "-p", "no:cacheprovider"],
        cwd=root, env=env, capture_output=True, text=True, timeout=900,
    )
    assert child.returncode == 0 and " passed" in child.stdout, child.stdout[-4000:] + child.stderr[-2000:]
