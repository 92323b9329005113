"""Root-cause diagnosis of alarms: the incident around an alarm read from storage, the active
diagnoser run on it, the evidence completed with similar past cases and the actions recommended by
the knowledge base (with citations), the result stored as a :class:`Diagnosis` row and announced as
a ``diagnosis`` webhook event.

Flow: ``alarms.services`` raises an alarm -> on commit, :func:`enqueue_diagnosis` sends the
``diagnose`` task (the ``gpu`` queue when ``PHM_GPU_WORKER`` says a GPU worker exists, else ``cpu``)
-> :func:`run_diagnosis` claims the alarm's one diagnosis row (a partial unique index: a task
delivered twice stores one diagnosis), runs the model and stores the result with the outbox
message in one transaction -> an ``explain_diagnosis`` task replaces the evidence summary with the
language model's checked wording (``PHM_DIAGNOSIS_EXPLAIN``), which takes longer than all the rest.

The diagnoser loads once per worker process, on first use or in the worker's start-up hook (after
the fork), never at import; :func:`loaded_diagnoser` caches it per stored version.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from phm.alarms.models import Alarm, AlarmState, AlarmTransition, EventType
from phm.analytics.models import (
    DiagnoserVersion,
    Diagnosis,
    DiagnosisFeedback,
    DiagnosisStatus,
    DiagnosisTrigger,
    FeedbackVerdict,
)
from phm.assets.models import Equipment
from phm.env import env_bool
from phm.telemetry.models import InspectionImage, LogEvent
from phm.telemetry.selectors import readings_frame
from phm.redaction import job_error

log = logging.getLogger(__name__)


# --- configuration ------------------------------------------------------------------------------


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class DiagnosisConfig:
    """Environment settings of diagnosis (README, "Diagnosis"); read when used, so a test or a
    worker restart with other values takes effect without touching Django settings."""

    on_raise: bool  # PHM_DIAGNOSE_ON_RAISE: queue a diagnosis for every raised alarm
    queue: str  # PHM_DIAGNOSIS_QUEUE, else gpu when PHM_GPU_WORKER, else cpu
    window_s: float  # PHM_DIAGNOSIS_WINDOW_S: sensor window before the raise
    baseline_s: float  # PHM_DIAGNOSIS_BASELINE_S: normal period before the window, for log rates
    image_max_age_s: float  # PHM_DIAGNOSIS_IMAGE_MAX_AGE_S: older inspection images are not used
    lease_s: float  # PHM_DIAGNOSIS_LEASE_S: a running claim older than this is retaken
    similar_k: int  # PHM_DIAGNOSIS_SIMILAR: earlier diagnoses shown as similar cases
    work_orders_k: int  # PHM_DIAGNOSIS_WORK_ORDERS: work orders shown as similar cases
    actions_k: int  # PHM_DIAGNOSIS_ACTIONS: recommended actions
    public_url: str  # PHM_PUBLIC_URL: base of the link in the webhook payload
    warm_up: bool  # PHM_DIAGNOSIS_WARM_UP: load the active diagnoser when a worker process starts
    explain: str  # PHM_DIAGNOSIS_EXPLAIN: after (default) | inline | template, see EXPLAIN_MODES
    follow_up_s: tuple[float, ...] = (300.0, 900.0)  # PHM_REDIAGNOSE_AFTER_S: re-diagnose an open alarm this long after its raise

    @classmethod
    def from_env(cls) -> DiagnosisConfig:
        queue = os.environ.get("PHM_DIAGNOSIS_QUEUE") or ("gpu" if env_bool("PHM_GPU_WORKER", False) else "cpu")
        return cls(
            on_raise=env_bool("PHM_DIAGNOSE_ON_RAISE", True),
            queue=queue,
            window_s=_env_float("PHM_DIAGNOSIS_WINDOW_S", 1800.0),  # the window of the training incidents
            baseline_s=_env_float("PHM_DIAGNOSIS_BASELINE_S", 3600.0),
            image_max_age_s=_env_float("PHM_DIAGNOSIS_IMAGE_MAX_AGE_S", 7 * 24 * 3600.0),
            lease_s=_env_float("PHM_DIAGNOSIS_LEASE_S", 600.0),
            similar_k=int(os.environ.get("PHM_DIAGNOSIS_SIMILAR", 3)),
            work_orders_k=int(os.environ.get("PHM_DIAGNOSIS_WORK_ORDERS", 2)),
            actions_k=int(os.environ.get("PHM_DIAGNOSIS_ACTIONS", 3)),
            public_url=os.environ.get("PHM_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/"),
            warm_up=env_bool("PHM_DIAGNOSIS_WARM_UP", True),
            explain=_explain_mode(os.environ.get("PHM_DIAGNOSIS_EXPLAIN", "after")),
            follow_up_s=_offsets(os.environ.get("PHM_REDIAGNOSE_AFTER_S", "300,900")),
        )


def _offsets(value: str) -> tuple[float, ...]:
    try:
        offsets = tuple(sorted(float(v) for v in value.replace(" ", "").split(",") if v))
    except ValueError:
        raise ValueError(f"PHM_REDIAGNOSE_AFTER_S must be comma-separated seconds (e.g. 300,900), got {value!r}") from None
    if any(o <= 0 for o in offsets):
        raise ValueError(f"PHM_REDIAGNOSE_AFTER_S offsets must be positive, got {value!r}")
    return offsets


#: Confidence bands of a diagnosis: a re-diagnosis is announced (webhook) when its top fault or
#: its band differs from the last stored one, not on every wobble of the probability.
CONFIDENCE_BANDS: tuple[tuple[float, str], ...] = ((0.5, "low"), (0.8, "medium"), (1.01, "high"))


def confidence_band(probability: float | None) -> str:
    if probability is None:
        return ""
    return next(name for upper, name in CONFIDENCE_BANDS if probability < upper)


def follow_up_stage(offset_s: float) -> str:
    return f"+{offset_s:g}s"


def stage_offset_s(stage: str) -> float | None:
    """``'+300s'`` -> 300.0; None for another kind of stage."""
    match = re.fullmatch(r"\+(\d+(?:\.\d+)?)s", stage or "")
    return float(match.group(1)) if match else None


#: When the language model writes the explanation. ``after``: the diagnosis is stored and announced
#: with the template explanation (it restates the evidence), then an ``explain_diagnosis`` task
#: replaces it with the model's checked wording; generation on CPU takes longer than everything else
#: together, so this keeps alarm -> diagnosis fast. ``inline``: generated before storing (one
#: stored version, slower). ``template``: no language model.
EXPLAIN_MODES = ("after", "inline", "template")


def _explain_mode(value: str) -> str:
    value = value.strip().lower()
    if value not in EXPLAIN_MODES:
        raise ValueError(f"PHM_DIAGNOSIS_EXPLAIN must be one of {', '.join(EXPLAIN_MODES)}, got {value!r}")
    return value


class DiagnosisError(Exception):
    """Diagnosis cannot run as requested; the message says why."""


class FeedbackError(ValueError):
    """Feedback refused; the message names the field and, for a fault, the allowed classes."""

    def __init__(self, message: str, *, field: str = "", allowed: list[str] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.allowed = allowed or []


# --- enqueueing on raise -----------------------------------------------------------------------


#: Alarm sources that are not a developing fault, so get no root-cause diagnosis: the RUL
#: lead-time alert (``phm.condition.rul.ALARM_SOURCE``) is a planning deadline on a machine whose
#: sensors may well look normal; diagnosing its window would name a cause that is not there.
UNDIAGNOSED_SOURCES = frozenset({"rul"})


def diagnose_on_commit(alarm: Alarm, *, using: str = "default") -> None:
    """Called by ``alarms.services`` inside the transaction that raised ``alarm``: the task is sent
    only if that transaction commits (a rolled-back raise is never diagnosed)."""
    if alarm.state != AlarmState.ACTIVE_UNACK or not DiagnosisConfig.from_env().on_raise:
        return  # suppressed / out of service alarms are not annunciated, so not diagnosed either
    if alarm.source in UNDIAGNOSED_SOURCES:
        return
    alarm_id = alarm.pk
    transaction.on_commit(lambda: enqueue_diagnosis(alarm_id=alarm_id), using=using)


def enqueue_diagnosis(*, alarm_id: int, trigger: str = DiagnosisTrigger.RAISE) -> None:
    """Send the ``diagnose`` task (to the configured queue: ``phm.celery.route_diagnosis``); a broker
    outage loses only this diagnosis (the alarm itself is stored and annunciated), so it is logged,
    not raised."""
    from phm.analytics.tasks import diagnose

    try:
        diagnose.apply_async(args=[alarm_id], kwargs={"trigger": str(trigger)})
    except Exception:
        log.warning("could not queue the diagnosis of alarm %s", alarm_id, exc_info=True)


# --- the diagnoser of this process ---------------------------------------------------------------

#: Objects handed to every FaultDiagnoser this process builds or loads (``backbone``, ``explainer``).
#: Empty in production: a saved diagnoser names its backbone in its config. Tests put a tiny backbone here.
MODEL_OVERRIDES: dict[str, object] = {}

_LOADED: dict[tuple[str, float], object] = {}  # (artifact folder, version created_at) -> FaultDiagnoser
_LOAD_LOCK = threading.Lock()
_MAX_LOADED = 2  # the active version and the one it replaced, while workers move over


def artifacts_root() -> Path:
    return Path(settings.DATA_ROOT) / "diagnosers"


def active_version(*, using: str = "default") -> DiagnoserVersion | None:
    return DiagnoserVersion.objects.using(using).filter(is_active=True).first()


def loaded_diagnoser(version: DiagnoserVersion):
    """The version's FaultDiagnoser, loaded the first time this process needs it. Keyed by folder
    and creation time, not the row id alone: a recreated database may reuse ids."""
    key = (str(artifacts_root() / version.artifact), version.created_at.timestamp())
    diagnoser = _LOADED.get(key)
    if diagnoser is not None:
        return diagnoser
    with _LOAD_LOCK:
        diagnoser = _LOADED.get(key)
        if diagnoser is None:
            from models.diagnosis import FaultDiagnoser

            started = time.perf_counter()
            diagnoser = FaultDiagnoser.load(Path(key[0]), **MODEL_OVERRIDES)
            while len(_LOADED) >= _MAX_LOADED:
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[key] = diagnoser
            log.info("loaded diagnoser v%s in %.1f s", version.version, time.perf_counter() - started)
    return diagnoser


def forget_loaded() -> None:
    """Drop the cached diagnosers (tests recreate databases and artifacts between runs)."""
    with _LOAD_LOCK:
        _LOADED.clear()


def warm_up(*, using: str = "default") -> bool:
    """Load the active diagnoser into this worker process (after the fork), and the language model
    that writes explanations, so the first alarm does not pay for imports and weights; False when
    no diagnoser is trained yet."""
    version = active_version(using=using)
    if version is None:
        return False
    diagnoser = loaded_diagnoser(version)
    if DiagnosisConfig.from_env().explain != "template" and getattr(diagnoser, "explainer", None) is None:
        from models.answering import get_language_model

        get_language_model()
    if not _knowledge_base_empty(using):  # the retrieval index and the sentence embedder
        from models.retrieval.embedding import embed_texts
        from phm.assistant.retrieval import knowledge_index

        knowledge_index(using).sync()
        embed_texts(["warm up"])
    return True


# --- the incident around an alarm ---------------------------------------------------------------


@dataclass(frozen=True)
class IncidentWindow:
    start: datetime
    end: datetime
    image: InspectionImage | None
    # Mined template text -> the connector template ids its stored lines carry (see log_events_with_ids).
    log_template_ids: dict[str, list[str]] = field(default_factory=dict)


def measure_name(sensor_tag: str, equipment_tag: str) -> str:
    """``P-101.TEMP_BRG`` -> ``TEMP_BRG``: the model's columns are measures, shared by every unit of a type."""
    prefix = f"{equipment_tag}."
    return sensor_tag[len(prefix):] if sensor_tag.startswith(prefix) else sensor_tag.rsplit(".", 1)[-1]


