"""Fault classification of captures: training jobs and versions, classification of new captures
(stored probabilities, alarms through the alarm services), labels, diagnosis evidence."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

pytest.importorskip("models.classification")

from phm.alarms.models import Alarm, AlarmState, AlarmTransition
from phm.analytics.models import JobStatus
from phm.condition import classification
from phm.condition.models import CaptureClassification, ClassifierTrainingProgress, WaveformCapture
from tests.conftest import make_plant
from tests.phm.condition.classification_helpers import FAST, add_capture, labelled_set, make_point


@pytest.fixture
def point(db):
    pump, _ = make_plant()
    return make_point(pump)


def trained(point, t0, *, params=None, name="bearings", **kwargs):
    labelled_set(point, t0)
    clf = classification.create_classifier(name=name, equipment=[point.equipment], params=params or FAST, **kwargs)
    job = classification.start_training(classifier=clf)
    job = classification.run_training(job_id=job.pk)
    assert job.status == JobStatus.SUCCEEDED, job.error
    return clf, job


def test_training_versions_the_classifier_with_progress_and_artifact(point, t0):
    clf, job = trained(point, t0)
    version = job.result
    assert version.is_active and version.version == 1 and version.train_captures == 24
    assert version.classes == ["IR", "Normal", "OR"]
    assert version.metrics["captures_per_class"] == {"IR": 8, "Normal": 8, "OR": 8}
    assert version.metrics["order_tracking"] is True and version.metrics["reference_rpm"] == pytest.approx(1763.5)
    assert (Path(settings.DATA_ROOT) / version.artifact / "config.json").is_file()
    stages = list(ClassifierTrainingProgress.objects.filter(job=job).values_list("stage", flat=True))
    assert stages[0] == "queued" and stages[-1] == "done" and "fitting" in stages


def test_neural_default_reports_epochs_as_progress_rows(point, t0):
    clf, job = trained(point, t0, params={"nf": 4, "epochs": 2, "batch_size": 32})
    epochs = ClassifierTrainingProgress.objects.filter(job=job, stage="fitting").exclude(epoch=None)
    assert [p.epoch for p in epochs] == [1, 2] and all(p.loss is not None and p.eta_s is not None for p in epochs)
    assert job.result.params["method"] == "inceptiontime" and job.result.params["nf"] == 4


def test_a_fault_capture_is_classified_stored_and_alarmed_and_a_normal_one_clears_it(point, t0):
    clf, job = trained(point, t0, alarm_probability=0.6)
    later = t0 + timedelta(hours=1)
    fault = add_capture(point, at=later, signal_label="IR", rpm=1760.0, seed=7)
    [row] = classification.classify_capture(capture_id=fault.pk)
    assert row.label == "IR" and row.version == job.result
    assert sum(row.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert row.fault_probability == pytest.approx(row.probabilities["IR"], abs=1e-6) and row.fault_probability >= 0.6
    alarm = Alarm.objects.get(source="classifier:bearings")
    assert alarm.state == AlarmState.ACTIVE_UNACK and alarm.equipment == point.equipment
    assert "IR" in alarm.message and alarm.raised_at == later
    healthy = add_capture(point, at=later + timedelta(minutes=10), signal_label="Normal", rpm=1790.0, seed=8)
    [row] = classification.classify_capture(capture_id=healthy.pk)
    assert row.label == "Normal" and row.fault_probability < 0.5
    alarm.refresh_from_db()
    assert alarm.state == AlarmState.RTN_UNACK
    assert AlarmTransition.objects.filter(alarm=alarm).count() == 2


def test_classifying_twice_stores_one_row_and_replays_no_alarm(point, t0):
    trained(point, t0, alarm_probability=0.6)
    fault = add_capture(point, at=t0 + timedelta(hours=1), signal_label="OR", seed=9)
    first = classification.classify_capture(capture_id=fault.pk)
    second = classification.classify_capture(capture_id=fault.pk)
    assert [r.pk for r in first] == [r.pk for r in second]
    assert CaptureClassification.objects.count() == 1 and AlarmTransition.objects.count() == 1


def test_new_capture_task_runs_through_celery_only_for_watched_equipment(point, t0, django_capture_on_commit_callbacks):
    from phm.celery import app

    trained(point, t0)
    other = make_point(make_other_equipment(point), "NDE")
    watched = add_capture(point, at=t0 + timedelta(hours=1), signal_label="OR", seed=3)
    unwatched = add_capture(other, at=t0 + timedelta(hours=1), signal_label="OR", seed=4)
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert classification.enqueue_classification([watched.pk, unwatched.pk]) == 1
    finally:
        app.conf.task_always_eager = False
    assert list(CaptureClassification.objects.values_list("capture_id", flat=True)) == [watched.pk]


def make_other_equipment(point):
    from phm.assets.models import Equipment

    return Equipment.objects.create(line=point.equipment.line, tag="P-102", name="Spare pump", equipment_type=point.equipment.equipment_type)


def test_rollback_and_activate_switch_the_classifying_version(point, t0):
    clf, first = trained(point, t0)
    second = classification.run_training(job_id=classification.start_training(classifier=clf).pk)
    assert second.result.version == 2 and second.result.is_active
    previous = classification.rollback(classifier=clf)
    assert previous.version == 1 and previous.is_active
    capture = add_capture(point, at=t0 + timedelta(hours=2), signal_label="IR", seed=5)
    [row] = classification.classify_capture(capture_id=capture.pk)
    assert row.version.version == 1
    with pytest.raises(classification.ClassificationError, match="oldest version"):
        classification.rollback(classifier=clf)


def test_training_with_one_class_fails_the_job_naming_why(point, t0):
    labelled_set(point, t0, classes=("IR",))
    clf = classification.create_classifier(name="one", equipment=[point.equipment], params=FAST)
    job = classification.run_training(job_id=classification.start_training(classifier=clf).pk)
    assert job.status == JobStatus.FAILED and "need two classes" in job.error


def test_training_without_labels_is_refused_before_queueing(point, t0):
    add_capture(point, at=t0)
    clf = classification.create_classifier(name="nolabels", equipment=[point.equipment], params=FAST)
    with pytest.raises(classification.ClassificationError, match="label captures first"):
        classification.start_training(classifier=clf)


def test_a_capture_without_speed_among_captures_with_speed_fails_training_naming_it(point, t0):
    labelled_set(point, t0)
    stray = add_capture(point, at=t0 - timedelta(hours=1), label="IR", rpm=None)
    clf = classification.create_classifier(name="speeds", equipment=[point.equipment], params=FAST)
    job = classification.run_training(job_id=classification.start_training(classifier=clf).pk)
    assert job.status == JobStatus.FAILED and str(stray.pk) in job.error and "no speed" in job.error


def test_unknown_params_are_refused_at_creation(point):
    with pytest.raises(classification.ClassificationError, match="params"):
        classification.create_classifier(name="bad", equipment=[point.equipment], params={"method": "magic"})
    with pytest.raises(classification.ClassificationError, match=r"\['epoch'\] are not read by method 'inceptiontime'"):
        classification.create_classifier(name="typo", equipment=[point.equipment], params={"epoch": 3})
    with pytest.raises(classification.ClassificationError, match=r"\['nf'\] are not read by method 'features'"):
        classification.create_classifier(name="typo2", equipment=[point.equipment], params={"method": "features", "nf": 3})
    with pytest.raises(classification.ClassificationError, match="set from the captures"):
        classification.create_classifier(name="bad2", equipment=[point.equipment], params={"reference_rpm": 1000})


def test_labels_are_set_all_or_nothing(point, t0):
    a = add_capture(point, at=t0)
    b = add_capture(point, at=t0 + timedelta(seconds=1))
    assert classification.set_capture_labels(labels={a.pk: "IR_007", b.pk: "Normal"}) == 2
    with pytest.raises(classification.ClassificationError, match=f"capture {b.pk}"):
        classification.set_capture_labels(labels={a.pk: "", b.pk: "bad/label"})
    assert WaveformCapture.objects.get(pk=a.pk).label == "IR_007"
    with pytest.raises(classification.ClassificationError, match="do not exist"):
        classification.set_capture_labels(labels={a.pk: "x", 999_999: "y"})


def test_labelled_recording_import_cuts_captures_and_is_idempotent(point, t0):
    signal = np.random.default_rng(0).normal(size=12_000 * 3 + 500).astype(np.float32)
    captures = classification.import_labelled_recording(
        point=point, signal=signal, sample_rate_hz=12_000, label="B_007", start=t0, capture_seconds=1.0, speed_rpm=1797, origin="x.npz"
    )
    assert [c.n_samples for c in captures] == [12_000] * 3 and {c.label for c in captures} == {"B_007"}
    assert np.array_equal(captures[1].waveform(), signal[12_000:24_000])
    again = classification.import_labelled_recording(
        point=point, signal=signal, sample_rate_hz=12_000, label="B_007", start=t0, capture_seconds=1.0, speed_rpm=1797, origin="x.npz"
    )
    assert [c.pk for c in again] == [c.pk for c in captures] and WaveformCapture.objects.count() == 3
    with pytest.raises(classification.ClassificationError, match="need 2048"):
        classification.import_labelled_recording(point=point, signal=signal, sample_rate_hz=12_000, label="x", start=t0, capture_seconds=0.1)


def test_diagnosis_evidence_is_the_newest_classification_up_to_the_window_end(point, t0):
    trained(point, t0)
    first = add_capture(point, at=t0 + timedelta(hours=1), signal_label="IR", seed=11)
    second = add_capture(point, at=t0 + timedelta(hours=3), signal_label="OR", seed=12)
    for capture in (first, second):
        classification.classify_capture(capture_id=capture.pk)
    evidence = classification.classification_evidence(equipment=point.equipment, until=t0 + timedelta(hours=2))
    assert evidence["capture"] == first.pk and evidence["label"] == "IR" and evidence["classifier"] == "bearings"
    assert evidence["top"][0][0] == "IR" and len(evidence["top"]) == 3
    newest = classification.classification_evidence(equipment=point.equipment, until=t0 + timedelta(hours=4))
    assert newest["capture"] == second.pk
    assert classification.classification_evidence(equipment=point.equipment, until=t0) is None


def test_diagnosis_panel_shows_the_capture_classification(point, t0):
    from django.template.loader import render_to_string

    from phm.alarms.services import AlarmPolicy, Sample, evaluate_scores
    from phm.analytics.models import Diagnosis
    from phm.dashboard.selectors import diagnosis_view

    trained(point, t0)
    capture = add_capture(point, at=t0 + timedelta(hours=1), signal_label="IR", seed=11)
    classification.classify_capture(capture_id=capture.pk)
    evaluate_scores(equipment=point.equipment, source="detector:x", samples=[Sample(t0 + timedelta(hours=1), 2.0)], policy=AlarmPolicy(threshold=1.0))
    alarm = Alarm.objects.get(source="detector:x")
    evidence = classification.classification_evidence(equipment=point.equipment, until=t0 + timedelta(hours=2))
    diagnosis = Diagnosis.objects.create(alarm=alarm, equipment=point.equipment, status="done", claimed_at=alarm.raised_at, fault="bearing_wear", probability=0.8,
                                         result={"fault": "bearing_wear", "probability": 0.8, "probabilities": {"bearing_wear": 0.8}, "capture_classification": evidence})
    html = render_to_string("dashboard/_diagnosis.html", {"dv": diagnosis_view(diagnosis)})
    assert 'data-testid="diagnosis-capture-classification"' in html and "<strong>IR</strong>" in html and "bearings" in html


def test_a_new_unlabelled_capture_is_classified_by_the_post_save_hook_and_a_labelled_one_is_not(point, t0, django_capture_on_commit_callbacks):
    from phm.celery import app

    trained(point, t0)
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            live = add_capture(point, at=t0 + timedelta(hours=1), signal_label="IR", seed=31)
            labelled = add_capture(point, at=t0 + timedelta(hours=2), label="OR", seed=32)
    finally:
        app.conf.task_always_eager = False
    assert list(CaptureClassification.objects.values_list("capture_id", flat=True)) == [live.pk]
    assert not CaptureClassification.objects.filter(capture=labelled).exists()


def test_a_classifier_alarm_reaches_the_scada_webhook_outbox(point, t0, settings):
    from phm.alarms.models import OutboxMessage, WebhookDelivery, WebhookEndpoint

    settings.PHM_WEBHOOK_KICK_ON_COMMIT = False
    endpoint = WebhookEndpoint.objects.create(url="https://93.184.216.34/scada")
    trained(point, t0, alarm_probability=0.6)
    fault = add_capture(point, at=t0 + timedelta(hours=1), signal_label="IR", seed=41)
    classification.classify_capture(capture_id=fault.pk)
    message = OutboxMessage.objects.get(alarm__source="classifier:bearings")
    data = message.payload["data"]
    assert data["source"] == "classifier:bearings" and data["equipment"]["equipment"] == "P-101"
    assert "fault classifier bearings: IR" in data["message"] and data["score"] >= 0.6 and data["threshold"] == 0.6
    assert WebhookDelivery.objects.filter(message=message, endpoint=endpoint).exists()
