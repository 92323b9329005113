"""Backtests replay stored history through the live scoring, alarm rules and diagnosis into their
own rows, score them against the recorded faults, and leave every live table alone."""

from __future__ import annotations

from datetime import timedelta

import pytest

from phm.alarms.models import Alarm, AlarmPoint, AlarmTransition, OutboxMessage, WebhookDelivery, WebhookEndpoint, new_webhook_secret
from phm.alarms.receiver import WebhookReceiver
from phm.alarms.services import AlarmPolicy, Sample
from phm.analytics.models import AnomalyScore, DetectorConfig, Diagnosis
from phm.backtests import services
from phm.backtests.models import BacktestAlarm, BacktestDiagnosis, BacktestProgress
from phm.backtests.replay import alarms_from_samples, downsample_max
from tests.phm.backtests.helpers import (  # noqa: F401 (fixtures)
    FAULT_START,
    HISTORY_END,
    TRAIN_END,
    diagnoser_version,
    fresh_knowledge_indexes,
    pump_history,
    tiny_diagnoser_folder,
    tiny_models,
)


def live_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count()
            for model in (Alarm, AlarmPoint, AlarmTransition, OutboxMessage, WebhookDelivery, Diagnosis, AnomalyScore)}


def test_backtest_detects_the_recorded_fault_and_diagnoses_it_at_each_offset(pump_history, diagnoser_version):
    run = services.create_backtest(start=TRAIN_END, end=HISTORY_END, enqueue=False)
    run = services.run_backtest(run_id=run.pk)
    assert run.status == "succeeded", run.error
    detection = run.report["detection"]
    assert detection["faults"] == 1 and detection["detected"] == 1
    delay = run.report["faults"][0]["delay_s"]
    assert 0 <= delay < 30 * 60
    alarm = BacktestAlarm.objects.filter(run=run, fault=pump_history).order_by("raised_at").first()
    assert alarm is not None and alarm.raised_at == FAULT_START + timedelta(seconds=delay)
    offsets = list(BacktestDiagnosis.objects.filter(alarm=alarm).values_list("offset_s", flat=True))
    assert offsets[0] == 0.0 and offsets == sorted(offsets)
    at_raise = BacktestDiagnosis.objects.get(alarm=alarm, offset_s=0)
    assert at_raise.fault and at_raise.error == "" and at_raise.expected == "cavitation" and at_raise.correct == (at_raise.fault == "cavitation")
    assert run.report["diagnosis"]["by_offset_s"]["0"]["of_fault_alarms"] >= 1
    assert run.report["diagnosis"]["raise_to_diagnosis_ms"]["p50"] > 0
    assert run.series.get().steps == 3599  # steps in (start, end]: the history stops just before end
    stages = list(BacktestProgress.objects.filter(run=run).values_list("stage", flat=True))
    assert stages[0] == "queued" and stages[-1] == "done" and any(s.startswith("diagnosing") for s in stages)


def test_a_backtest_never_touches_live_alarms_journal_outbox_or_webhooks(pump_history, diagnoser_version):
    config = DetectorConfig.objects.get(equipment__tag="P-201")
    before, cursor = live_counts(), config.scored_until
    secret = new_webhook_secret()
    with WebhookReceiver(secret) as receiver:
        WebhookEndpoint.objects.create(url=receiver.url, secret=secret)
        run = services.run_backtest(run_id=services.create_backtest(start=TRAIN_END, end=HISTORY_END, enqueue=False).pk)
        from phm.alarms.delivery import deliver_due

        deliver_due(worker="test", max_seconds=1)
        assert receiver.state.accepted == [] and receiver.state.rejected == []
    assert run.status == "succeeded" and BacktestAlarm.objects.filter(run=run).exists()
    assert live_counts() == before
    config.refresh_from_db()
    assert config.scored_until == cursor


def test_without_a_diagnoser_the_run_says_how_to_train_one(pump_history):
    run = services.run_backtest(run_id=services.create_backtest(start=TRAIN_END, end=HISTORY_END, enqueue=False).pk)
    assert run.status == "failed" and "phm_diagnose --train-demo" in run.error


def test_alarms_only_run_needs_no_diagnoser(pump_history):
    run = services.run_backtest(run_id=services.create_backtest(start=TRAIN_END, end=HISTORY_END, diagnose=False, enqueue=False).pk)
    assert run.status == "succeeded" and run.report["detection"]["detected"] == 1
    assert not BacktestDiagnosis.objects.filter(alarm__run=run).exists()


def test_a_run_is_claimed_once(pump_history):
    run = services.create_backtest(start=TRAIN_END, end=HISTORY_END, diagnose=False, enqueue=False)
    first = services.run_backtest(run_id=run.pk)
    alarms = BacktestAlarm.objects.filter(run=run).count()
    again = services.run_backtest(run_id=run.pk)
    assert first.status == again.status == "succeeded" and BacktestAlarm.objects.filter(run=run).count() == alarms


def test_bad_requests_are_refused_with_the_reason(db):
    from datetime import UTC, datetime

    t = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(services.BacktestError, match="must be after start"):
        services.create_backtest(start=t, end=t, enqueue=False)
    with pytest.raises(services.BacktestError, match="no active detector version"):
        services.create_backtest(start=t, end=t + timedelta(hours=1), enqueue=False)


def test_replayed_alarm_rules_are_the_live_ones_on_delay_deadband_and_off_delay(t0):
    policy = AlarmPolicy(threshold=1.0, deadband=0.3, on_delay_s=3, off_delay_s=5)
    scores = [2, 2, 2, 0.1, 2, 2, 2, 2, 0.8, 0.75, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 2]
    samples = [Sample(t0 + timedelta(seconds=i), float(s)) for i, s in enumerate(scores)]
    alarms = alarms_from_samples(samples, policy)
    # The first run is too short for the 3 s on-delay; 0.8 and 0.75 stay above the clear level 0.7.
    assert [a.raised_at for a in alarms] == [t0 + timedelta(seconds=7)]
    assert alarms[0].cleared_at == t0 + timedelta(seconds=15) and alarms[0].peak_score == 2


def test_plot_series_keep_the_largest_score_of_each_bucket():
    import numpy as np

    times = np.arange(10_000, dtype=float)
    scores = np.zeros(10_000)
    scores[5_003] = 9.0
    bucket_times, bucket_scores = downsample_max(times, scores, 100)
    assert len(bucket_times) == 100 and max(bucket_scores) == 9.0


def test_the_celery_task_runs_a_queued_backtest_sent_when_the_request_commits(pump_history, django_capture_on_commit_callbacks, monkeypatch):
    from phm.backtests import tasks

    sent = []
    monkeypatch.setattr(tasks.run_backtest, "apply_async", lambda args: sent.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_backtest(start=TRAIN_END, end=HISTORY_END, diagnose=False)
    assert sent == [[run.pk]]
    result = tasks.run_backtest.apply(args=[run.pk]).get()
    assert result == {"run": run.pk, "status": "succeeded"}