def sensor_window(*, equipment: Equipment, start: datetime, end: datetime, using: str = "default"):
    """Readings of the equipment's enabled sensors in [start, end], one column per measure; a sensor
    sampled at other instants than the rest carries its last value forward."""
    sensors = list(equipment.sensors.using(using).filter(enabled=True).order_by("tag"))
    frame = readings_frame(sensors=sensors, start=start, end=end + timedelta(microseconds=1), using=using)
    if frame.empty:
        return None
    frame = frame.ffill().dropna(how="all", axis=1).dropna()
    frame.columns = [measure_name(tag, equipment.tag) for tag in frame.columns]
    return frame if len(frame) else None


def log_events(*, equipment: Equipment, start: datetime, end: datetime, using: str = "default") -> list:
    """:func:`log_events_with_ids` without the connector template ids."""
    return log_events_with_ids(equipment=equipment, start=start, end=end, using=using)[0]


def log_events_with_ids(*, equipment: Equipment, start: datetime, end: datetime, using: str = "default") -> tuple[list, dict[str, list[str]]]:
    """Log events of the equipment in [start, end) as ``models.diagnosis.LogEvent``, their
    templates mined in one pass over the whole span with the log connector's miner and masks
    (``models.logs.events_from_messages``), as the diagnoser's training incidents were: stored
    templates come from whichever miner each source used (or none, for lines sent over the API),
    and a window's templates only compare with its baseline's when mined together."""
    from models.logs import events_from_messages

    rows = list(
        LogEvent.objects.using(using)
        .filter(Q(equipment=equipment) | Q(source=equipment.tag), ts__gte=start, ts__lt=end)
        .order_by("ts", "id")
        .values_list("ts", "level", "message", "template_id")
    )
    events = events_from_messages([row[:3] for row in rows])
    # Also which ids the log connectors gave these lines, so a stored diagnosis can name them
    # (and readers resolve a merged id to its surviving template).
    ids: dict[str, set[str]] = {}
    for event, row in zip(events, rows):
        if row[3]:
            ids.setdefault(event.template, set()).add(row[3])
    return events, {template: sorted(found) for template, found in ids.items()}


