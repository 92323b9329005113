"""Fault classification of vibration captures (services).

* labels: an engineer sets a capture's fault class (:func:`set_capture_labels`) or uploads a
  labelled recording, cut into captures (:func:`import_labelled_recording`);
* training: a job per classifier (progress rows), trained on the labelled captures of its
  equipment with ``models.classification.FaultClassifier`` (``VIBRATION_DEFAULTS`` plus the
  classifier's ``params``), each capture's speed given for order tracking; versions with one
  active, activation and rollback;
* classification: each new capture of a watched machine is classified in a Celery task
  (:func:`enqueue_classification`, :func:`classify_capture`), stored with every class's
  probability; a fault class at or above the classifier's ``alarm_probability`` raises an alarm
  through ``phm.alarms.services.evaluate_scores`` (so the outbox and SCADA webhooks follow and the
  raise is diagnosed), and a later capture below it returns the alarm to normal.
"""

from __future__ import annotations

import io
import shutil
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from phm.alarms.services import AlarmPolicy, Sample, evaluate_scores
from phm.assets.models import Equipment, MeasurementPoint
from phm.condition.models import (
    CaptureClassification,
    CaptureClassifier,
    CaptureSource,
    ClassifierTrainingJob,
    ClassifierTrainingProgress,
    ClassifierVersion,
    WaveformCapture,
)
from phm.training_jobs import run_claimed_job


MAX_LABEL_LENGTH = 64
#: A labelled recording may be cut into at most this many captures (one upload, one transaction).
MAX_CAPTURES_PER_IMPORT = 10_000
#: Shortest capture worth classifying: below one 2048-sample window the classifier has nothing to see.
MIN_CAPTURE_SAMPLES = 2048
#: Alarms clear once the fault probability falls this share below the threshold (no chattering).
ALARM_DEADBAND = 0.1


class ClassificationError(Exception):
    """A request the classification services cannot carry out; the message says what and where."""


def artifacts_root() -> Path:
    return Path(settings.DATA_ROOT) / "classifiers"


def default_alarm_probability() -> float:
    return float(getattr(settings, "PHM_CLASSIFIER_ALARM_PROBABILITY", 0.9))


# --- labels -------------------------------------------------------------------------------------


def check_label(label: str, *, where: str) -> str:
    text = str(label).strip()
    if not text:
        raise ClassificationError(f"{where}: the label is empty")
    if len(text) > MAX_LABEL_LENGTH:
        raise ClassificationError(f"{where}: the label has {len(text)} characters; at most {MAX_LABEL_LENGTH}")
    if any(not (ch.isalnum() or ch in "_-.@ ") for ch in text):
        raise ClassificationError(f"{where}: label {text[:MAX_LABEL_LENGTH]!r} may hold letters, digits, space and _ - . @ only")
    return text


@transaction.atomic
def set_capture_labels(*, labels: dict[int, str]) -> int:
    """Set (or with ``""`` clear) the fault label of captures by id; all or nothing."""
    if not labels:
        raise ClassificationError("no captures given")
    found = set(WaveformCapture.objects.filter(pk__in=labels).values_list("pk", flat=True))
    missing = sorted(set(labels) - found)
    if missing:
        raise ClassificationError(f"captures {missing[:20]} do not exist")
    for capture_id, label in labels.items():
        text = "" if label in ("", None) else check_label(label, where=f"capture {capture_id}")
        WaveformCapture.objects.filter(pk=capture_id).update(label=text)
    return len(labels)


def read_npz_channel(content: bytes, *, channel: str, name: str) -> np.ndarray:
    """One channel of an uploaded ``.npz`` as a 1-D float32 array (no pickle, finite values only)."""
    import zipfile

    decoded_limit = int(getattr(settings, "PHM_UPLOAD_MAX_DECODED_BYTES", 512 * 2**20))
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as bundle:
            member = next((i for i in bundle.infolist() if i.filename == f"{channel}.npy"), None)
            if member is not None and member.file_size > decoded_limit:
                raise ClassificationError(
                    f"{name}: {channel!r} decodes to {member.file_size:,} bytes, over the {decoded_limit:,} byte limit (PHM_UPLOAD_MAX_DECODED_BYTES)"
                )
    except zipfile.BadZipFile:
        raise ClassificationError(f"{name}: not a readable .npz file (not a zip archive)") from None
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as archive:
            if channel not in archive.files:
                raise ClassificationError(f"{name}: no array {channel!r}; it holds {sorted(archive.files)[:20]}")
            values = archive[channel]
    except ClassificationError:
        raise
    except Exception as exc:  # not a zip, pickled objects, truncated file
        raise ClassificationError(f"{name}: not a readable .npz file ({type(exc).__name__})") from None
    if not np.issubdtype(values.dtype, np.number) or values.ndim > 2 or (values.ndim == 2 and 1 not in values.shape):
        raise ClassificationError(f"{name}: {channel!r} must be one numeric column, got {values.dtype} {values.shape}")
    values = np.asarray(values, dtype=np.float32).ravel()
    bad = ~np.isfinite(values)
    if bad.any():
        raise ClassificationError(f"{name}: {channel!r} holds NaN or inf (first at sample {int(np.argmax(bad))})")
    return values


