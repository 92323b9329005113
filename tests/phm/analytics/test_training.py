"""Training jobs (run in-process here; the Celery path is in tests/e2e), versions, activation, rollback."""

from __future__ import annotations

from datetime import timedelta

import pytest

pytest.importorskip("models.detectors")

from phm.analytics import training
from phm.analytics.models import DetectorConfig, JobStatus, ModelVersion, TrainingProgress
from phm.telemetry.models import FaultInjection
from tests.phm.analytics.helpers import healthy_values, ingest


def make_config(plant, **overrides) -> DetectorConfig:
    pump, sensors = plant
    fields = {"equipment": pump, "name": "pca-main", "method": "pca", "params": {"smooth": 3, "min_duration": 2}, "stride_s": 1.0, "window_s": 30}
    config = DetectorConfig.objects.create(**{**fields, **overrides})
    config.sensors.set(sensors.values())
    return config


def train(config, start, end, **kwargs):
    job = training.start_training(config=config, train_start=start, train_end=end, **kwargs)
    return training.run_training(job_id=job.pk)


def test_training_creates_active_version_with_metrics_and_range(plant, t0):
    ingest(plant[1], t0, healthy_values(600))
    config = make_config(plant)
    job = train(config, t0, t0 + timedelta(seconds=600))
    assert job.status == JobStatus.SUCCEEDED, job.error
    version = job.result
    assert version.is_active and version.version == 1 and version.train_rows == 600
    assert (version.train_start, version.train_end) == (t0, t0 + timedelta(seconds=600))
    assert version.threshold == 1.0 and 0 <= version.metrics["train_fraction_above_threshold"] < 0.05
    assert (training.artifacts_root() / version.artifact / "detector.json").exists()


def test_progress_is_recorded_as_rows(plant, t0):
    ingest(plant[1], t0, healthy_values(300))
    job = train(make_config(plant), t0, t0 + timedelta(seconds=300))
    stages = list(TrainingProgress.objects.filter(job=job).values_list("stage", "percent"))
    assert stages[0] == ("queued", 0.0) and stages[-1] == ("done", 100.0)
    assert [p for _, p in stages] == sorted(p for _, p in stages)
    assert job.percent == 100.0


def test_epoch_progress_reports_loss_and_eta(plant, t0):
    ingest(plant[1], t0, healthy_values(400))
    params = {"llm": "none", "seq_len": 16, "horizon": 4, "patch_len": 4, "stride": 2, "epochs": 2, "max_steps_per_epoch": 3, "smooth": 2}
    job = train(make_config(plant, name="fc", method="reprogram", params=params), t0, t0 + timedelta(seconds=400))
    assert job.status == JobStatus.SUCCEEDED, job.error
    epochs = list(TrainingProgress.objects.filter(job=job, epoch__isnull=False).values_list("epoch", "epochs", "loss", "eta_s"))
    assert [(e, n) for e, n, _, _ in epochs] == [(1, 2), (2, 2)]
    assert all(loss > 0 and eta >= 0 for _, _, loss, eta in epochs)


def test_fault_periods_are_left_out_of_training(plant, t0):
    ingest(plant[1], t0, healthy_values(600), fault_from=300)
    FaultInjection.objects.create(equipment=plant[0], fault="bearing", start=t0 + timedelta(seconds=300), end=t0 + timedelta(seconds=600))
    version = train(make_config(plant), t0, t0 + timedelta(seconds=600)).result
    assert version.excluded_faults == 1 and version.train_rows == 300


def test_the_recovery_after_a_fault_is_left_out_of_training_too(plant, t0):
    # A fault's end is its repair; temperatures and pressures take a while to settle back (the
    # demo's P-101 bearing temperature lags 15 min), and a detector that learnt that stretch as
    # normal got a threshold three times too high.
    ingest(plant[1], t0, healthy_values(3 * 3600))
    fault_end = t0 + timedelta(seconds=3600)
    FaultInjection.objects.create(equipment=plant[0], fault="bearing", start=t0 + timedelta(seconds=1800), end=fault_end)
    version = train(make_config(plant), t0, t0 + timedelta(seconds=3 * 3600)).result
    settle = int(training.FAULT_SETTLE.total_seconds())
    assert version.excluded_faults == 1 and version.train_rows == 3 * 3600 - 1800 - settle


def test_too_little_data_fails_the_job_with_a_reason(plant, t0):
    ingest(plant[1], t0, healthy_values(20))
    job = train(make_config(plant), t0, t0 + timedelta(seconds=20))
    assert job.status == JobStatus.FAILED and "need 50" in job.error


def test_unknown_detector_parameter_fails_with_its_name(plant, t0):
    ingest(plant[1], t0, healthy_values(100))
    job = train(make_config(plant, params={"bogus": 1}), t0, t0 + timedelta(seconds=100))
    assert job.status == JobStatus.FAILED and "bogus" in job.error


def test_second_run_of_a_claimed_job_does_nothing(plant, t0):
    ingest(plant[1], t0, healthy_values(100))
    job = train(make_config(plant), t0, t0 + timedelta(seconds=100))
    again = training.run_training(job_id=job.pk)
    assert again.status == JobStatus.SUCCEEDED and ModelVersion.objects.count() == 1


def test_one_active_version_and_rollback(plant, t0):
    ingest(plant[1], t0, healthy_values(300))
    config = make_config(plant)
    v1 = train(config, t0, t0 + timedelta(seconds=200)).result
    v2 = train(config, t0, t0 + timedelta(seconds=300)).result
    assert list(ModelVersion.objects.filter(is_active=True)) == [v2]
    assert training.rollback(config=config) == v1
    assert list(ModelVersion.objects.filter(is_active=True).values_list("version", flat=True)) == [1]
    with pytest.raises(training.TrainingError, match="oldest version"):
        training.rollback(config=config)


def test_training_range_must_be_ordered(plant, t0):
    with pytest.raises(training.TrainingError, match="must be after"):
        training.start_training(config=make_config(plant), train_start=t0, train_end=t0)