def latest_image(*, equipment: Equipment, at: datetime, max_age_s: float, using: str = "default") -> InspectionImage | None:
    return (
        InspectionImage.objects.using(using)
        .filter(equipment=equipment, ts__lte=at, ts__gte=at - timedelta(seconds=max_age_s))
        .order_by("-ts")
        .first()
    )


def decode_image(image: InspectionImage) -> np.ndarray:
    """The stored file as uint8: H×W for grey (and thermal) images, H×W×3 otherwise."""
    from PIL import Image

    with image.file.open("rb") as handle, Image.open(handle) as picture:
        picture = picture.convert("L") if picture.mode in ("L", "I", "I;16", "F", "1") else picture.convert("RGB")
        return np.asarray(picture, dtype=np.uint8)


def build_incident(*, alarm: Alarm, config: DiagnosisConfig | None = None, using: str = "default", end: datetime | None = None):
    """The model's input for ``alarm``: the sensor window up to the raise (or up to ``end``, for a
    re-diagnosis as evidence grows), the log events of that window and of a normal baseline before
    it, and the latest inspection image (within its age)."""
    from models.diagnosis import Incident

    config = config or DiagnosisConfig.from_env()
    equipment = alarm.equipment
    end = end or alarm.raised_at
    start = end - timedelta(seconds=config.window_s)
    image_row = latest_image(equipment=equipment, at=end, max_age_s=config.image_max_age_s, using=using)
    image = None
    if image_row is not None:
        try:
            image = decode_image(image_row)
        except (OSError, ValueError):  # a missing or unreadable file: diagnose without the image
            log.warning("inspection image %s of %s could not be read", image_row.pk, equipment.tag, exc_info=True)
            image_row = None
    events, template_ids = log_events_with_ids(
        equipment=equipment, start=start - timedelta(seconds=config.baseline_s), end=end + timedelta(microseconds=1), using=using
    )
    incident = Incident(
        equipment_type=equipment.equipment_type,
        sensors=sensor_window(equipment=equipment, start=start, end=end, using=using),
        logs=[e for e in events if e.ts >= start],
        baseline_logs=[e for e in events if e.ts < start],
        image=image,
        image_ref=f"inspection-image:{image_row.pk}" if image_row is not None else None,
        equipment=equipment.tag,
        description=equipment.name,
        residuals=_residuals(equipment=equipment, start=start, end=end, source=getattr(alarm, "source", ""), using=using),
    )
    return incident, IncidentWindow(start, end, image_row, template_ids)