@transaction.atomic
def import_labelled_recording(
    *, point: MeasurementPoint, signal: np.ndarray, sample_rate_hz: float, label: str, start: datetime,
    capture_seconds: float, speed_rpm: float | None = None, unit: str = "g", origin: str = "",
) -> list[WaveformCapture]:
    """Cut a labelled recording into consecutive captures of ``capture_seconds`` (the tail shorter
    than one capture is dropped) and store them, each with the label. Training data: they are not
    classified or alarmed on. A capture already stored at the same point and time is kept as it was
    (the upload is idempotent) and returned."""
    where = origin or "recording"
    label = check_label(label, where=where)
    if not (sample_rate_hz > 0 and np.isfinite(sample_rate_hz)):
        raise ClassificationError(f"{where}: sample_rate_hz must be positive, got {sample_rate_hz}")
    if speed_rpm is not None and not (speed_rpm > 0 and np.isfinite(speed_rpm)):
        raise ClassificationError(f"{where}: speed_rpm must be positive, got {speed_rpm}")
    length = int(round(capture_seconds * sample_rate_hz))
    if length < MIN_CAPTURE_SAMPLES:
        raise ClassificationError(f"{where}: captures of {capture_seconds} s at {sample_rate_hz:g} Hz hold {length} samples; need {MIN_CAPTURE_SAMPLES}")
    count = signal.size // length
    if count < 1:
        raise ClassificationError(f"{where}: {signal.size} samples hold no capture of {length}")
    if count > MAX_CAPTURES_PER_IMPORT:
        raise ClassificationError(f"{where}: {count} captures in one upload; at most {MAX_CAPTURES_PER_IMPORT}")
    rows = [
        WaveformCapture(
            equipment=point.equipment, point=point, captured_at=start + timedelta(seconds=i * length / sample_rate_hz),
            sample_rate_hz=sample_rate_hz, unit=unit, n_samples=length, samples=WaveformCapture.pack(signal[i * length:(i + 1) * length]),
            speed_rpm=speed_rpm, label=label, source=CaptureSource.UPLOAD, origin=origin[:500],
        )
        for i in range(count)
    ]
    WaveformCapture.objects.bulk_create(rows, ignore_conflicts=True)
    times = [row.captured_at for row in rows]
    return list(WaveformCapture.objects.filter(point=point, captured_at__in=times).order_by("captured_at"))


# --- classifiers and training --------------------------------------------------------------------


def classifier_settings(classifier: CaptureClassifier) -> dict[str, Any]:
    """The FaultClassifier arguments of a classifier: the shared defaults, then its own params."""
    from models.classification import VIBRATION_DEFAULTS

    return {**VIBRATION_DEFAULTS, **classifier.params}


def check_params(params: dict) -> dict:
    """Reject parameters FaultClassifier does not take, naming them (before a job is queued)."""
    from models.classification import FaultClassifier

    if not isinstance(params, dict):
        raise ClassificationError(f"params must be an object, got {type(params).__name__}")
    forbidden = sorted(set(params) & {"progress", "sampling_rate", "reference_rpm"})
    if forbidden:
        raise ClassificationError(f"params {forbidden} are set from the captures, not by hand")
    from models.classification import VIBRATION_DEFAULTS, unknown_params

    merged = {**VIBRATION_DEFAULTS, **params}
    try:
        FaultClassifier(**merged)
    except (TypeError, ValueError) as exc:
        raise ClassificationError(f"params: {exc}") from None
    # The shared defaults carry neural settings (epochs, batch size) that other methods ignore.
    unknown = [k for k in unknown_params(merged["method"], params) if k not in VIBRATION_DEFAULTS]
    if unknown:
        raise ClassificationError(f"params {unknown} are not read by method {merged['method']!r}")
    return params


