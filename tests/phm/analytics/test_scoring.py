"""Incremental scoring: only new steps, backlog in order, cursor claimed once, scores into alarms."""

from __future__ import annotations

from datetime import timedelta

import pytest

pytest.importorskip("models.detectors")

from connectors.records import Reading
from phm.alarms.models import Alarm, AlarmState, AlarmTransition
from phm.analytics import scoring, training
from phm.analytics.models import AnomalyScore, DetectorConfig
from phm.telemetry.services import ingest_readings
from tests.phm.analytics.helpers import healthy_values, ingest
from tests.phm.analytics.test_training import make_config

TRAIN_S = 400


@pytest.fixture
def trained(plant, t0):
    """A PCA detector trained on [t0, t0+400 s) of healthy data."""
    ingest(plant[1], t0, healthy_values(TRAIN_S))
    config = make_config(plant)
    job = training.start_training(config=config, train_start=t0, train_end=t0 + timedelta(seconds=TRAIN_S))
    assert training.run_training(job_id=job.pk).result is not None
    return DetectorConfig.objects.get(pk=config.pk)


def test_scores_only_steps_after_training_end_and_cursor(trained, plant, t0):
    start = t0 + timedelta(seconds=TRAIN_S)
    ingest(plant[1], start, healthy_values(100, seed=1))
    first = scoring.score_incremental(config=trained)
    stored = list(AnomalyScore.objects.filter(config=trained).order_by("ts").values_list("ts", flat=True))
    assert first.steps == len(stored) == 100
    assert stored[0] == start and stored[-1] == start + timedelta(seconds=99)
    trained.refresh_from_db()
    assert trained.scored_until == stored[-1]
    assert scoring.score_incremental(config=trained).stopped == "up to date"


def test_step_is_scored_only_when_every_sensor_reported(trained, plant, t0):
    start = t0 + timedelta(seconds=TRAIN_S)
    ingest(plant[1], start, healthy_values(10, seed=1))
    assert scoring.score_incremental(config=trained).steps == 10
    late = start + timedelta(seconds=20)
    ingest_readings(readings=[Reading(plant[1]["vibration"].tag, late, 2.0), Reading(plant[1]["temperature"].tag, late, 40.0)])
    trained.refresh_from_db()
    assert scoring.score_incremental(config=trained).stopped == "up to date"  # pressure has not reported +20 s yet
    ingest_readings(readings=[Reading(plant[1]["pressure"].tag, late, 6.0)])
    trained.refresh_from_db()
    assert scoring.score_incremental(config=trained).steps == 1  # +10..+19 is a gap, not invented values
    assert AnomalyScore.objects.order_by("ts").last().ts == late


def test_fault_raises_alarm_and_recovery_returns_it_to_normal(trained, plant, t0):
    start = t0 + timedelta(seconds=TRAIN_S)
    values = healthy_values(300, seed=2)
    values[100:200, 0] += 6.0
    ingest(plant[1], start, values)
    scoring.score_incremental(config=trained)
    alarm = Alarm.objects.get(source="detector:pca-main")
    assert alarm.state == AlarmState.RTN_UNACK
    assert start + timedelta(seconds=100) <= alarm.raised_at <= start + timedelta(seconds=103)
    assert start + timedelta(seconds=200) <= alarm.cleared_at <= start + timedelta(seconds=210)
    assert alarm.peak_score > 1.0


def test_backlog_after_downtime_is_scored_in_order_in_chunks(trained, plant, t0):
    DetectorConfig.objects.filter(pk=trained.pk).update(max_chunk_steps=250)
    trained.refresh_from_db()
    start = t0 + timedelta(seconds=TRAIN_S)
    values = healthy_values(1000, seed=3)
    values[300:400, 0] += 6.0
    values[700:800, 0] += 6.0
    ingest(plant[1], start, values)
    result = scoring.score_incremental(config=trained)
    assert result.chunks == 4 and result.steps == 1000
    transitions = list(AlarmTransition.objects.order_by("id").values_list("at", "to_state"))
    assert [s for _, s in transitions] == [AlarmState.ACTIVE_UNACK, AlarmState.RTN_UNACK, AlarmState.ACTIVE_UNACK, AlarmState.RTN_UNACK]
    assert [t for t, _ in transitions] == sorted(t for t, _ in transitions)


def test_chunk_limit_resumes_where_it_stopped(trained, plant, t0):
    DetectorConfig.objects.filter(pk=trained.pk).update(max_chunk_steps=100)
    trained.refresh_from_db()
    ingest(plant[1], t0 + timedelta(seconds=TRAIN_S), healthy_values(300, seed=4))
    assert scoring.score_incremental(config=trained, max_chunks=1).stopped == "chunk limit reached"
    trained.refresh_from_db()
    rest = scoring.score_incremental(config=trained)
    assert AnomalyScore.objects.count() == 300 and rest.chunks == 2


def test_a_worker_with_a_stale_cursor_stores_nothing(trained, plant, t0):
    ingest(plant[1], t0 + timedelta(seconds=TRAIN_S), healthy_values(50, seed=5))
    stale = DetectorConfig.objects.get(pk=trained.pk)
    scoring.score_incremental(config=trained)
    count = AnomalyScore.objects.count()
    result = scoring.score_incremental(config=stale)  # read the cursor before the other worker moved it
    assert result.stopped == "another worker scored these steps" and AnomalyScore.objects.count() == count


def test_due_configs_claims_each_detector_once_per_interval(trained):
    assert scoring.due_configs() == [trained.pk]
    assert scoring.due_configs() == []


def test_detector_without_active_version_is_not_scored(plant):
    config = make_config(plant, name="untrained")
    assert scoring.score_incremental(config=config).stopped == "no active model version"
    assert config.pk not in scoring.due_configs()


def test_steps_whose_context_window_is_nearly_empty_are_not_scored(trained, plant, t0):
    """Hourly history under a 1 Hz detector (the demo's RUL history of its pumps, replayed by a
    backtest, raised two 'stuck sensor' alarms): a step whose window holds a handful of the samples
    the detector was trained on is not judged; 1 Hz data after it is."""
    start = t0 + timedelta(seconds=TRAIN_S) + timedelta(hours=1)
    ingest(plant[1], start, healthy_values(5, seed=4) + 3.0, step_s=3600.0)  # far off normal, one row an hour
    assert scoring.score_incremental(config=trained).steps == 0
    later = start + timedelta(hours=6)
    ingest(plant[1], later, healthy_values(60, seed=5))
    trained.refresh_from_db()
    scored = scoring.score_incremental(config=trained).steps
    assert scored == 60 - 1  # every 1 Hz step whose window holds at least 2 rows (the first holds only itself)
    assert not Alarm.objects.exists()