def _residuals(*, equipment: Equipment, start: datetime, end: datetime, source: str, using: str):
    """The detector's per-sensor residuals over the window, or None: a detector that cannot give
    them (a changed sensor set, an unreadable artifact) must not cost the alarm its diagnosis."""
    from phm.analytics.residuals import detector_residuals

    try:
        return detector_residuals(equipment=equipment, start=start, end=end, source=source, using=using)
    except Exception:  # noqa: BLE001 - diagnose from the window alone, and say why in the log
        log.warning("detector residuals of %s for its diagnosis could not be computed", equipment.tag, exc_info=True)
        return None


# --- evidence from the past and from the knowledge base -------------------------------------------

MAX_SIMILAR_CANDIDATES = 5000


def embedding_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").ravel().tobytes()


def embedding_vector(blob) -> np.ndarray:
    return np.frombuffer(bytes(blob), dtype="<f4")


def _label_of(diagnosis_id: int, fault: str, labels: dict[int, str]) -> tuple[str, str]:
    label = labels.get(diagnosis_id)
    if label is None:
        return fault, ""
    return label, " (confirmed)" if label == fault else f" (diagnosed {fault}, corrected by an engineer)"


def similar_diagnoses(
    *, embedding: np.ndarray, equipment_type: str, before: datetime, exclude_id: int | None, k: int, using: str = "default"
) -> list:
    """The ``k`` earlier diagnoses of the same equipment type nearest by embedding cosine; an
    engineer's label (confirm / correct) replaces the model's fault when there is one."""
    from models.diagnosis import SimilarCase

    if k <= 0:
        return []
    rows = list(
        Diagnosis.objects.using(using)
        .filter(status=DiagnosisStatus.DONE, equipment__equipment_type=equipment_type, created_at__lt=before, embedding__isnull=False)
        .exclude(pk=exclude_id)
        .order_by("-created_at")
        .values_list("pk", "fault", "embedding", "equipment__tag", "created_at", "alarm_id")[:MAX_SIMILAR_CANDIDATES]
    )
    query = np.asarray(embedding, dtype=np.float32).ravel()
    rows = [r for r in rows if r[2] is not None and len(bytes(r[2])) == query.size * 4]
    if not rows or not np.any(query):
        return []
    matrix = np.stack([embedding_vector(r[2]) for r in rows])
    cosine = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query) + 1e-12)
    top = np.argsort(-cosine)[:k]
    labels = _latest_labels([rows[i][0] for i in top], using=using)
    cases = []
    for i in top:
        pk, fault, _, tag, created, alarm_id = rows[i]
        label, note = _label_of(pk, fault, labels)
        cases.append(SimilarCase(kind="diagnosis", ref=str(pk), fault=label, similarity=round(float(cosine[i]), 4),
                                 summary=f"{tag}, alarm {alarm_id}, {created:%Y-%m-%d %H:%M} UTC: {label}{note}"))
    return cases


def _latest_labels(diagnosis_ids: list[int], *, using: str) -> dict[int, str]:
    labels: dict[int, str] = {}
    for diagnosis_id, label in (
        DiagnosisFeedback.objects.using(using).filter(diagnosis_id__in=diagnosis_ids).order_by("created_at", "id").values_list("diagnosis_id", "label")
    ):
        labels[diagnosis_id] = label  # the newest verdict wins
    return labels


def fault_words(fault: str) -> str:
    return fault.replace("_", " ")


def _knowledge_filter(equipment: Equipment):
    from models.retrieval.index import ChunkFilter

    return ChunkFilter.of(equipment=[equipment.tag, equipment.name], equipment_types=[equipment.equipment_type])


def _knowledge_base_empty(using: str) -> bool:
    from phm.assistant.models import Chunk

    return not Chunk.objects.using(using).exists()


def similar_work_orders(*, equipment: Equipment, fault: str, sensors: list[str], k: int, using: str = "default") -> list:
    """Work-order rows of the knowledge base nearest to this fault on this equipment (or its type)."""
    from models.diagnosis import SimilarCase
    from phm.assistant.models import DocumentType
    from phm.assistant.retrieval import retrieve

    if k <= 0 or _knowledge_base_empty(using):
        return []
    query = f"{equipment.tag} {equipment.name} {fault_words(fault)} {' '.join(sensors)}".strip()
    cases = []
    for found in retrieve(query, k=max(10, 4 * k), chunk_filter=_knowledge_filter(equipment), using=using):
        chunk = found.chunk
        if chunk.document.doc_type != DocumentType.WORK_ORDERS:
            continue
        fields = chunk.fields or {}
        ref = str(fields.get("wo_id") or fields.get("work_order") or f"{chunk.document.name}, {chunk.location}")
        summary = "; ".join(str(fields[key]) for key in ("equipment_tag", "date", "description", "findings", "action") if fields.get(key)) or chunk.text[:300]
        recorded_fault = str(fields.get("fault") or fields.get("failure_code") or "")
        cases.append(SimilarCase(kind="work_order", ref=ref, fault=recorded_fault, similarity=round(float(found.hit.dense), 4), summary=summary[:400]))
        if len(cases) >= k:
            break
    return cases