@transaction.atomic
def create_classifier(
    *, name: str, equipment: list[Equipment], params: dict | None = None, alarm_probability: float | None = None,
    normal_label: str = "Normal", queue: str = "cpu",
) -> CaptureClassifier:
    if not equipment:
        raise ClassificationError("a classifier needs at least one equipment")
    if CaptureClassifier.objects.filter(name=name).exists():
        raise ClassificationError(f"a classifier named {name!r} exists already")
    probability = default_alarm_probability() if alarm_probability is None else float(alarm_probability)
    if not 0 < probability <= 1:
        raise ClassificationError(f"alarm_probability must be in (0, 1], got {probability}")
    classifier = CaptureClassifier.objects.create(
        name=name, params=check_params(params or {}), alarm_probability=probability,
        normal_label=check_label(normal_label, where="normal_label"), queue=queue,
    )
    classifier.equipment.set(equipment)
    return classifier


def start_training(*, classifier: CaptureClassifier, activate: bool = True, user=None) -> ClassifierTrainingJob:
    """Queue a training job; it is sent to the classifier's queue once the transaction commits."""
    labelled = labelled_captures(classifier).count()
    if labelled < 2:
        raise ClassificationError(f"classifier {classifier.name}: {labelled} labelled capture(s) on its equipment; label captures first")
    with transaction.atomic():
        job = ClassifierTrainingJob.objects.create(classifier=classifier, queue=classifier.queue, activate=activate, created_by=user, stage="queued")
        ClassifierTrainingProgress.objects.create(job=job, stage="queued", percent=0.0)
        transaction.on_commit(lambda: _enqueue_training(job))
    return job


def _enqueue_training(job: ClassifierTrainingJob) -> None:
    from phm.condition.tasks import train_classifier

    train_classifier.apply_async(args=[job.pk], queue=job.queue, routing_key=job.queue)


def labelled_captures(classifier: CaptureClassifier):
    return WaveformCapture.objects.filter(equipment__in=classifier.equipment.all()).exclude(label="").order_by("captured_at", "pk")


class _Progress:
    def __init__(self, job: ClassifierTrainingJob) -> None:
        self.job = job

    def report(self, *, stage: str, percent: float, epoch=None, epochs=None, loss=None, val_loss=None, eta_s=None) -> None:
        ClassifierTrainingProgress.objects.create(
            job=self.job, stage=stage, percent=percent, epoch=epoch, epochs=epochs, loss=loss, val_loss=val_loss, eta_s=eta_s
        )
        ClassifierTrainingJob.objects.filter(pk=self.job.pk).update(stage=stage, percent=percent, epoch=epoch, epochs=epochs, loss=loss, eta_s=eta_s)

    def on_epoch(self, record: dict[str, float]) -> None:  # models.classification.train_network's record
        fraction = record["epoch"] / max(record["epochs"], 1)
        self.report(
            stage="fitting", percent=20 + 70 * fraction, epoch=int(record["epoch"]), epochs=int(record["epochs"]),
            loss=float(record["loss"]), val_loss=float(record["validation_loss"]), eta_s=float(record["eta_s"]),
        )


def run_training(*, job_id: int) -> ClassifierTrainingJob:
    """Claim a queued job (conditional update: one worker only), train, version, maybe activate."""
    return run_claimed_job(job_model=ClassifierTrainingJob, progress_model=ClassifierTrainingProgress, job_id=job_id,
                           kind="classifier training", train=lambda job: _train(job, _Progress(job)), select_related=("classifier",))


def training_set(captures: list[WaveformCapture]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, float, int]:
    """``(X [n, 1, L], labels, speeds or None, sample rates, classifier sampling rate, cropped-to length)``.

    Captures of different lengths are cut to the shortest (FaultClassifier takes one length);
    speeds go to order tracking when every capture has one; a capture without a speed among
    others with one would be guessed at, so training refuses it, naming it.
    """
    length = min(c.n_samples for c in captures)
    X = np.stack([c.waveform()[:length] for c in captures])[:, None, :].astype(np.float32)
    labels = np.array([c.label for c in captures])
    with_speed = [c for c in captures if c.speed_rpm]
    if with_speed and len(with_speed) != len(captures):
        missing = [c.pk for c in captures if not c.speed_rpm][:10]
        raise ClassificationError(f"captures {missing} have no speed while others do; set their speed or leave all without")
    speeds = np.array([c.speed_rpm for c in captures], dtype=np.float64) if with_speed else None
    rates = np.array([c.sample_rate_hz for c in captures], dtype=np.float64)
    sampling_rate = Counter(rates.tolist()).most_common(1)[0][0]
    return X, labels, speeds, rates, float(sampling_rate), length