_STEP_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(?P<text>.+)$")
_LABELLED_SENTENCE = re.compile(r"^(?P<label>actions?|checks?)\s*:\s*", re.IGNORECASE)


def action_lines(text: str, *, heading: str = "", first_sentence: bool = True) -> list[str]:
    """The steps of a passage, actions before checks: its bullet and numbered lines (continuation
    lines joined; those under an "Actions" heading first), else its sentences labelled "Action:" /
    "Checks:", else its first sentence (unless ``first_sentence`` is False: a description is not a
    step). ``heading``: the chunk's location, which chunking puts as the passage's first line."""
    lines = text.splitlines()
    if heading and lines and lines[0].strip() == heading.strip():
        lines = lines[1:]
    steps: list[tuple[bool, str]] = []
    in_actions = False
    for raw in lines:
        line = raw.strip()
        if line.startswith("#"):
            in_actions = "action" in line.lower()
            continue
        match = _STEP_LINE.match(raw)
        if match:
            steps.append((in_actions, match.group("text").strip()))
        elif line and steps and raw[:1].isspace():
            flag, previous = steps[-1]
            steps[-1] = (flag, f"{previous} {line}")
    if steps:
        return _actions_first(steps)
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", " ".join(" ".join(lines).split())) if s]
    labelled = [(m.group("label").lower().startswith("action"), s[m.end():]) for s in sentences if (m := _LABELLED_SENTENCE.match(s))]
    if labelled:
        return [t[:1].upper() + t[1:] for t in _actions_first(labelled)]
    return sentences[:1] if first_sentence else []


def _actions_first(steps: list[tuple[bool, str]]) -> list[str]:
    """The texts of ``(is_action, text)`` pairs, actions first, each group in its own order."""
    return [text for _, text in sorted(steps, key=lambda step: not step[0])]  # sorted() is stable


#: Words of a fault id that say nothing on their own ("sensor" in sensor_drift).
_GENERIC_FAULT_WORDS = {"sensor", "fault", "failure"}
_ACTION_DOC_TYPES = ("procedure", "manual", "maintenance_note")


def mentions_fault(text: str, fault: str) -> bool:
    """Whether ``text`` names the fault: every distinctive word of its id, by its stem ("fouled
    condenser tubes" names condenser_fouling)."""
    words = [w for w in fault.lower().split("_") if w not in _GENERIC_FAULT_WORDS] or [fault.lower()]
    lowered = text.lower()
    return all(word[: max(4, len(word) - 3)] in lowered for word in words)


def _about(chunk) -> str:
    return f"{chunk.document.title} {chunk.location} {chunk.text}"


def _section_about_another_fault(chunk, fault: str) -> bool:
    """The chunk's own heading names another fault and not this one ("... > Stuck sensor" in a
    document about drift and stuck sensors, for sensor_drift)."""
    from models.diagnosis.taxonomy import FAILURE_MODES

    section = chunk.location.rsplit(">", 1)[-1]
    return not mentions_fault(section, fault) and any(mentions_fault(section, other) for other in FAILURE_MODES if other not in (fault, "normal"))


def recommended_actions(*, equipment: Equipment, fault: str, k: int, using: str = "default") -> list:
    """Actions from the knowledge base for this fault on this equipment, each citing its passage
    (document, passage text, locator, chunk id). Of the retrieved passages, those that name the
    fault come first, then "Actions" sections before "Checks", procedures before notes; the steps
    are taken from the best passage and the other passages of the same document."""
    from models.diagnosis import Action, Citation, NORMAL
    from phm.assistant.models import DocumentType
    from phm.assistant.retrieval import retrieve

    if k <= 0 or fault == NORMAL or _knowledge_base_empty(using):
        return []
    query = f"{fault_words(fault)} {equipment.get_equipment_type_display().lower()} procedure actions checks"
    found = [f for f in retrieve(query, k=16, chunk_filter=_knowledge_filter(equipment), using=using)
             if f.chunk.document.doc_type not in (DocumentType.WORK_ORDERS, DocumentType.REFERENCE)]

    def preference(item: tuple[int, object]) -> tuple:
        rank, hit = item
        chunk = hit.chunk
        return (not mentions_fault(_about(chunk), fault), "action" not in chunk.location.lower(), chunk.document.doc_type not in _ACTION_DOC_TYPES, rank)

    ordered = [hit for _, hit in sorted(enumerate(found), key=preference)]
    if not ordered or not mentions_fault(_about(ordered[0].chunk), fault):
        return []  # no passage names this fault: better no advice than another fault's procedure
    best = ordered[0].chunk
    # Steps of the best passage, then of the same document's other passages about this fault
    # (a procedure split by headings), never of a section about another fault.
    candidates = [h.chunk for h in ordered if h.chunk.document_id == best.document_id and mentions_fault(_about(h.chunk), fault)
                  and not _section_about_another_fault(h.chunk, fault)]
    actions: list = []
    seen: set[str] = set()
    for number, chunk in enumerate(candidates):
        citation = Citation(document=chunk.document.title or chunk.document.name, passage=chunk.text[:1200],
                            locator=f"{chunk.document.name}, {chunk.location}", chunk_id=chunk.pk)
        # A section about this fault gives all its steps; a list of several faults' patterns
        # (e.g. an equipment note) only the lines that name it.
        whole = mentions_fault(f"{chunk.document.title} {chunk.location}", fault)
        # Other passages add their steps only (a "Symptoms" paragraph is no action).
        for line in action_lines(chunk.text, heading=chunk.location, first_sentence=number == 0):
            if not whole and not mentions_fault(line, fault):
                continue
            if line.lower() not in seen:
                seen.add(line.lower())
                actions.append(Action(text=line, citations=(citation,)))
            if len(actions) >= k:
                return actions
    return actions