def _train(job: ClassifierTrainingJob, progress: _Progress) -> ClassifierVersion:
    from models.classification import FaultClassifier

    classifier = job.classifier
    progress.report(stage="loading captures", percent=5)
    captures = list(labelled_captures(classifier))
    if len(captures) < 2:
        raise ClassificationError(f"classifier {classifier.name}: {len(captures)} labelled capture(s)")
    X, labels, speeds, rates, sampling_rate, length = training_set(captures)
    counts = Counter(labels.tolist())
    if len(counts) < 2:
        raise ClassificationError(f"classifier {classifier.name}: all labelled captures are {labels[0]!r}; need two classes at least")
    arguments = classifier_settings(classifier)
    progress.report(stage="fitting", percent=20)
    estimator = FaultClassifier(sampling_rate=sampling_rate, progress=progress.on_epoch, **arguments)
    clock = time.perf_counter()
    estimator.fit(X, labels, speed_rpm=speeds, sample_rate_hz=rates)
    fit_seconds = time.perf_counter() - clock
    progress.report(stage="saving", percent=95)
    metrics = {
        "fit_seconds": round(fit_seconds, 3),
        "captures_per_class": dict(sorted(counts.items())),
        "capture_samples": length,
        "sampling_rate_hz": sampling_rate,
        "reference_rpm": estimator.reference_rpm,
        "order_tracking": speeds is not None,
        "epochs": estimator.training_log.epochs_run,
        "temperature": estimator.temperature,
    }
    version = save_version(classifier=classifier, estimator=estimator, params=arguments, metrics=metrics, train_captures=len(captures), activate=job.activate)
    progress.report(stage="done", percent=100)
    return version


def save_version(*, classifier: CaptureClassifier, estimator, params: dict, metrics: dict, train_captures: int, activate: bool) -> ClassifierVersion:
    with transaction.atomic():
        # Lock the classifier so two jobs finishing at once take distinct version numbers.
        CaptureClassifier.objects.select_for_update().filter(pk=classifier.pk).first()
        number = (classifier.versions.aggregate(m=Max("version"))["m"] or 0) + 1
        relative = Path("classifiers") / str(classifier.pk) / f"v{number}"
        folder = Path(settings.DATA_ROOT) / relative
        if folder.exists():
            shutil.rmtree(folder)  # left by a crashed run that never recorded its version
        estimator.save(folder)
        version = ClassifierVersion.objects.create(
            classifier=classifier, version=number, params=params, artifact=str(relative), classes=estimator.classes_.tolist(),
            metrics=metrics, train_captures=train_captures,
        )
        if activate:
            activate_version(version=version)
    return version


@transaction.atomic
def activate_version(*, version: ClassifierVersion) -> ClassifierVersion:
    ClassifierVersion.objects.filter(classifier=version.classifier_id, is_active=True).exclude(pk=version.pk).update(is_active=False)
    ClassifierVersion.objects.filter(pk=version.pk).update(is_active=True, activated_at=timezone.now())
    version.refresh_from_db()
    return version


@transaction.atomic
def rollback(*, classifier: CaptureClassifier) -> ClassifierVersion:
    """Activate the newest version older than the active one."""
    active = ClassifierVersion.objects.select_for_update().filter(classifier=classifier, is_active=True).first()
    if active is None:
        raise ClassificationError(f"classifier {classifier.name} has no active version to roll back from")
    previous = ClassifierVersion.objects.filter(classifier=classifier, version__lt=active.version).order_by("-version").first()
    if previous is None:
        raise ClassificationError(f"classifier {classifier.name} v{active.version} is its oldest version; nothing to roll back to")
    return activate_version(version=previous)


# --- classification of new captures -------------------------------------------------------------

_loaded: dict[tuple[str, float], Any] = {}
_loaded_lock = threading.Lock()


def load_estimator(version: ClassifierVersion):
    """The version's FaultClassifier, loaded once per worker process (keyed by artifact and creation time)."""
    from models.classification import FaultClassifier

    key = (version.artifact, version.created_at.timestamp())
    with _loaded_lock:
        if key not in _loaded:
            _loaded[key] = FaultClassifier.load(Path(settings.DATA_ROOT) / version.artifact)
        return _loaded[key]


def watching_classifiers(equipment_id: int):
    """Enabled classifiers with an active version that watch this equipment."""
    return CaptureClassifier.objects.filter(equipment=equipment_id, enabled=True, versions__is_active=True).distinct()