# --- run ------------------------------------------------------------------------------------------


def raise_recorded_at(alarm: Alarm, *, using: str = "default") -> datetime:
    """Wall-clock time the alarm was raised: its activation journal row's ``recorded_at`` (the
    alarm's ``raised_at`` is process time, which may lag for replayed or backfilled data)."""
    recorded = (
        AlarmTransition.objects.using(using).filter(alarm=alarm, from_state=AlarmState.NORMAL).order_by("id").values_list("recorded_at", flat=True).first()
    )
    return recorded or alarm.raised_at


def _ms_since_trigger(diagnosis: Diagnosis, alarm: Alarm, now: datetime, *, using: str) -> float:
    """Milliseconds from what started this diagnosis to ``now``: the alarm's raise (wall clock) for
    a raise, the claim for a manual re-run."""
    started = raise_recorded_at(alarm, using=using) if diagnosis.trigger == DiagnosisTrigger.RAISE else diagnosis.claimed_at
    return max(0.0, (now - started).total_seconds() * 1000.0)


def _claim(alarm: Alarm, *, trigger: str, now: datetime, lease_s: float, using: str, stage: str = "") -> Diagnosis | None:
    """This worker's diagnosis row, or None when another delivery of the task has it (running
    within its lease, or finished). The partial unique indexes make 'one per raise' and 'one per
    re-diagnosis stage' hold; a manual request always adds a row."""
    fields = {"alarm": alarm, "equipment": alarm.equipment, "trigger": trigger, "stage": stage, "claimed_at": now, "alarm_severity": alarm.severity}
    if trigger != DiagnosisTrigger.RAISE and not stage:
        return Diagnosis.objects.using(using).create(**fields)
    try:
        with transaction.atomic(using=using):
            return Diagnosis.objects.using(using).create(**fields)
    except IntegrityError:
        existing = Diagnosis.objects.using(using).get(alarm=alarm, **({"stage": stage} if stage else {"trigger": trigger}))
    if existing.status != DiagnosisStatus.RUNNING or existing.claimed_at > now - timedelta(seconds=lease_s):
        log.info("alarm %s: diagnosis %s is %s already; nothing to do", alarm.pk, existing.pk, existing.status)
        return None
    # A crashed worker's claim: take it over, unless another redelivery just did.
    if not Diagnosis.objects.using(using).filter(pk=existing.pk, status=DiagnosisStatus.RUNNING, claimed_at=existing.claimed_at).update(claimed_at=now):
        return None
    existing.claimed_at = now
    return existing


def run_diagnosis(*, alarm_id: int, trigger: str = DiagnosisTrigger.RAISE, using: str = "default", stage: str = "") -> Diagnosis | None:
    """Claim, diagnose, complete the evidence, store and announce; returns the stored row, or None
    when another delivery of the same task already has it.

    ``stage`` names a re-diagnosis (:mod:`phm.analytics.rediagnosis`): ``'+300s'`` diagnoses the
    evidence up to 300 s after the raise, ``'escalation:<band>'`` the evidence up to the newest
    reading; each is its own stored row, announced only when the fault or its band changed."""
    config = DiagnosisConfig.from_env()
    alarm = Alarm.objects.using(using).select_related("equipment__line__area__site").get(pk=alarm_id)
    diagnosis = _claim(alarm, trigger=trigger, now=timezone.now(), lease_s=config.lease_s, using=using, stage=stage)
    if diagnosis is None:
        return None
    version = active_version(using=using)
    if version is None:
        message = "no diagnoser is trained yet: run `python manage.py phm_diagnose --train-demo` (or POST /api/v1/diagnoser/train)"
        return _finish(diagnosis, alarm, status=DiagnosisStatus.NO_MODEL, error=message, using=using)
    try:
        fields = _diagnose(alarm, diagnosis, version, config, using=using)
    except Exception as exc:
        log.exception("diagnosis of alarm %s failed", alarm_id)
        return _finish(diagnosis, alarm, status=DiagnosisStatus.FAILED, error=job_error(exc), model_version=version, using=using)
    return _finish(diagnosis, alarm, status=DiagnosisStatus.DONE, model_version=version, using=using, **fields)


def evidence_end(alarm: Alarm, diagnosis: Diagnosis, *, using: str = "default") -> datetime:
    """Where the evidence of this diagnosis ends: the raise, ``raise + offset`` for a follow-up,
    the equipment's newest reading for an escalation (never before the raise)."""
    offset = stage_offset_s(diagnosis.stage)
    if offset is not None:
        return alarm.raised_at + timedelta(seconds=offset)
    if diagnosis.trigger == DiagnosisTrigger.ESCALATION:
        from phm.analytics.diagnosis_demo import newest_reading

        newest = newest_reading(alarm.equipment, using=using)
        return max(alarm.raised_at, newest) if newest is not None else alarm.raised_at
    return alarm.raised_at


def _diagnose(alarm: Alarm, diagnosis: Diagnosis, version: DiagnoserVersion, config: DiagnosisConfig, *, using: str) -> dict:
    diagnoser = loaded_diagnoser(version)
    incident, window = build_incident(alarm=alarm, config=config, using=using, end=evidence_end(alarm, diagnosis, using=using))
    if not incident.modalities():
        raise DiagnosisError(f"no sensor readings, log events or image of {alarm.equipment.tag} in {window.start:%Y-%m-%d %H:%M:%S}..{window.end:%H:%M:%S} UTC")
    result = diagnoser.diagnose(incident, explain=config.explain == "inline", alarm=True)
    embedding = np.asarray(diagnoser.embedding(incident), dtype=np.float32).ravel()
    top_sensors = [s.sensor for s in result.evidence.sensors[:3]]
    result.evidence.similar = similar_diagnoses(
        embedding=embedding, equipment_type=alarm.equipment.equipment_type, before=diagnosis.claimed_at + timedelta(microseconds=1),
        exclude_id=diagnosis.pk, k=config.similar_k, using=using,
    ) + similar_work_orders(equipment=alarm.equipment, fault=result.fault, sensors=top_sensors, k=config.work_orders_k, using=using)
    result.actions = recommended_actions(equipment=alarm.equipment, fault=result.fault, k=config.actions_k, using=using)
    result.model_version = f"v{version.version}"
    stored = result.to_dict()
    # The connector template ids behind each log template of the evidence, as they were stored
    # (an id never changes meaning; the API resolves a merged one to its surviving template).
    stored["log_template_ids"] = {t.template: window.log_template_ids[t.template] for t in result.evidence.log_templates if t.template in window.log_template_ids}
    from phm.condition.classification import classification_evidence  # condition imports analytics models

    stored["capture_classification"] = classification_evidence(equipment=alarm.equipment, until=window.end, using=using)
    return {
        "fault": result.fault, "probability": float(result.probability), "result": stored, "embedding": embedding_bytes(embedding),
        "window_start": window.start, "window_end": window.end, "image": window.image,
    }


def _finish(diagnosis: Diagnosis, alarm: Alarm, *, status: str, using: str, error: str = "", model_version: DiagnoserVersion | None = None, **fields) -> Diagnosis | None:
    """Store the outcome if this worker still holds the claim, and announce a finished diagnosis in
    the same transaction (the event exists if and only if the diagnosis does)."""
    from phm.alarms.services import enqueue_event, kick_delivery

    finished = timezone.now()
    values = {"status": status, "error": error, "model_version": model_version, "finished_at": finished,
              "latency_ms": _ms_since_trigger(diagnosis, alarm, finished, using=using), **fields}
    if status == DiagnosisStatus.DONE and (fields.get("result") or {}).get("explanation_source") == "model":
        values.update(explained_at=finished, explanation_ms=values["latency_ms"])  # explained inline
    with transaction.atomic(using=using):
        held = Diagnosis.objects.using(using).filter(pk=diagnosis.pk, status=DiagnosisStatus.RUNNING, claimed_at=diagnosis.claimed_at).update(**values)
        if not held:
            log.info("diagnosis %s was retaken by another worker; dropping this result", diagnosis.pk)
            return None
        diagnosis.refresh_from_db(using=using)
        if status == DiagnosisStatus.DONE and should_announce(diagnosis, using=using):
            Diagnosis.objects.using(using).filter(pk=diagnosis.pk).update(announced=True)
            diagnosis.announced = True
            enqueue_event(event_type=EventType.DIAGNOSIS, payload=diagnosis_payload(diagnosis), alarm=alarm, using=using)
            if getattr(settings, "PHM_WEBHOOK_KICK_ON_COMMIT", True):
                transaction.on_commit(kick_delivery, using=using)
            if DiagnosisConfig.from_env().explain == "after":
                diagnosis_id = diagnosis.pk
                transaction.on_commit(lambda: enqueue_explanation(diagnosis_id=diagnosis_id), using=using)
    return diagnosis


def previous_diagnosis(diagnosis: Diagnosis, *, using: str = "default") -> Diagnosis | None:
    """The alarm's last finished diagnosis before this one (what SCADA was last told about)."""
    return (
        Diagnosis.objects.using(using).filter(alarm_id=diagnosis.alarm_id, status=DiagnosisStatus.DONE, pk__lt=diagnosis.pk)
        .order_by("-pk").first()
    )


def should_announce(diagnosis: Diagnosis, *, using: str = "default") -> bool:
    """The raise's diagnosis is always announced; a later one only when its top fault or its
    confidence band differs from the alarm's previous diagnosis (or there was none)."""
    if diagnosis.trigger == DiagnosisTrigger.RAISE:
        return True
    previous = previous_diagnosis(diagnosis, using=using)
    if previous is None:
        return True
    return (previous.fault, confidence_band(previous.probability)) != (diagnosis.fault, confidence_band(diagnosis.probability))


def enqueue_explanation(*, diagnosis_id: int) -> None:
    from phm.analytics.tasks import explain_diagnosis

    try:
        explain_diagnosis.apply_async(args=[diagnosis_id])  # queue: phm.celery.route_diagnosis
    except Exception:  # the template explanation stays; nothing else is lost
        log.warning("could not queue the explanation of diagnosis %s", diagnosis_id, exc_info=True)