def enqueue_classification(capture_ids: list[int]) -> int:
    """Send one classification task per capture once the transaction commits, for captures of
    equipment some classifier watches (others cost nothing). The ingestion service calls this."""
    captures = list(WaveformCapture.objects.filter(pk__in=capture_ids).values_list("pk", "equipment_id"))
    watched = {eq for eq in {e for _, e in captures} if watching_classifiers(eq).exists()}
    wanted = [pk for pk, eq in captures if eq in watched]
    if wanted:
        from phm.condition.tasks import classify_new_capture

        transaction.on_commit(lambda: [classify_new_capture.delay(pk) for pk in wanted])
    return len(wanted)


def classify_capture(*, capture_id: int) -> list[CaptureClassification]:
    """Classify one capture with every active classifier watching its equipment, store the
    probabilities, and feed the fault probability to the alarm services."""
    capture = WaveformCapture.objects.select_related("equipment", "point").get(pk=capture_id)
    results = []
    for classifier in watching_classifiers(capture.equipment_id):
        version = classifier.versions.get(is_active=True)
        results.append(classify_with(capture=capture, classifier=classifier, version=version))
    return results


def classify_with(*, capture: WaveformCapture, classifier: CaptureClassifier, version: ClassifierVersion) -> CaptureClassification:
    existing = CaptureClassification.objects.filter(capture=capture, version=version).first()
    if existing is not None:
        return existing  # a redelivered task: classified already, the alarm evaluated already
    estimator = load_estimator(version)
    waveform = capture.waveform()
    if estimator.window_length and waveform.size < estimator.window_length:
        raise ClassificationError(f"capture {capture.pk}: {waveform.size} samples, shorter than the classifier's window ({estimator.window_length})")
    speed = capture.speed_rpm if estimator.reference_rpm is not None else None
    probabilities = estimator.predict_proba(waveform[None, None, :], speed_rpm=speed, sample_rate_hz=capture.sample_rate_hz)[0]
    classes = [str(c) for c in estimator.classes_]
    top = int(np.argmax(probabilities))
    faults = [(p, c) for p, c in zip(probabilities, classes) if c != classifier.normal_label]
    fault_probability, fault = max(faults) if faults else (0.0, "")
    with transaction.atomic():
        row, created = CaptureClassification.objects.get_or_create(
            capture=capture, version=version,
            defaults={
                "classifier": classifier, "label": classes[top], "probability": float(probabilities[top]),
                "probabilities": {c: round(float(p), 6) for c, p in zip(classes, probabilities)},
                "fault_probability": float(fault_probability),
            },
        )
        if created:
            evaluate_scores(
                equipment=capture.equipment, source=classifier.alarm_source,
                samples=[Sample(capture.captured_at, float(fault_probability))],
                policy=AlarmPolicy(threshold=classifier.alarm_probability, deadband=ALARM_DEADBAND),
                describe=lambda _sample: classification_message(
                    capture=capture, classifier=classifier, version=version, fault=fault, fault_probability=float(fault_probability),
                    top=classes[top], top_probability=float(probabilities[top]),
                ),
            )
    return row


def classification_message(
    *, capture: WaveformCapture, classifier: CaptureClassifier, version: ClassifierVersion, fault: str, fault_probability: float,
    top: str, top_probability: float,
) -> str:
    """The alarm's text, e.g. "P-101 DE: capture classified as IR_007 (p = 0.97) by classifier
    bearings v2". The alarm follows the most probable fault; when a low alarm probability lets it
    fire while another class is on top, the text says so rather than claim the fault won."""
    where = f"{capture.equipment.tag} {capture.point.name}"
    by = f"by classifier {classifier.name} v{version.version}"
    if fault == top:
        return f"{where}: capture classified as {fault} (p = {fault_probability:.2f}) {by}"
    return f"{where}: capture {fault} probability {fault_probability:.2f} (most probable {top}, p = {top_probability:.2f}) {by}"




def classification_evidence(*, equipment: Equipment, until: datetime, using: str = "default") -> dict | None:
    """The newest classification of a capture of ``equipment`` taken at or before ``until``, as the
    diagnosis stores it (JSON): which capture, classifier and version, the top class and the three
    most probable classes."""
    row = (
        CaptureClassification.objects.using(using).filter(capture__equipment=equipment, capture__captured_at__lte=until)
        .select_related("capture__point", "classifier", "version").order_by("-capture__captured_at", "-id").first()
    )
    if row is None:
        return None
    top = sorted(row.probabilities.items(), key=lambda kv: -kv[1])[:3]
    return {
        "capture": row.capture_id, "point": row.capture.point.name, "captured_at": row.capture.captured_at.isoformat(),
        "classifier": row.classifier.name, "version": row.version.version, "label": row.label,
        "probability": round(row.probability, 4), "fault_probability": round(row.fault_probability, 4),
        "top": [[name, round(float(p), 4)] for name, p in top],
    }