def explain_stored(*, diagnosis_id: int, using: str = "default") -> Diagnosis | None:
    """Replace a stored diagnosis's template explanation with the language model's checked wording
    (``models.diagnosis.explain``: the model's text is kept only when it restates the evidence; the
    template stays otherwise). Idempotent: an explained diagnosis is left as it is."""
    from models.diagnosis.types import DiagnosisResult

    row = Diagnosis.objects.using(using).select_related("alarm", "equipment", "model_version").filter(
        pk=diagnosis_id, status=DiagnosisStatus.DONE, explained_at__isnull=True
    ).first()
    if row is None or row.model_version is None:
        return None
    text, source = loaded_diagnoser(row.model_version).explain(DiagnosisResult.from_dict(row.result), equipment=row.equipment.tag)
    stored = dict(row.result, explanation=text, explanation_source=source)
    finished = timezone.now()
    updated = Diagnosis.objects.using(using).filter(pk=row.pk, explained_at__isnull=True).update(
        result=stored, explained_at=finished, explanation_ms=_ms_since_trigger(row, row.alarm, finished, using=using)
    )
    if updated:
        row.refresh_from_db(using=using)
    return row


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def diagnosis_path(diagnosis: Diagnosis) -> str:
    return f"/diagnoses/{diagnosis.pk}/"


def diagnosis_payload(diagnosis: Diagnosis) -> dict:
    """The webhook body of a ``diagnosis`` event (Standard Webhooks ``{"type", "timestamp", "data"}``)."""
    alarm, equipment = diagnosis.alarm, diagnosis.equipment
    line = equipment.line
    result = diagnosis.result or {}
    evidence = result.get("evidence") or {}
    return {
        "type": str(EventType.DIAGNOSIS),
        "timestamp": _iso(diagnosis.finished_at),
        "data": {
            "diagnosis_id": diagnosis.pk,
            "alarm_id": alarm.pk,
            "equipment": {
                "site": line.area.site.code, "area": line.area.code, "line": line.code, "equipment": equipment.tag,
                "path": equipment.path, "name": equipment.name, "type": equipment.equipment_type,
            },
            "fault": diagnosis.fault,
            "probability": diagnosis.probability,
            "confidence_band": confidence_band(diagnosis.probability),
            "trigger": diagnosis.trigger,
            "stage": diagnosis.stage,
            "evidence_until": _iso(diagnosis.window_end),
            "probabilities": result.get("probabilities", {}),
            "explanation": result.get("explanation", ""),
            "explanation_source": result.get("explanation_source", ""),
            "sensors": [{"sensor": s["sensor"], "share": s["share"], "direction": s["direction"]} for s in evidence.get("sensors", [])],
            "actions": [a["text"] for a in result.get("actions", [])],
            "capture_classification": result.get("capture_classification"),
            "model_version": result.get("model_version", ""),
            "raised_at": _iso(alarm.raised_at),
            "diagnosed_at": _iso(diagnosis.finished_at),
            "latency_ms": round(diagnosis.latency_ms, 1) if diagnosis.latency_ms is not None else None,
            "link": f"{DiagnosisConfig.from_env().public_url}{diagnosis_path(diagnosis)}",
        },
    }


# --- feedback -------------------------------------------------------------------------------------


def allowed_faults(*, equipment_type: str, using: str = "default") -> list[str]:
    """The classes an engineer may name for this equipment type: the active diagnoser's taxonomy,
    else the model's default taxonomy."""
    version = active_version(using=using)
    if version is not None and version.taxonomy:
        return version.classes(equipment_type)
    from models.diagnosis import DEFAULT_TAXONOMY

    return list(DEFAULT_TAXONOMY.get(equipment_type, []))


@transaction.atomic
def submit_feedback(*, diagnosis: Diagnosis, verdict: str, user=None, fault: str = "", comment: str = "") -> DiagnosisFeedback:
    """Record an engineer's verdict: ``confirm`` labels the incident with the diagnosed fault,
    ``correct`` with ``fault``, which must be one of the equipment type's classes."""
    if verdict not in FeedbackVerdict.values:
        raise FeedbackError(f"unknown verdict {verdict!r}; one of: {', '.join(FeedbackVerdict.values)}", field="verdict")
    if diagnosis.status != DiagnosisStatus.DONE:
        raise FeedbackError(f"diagnosis {diagnosis.pk} is {diagnosis.status}: only a finished diagnosis takes feedback", field="diagnosis")
    fault = (fault or "").strip()
    if verdict == FeedbackVerdict.CONFIRM:
        if fault and fault != diagnosis.fault:
            raise FeedbackError(f"a confirmation keeps the diagnosed fault {diagnosis.fault!r}; use verdict 'correct' to name {fault!r}", field="fault")
        from models.diagnosis.taxonomy import training_label

        label = training_label(diagnosis.fault)  # a confirmed "no known fault" alarm teaches the normal class
    else:
        equipment_type = diagnosis.equipment.equipment_type
        allowed = allowed_faults(equipment_type=equipment_type)
        if not fault:
            raise FeedbackError(f"a correction needs the fault; one of {', '.join(allowed)} for a {equipment_type}", field="fault", allowed=allowed)
        if fault not in allowed:
            raise FeedbackError(f"unknown fault {fault!r} for a {equipment_type}; allowed: {', '.join(allowed)}", field="fault", allowed=allowed)
        label = fault
    return DiagnosisFeedback.objects.create(
        diagnosis=diagnosis, user=user, verdict=verdict, corrected_fault=fault if verdict == FeedbackVerdict.CORRECT else "",
        label=label, comment=comment.strip(),
    )
