"""Data contract of root-cause diagnosis, shared by the model (:mod:`models.diagnosis`) and the app
(``phm.analytics``: the ``diagnose`` task stores :meth:`DiagnosisResult.to_dict` as JSON).

An :class:`Incident` is what the model sees around one alarm: the sensor window, the log events of
that window and of a normal baseline of the same source, and the latest inspection image (any of
the three may be missing). A :class:`DiagnosisResult` is what it answers: the fault class with
probabilities, the evidence behind it, and an explanation that only restates that evidence.

Everything here is plain data (no torch), so the app can read and write it without loading a model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Literal, Sequence

import numpy as np
import pandas as pd

Modality = Literal["sensors", "logs", "image"]
MODALITIES: tuple[Modality, ...] = ("sensors", "logs", "image")
NORMAL = "normal"  # the class every taxonomy has: no fault
#: What the ``normal`` class is called in the diagnosis of an alarm: something tripped the detector,
#: so "normal" would be a contradiction; the honest reading is that no known fault pattern fits.
NO_KNOWN_FAULT = "no_known_fault"
NO_KNOWN_FAULT_TEXT = "no known fault pattern: unknown fault or false alarm"


@dataclass(frozen=True)
class LogEvent:
    """One log line reduced to what diagnosis needs: when, how severe, which template."""

    ts: datetime
    level: str
    template: str


@dataclass
class Incident:
    """Inputs of one diagnosis.

    ``sensors``: DatetimeIndex, one numeric column per measure (the tag suffix, e.g. ``VIB``,
    ``TEMP_BRG``), so one model serves every unit of an equipment type. ``logs``: events of the
    alarm window; ``baseline_logs``: events of the same source in a normal period before it (the
    model compares template counts per hour). ``image``: uint8 H×W (grey or thermal) or H×W×3.
    ``label``: the fault class when known (training, evaluation, engineer feedback).
    """

    equipment_type: str
    sensors: pd.DataFrame | None
    logs: Sequence[LogEvent] = ()
    baseline_logs: Sequence[LogEvent] = ()
    image: np.ndarray | None = None
    image_ref: str | None = None  # where the image came from (e.g. the stored InspectionImage id)
    label: str | None = None
    equipment: str = ""  # the unit's tag, for the prompt and the evidence
    description: str = ""  # equipment description for the prompt
    #: The plant detector's per-sensor residual from the unit's other sensors (signed trailing mean
    #: over its training limit, ``AnomalyDetector.drift_residuals``), one column per measure over
    #: the window; None when the detector has no drift check. A transmitter walking away moves its
    #: own residual alone; a process fault moves several.
    residuals: pd.DataFrame | None = None

    def modalities(self) -> tuple[Modality, ...]:
        present: list[Modality] = []
        if self.sensors is not None and len(self.sensors):
            present.append("sensors")
        if self.logs:
            present.append("logs")
        if self.image is not None:
            present.append("image")
        return tuple(present)


@dataclass(frozen=True)
class SensorEvidence:
    sensor: str  # measure name (column of Incident.sensors)
    share: float  # this sensor's share of the attribution, 0..1, shares sum to 1
    direction: Literal["high", "low", "flat", "mixed"]  # how the window deviates from its normal


@dataclass(frozen=True)
class LogEvidence:
    template: str
    count: int  # occurrences in the alarm window
    baseline_per_hour: float  # rate in the normal baseline of the same source
    window_per_hour: float
    level: str


@dataclass(frozen=True)
class ImageEvidence:
    ref: str | None  # Incident.image_ref
    label: str  # what the image encoder alone sees (e.g. "hot_bearing")
    probability: float


@dataclass(frozen=True)
class SimilarCase:
    kind: Literal["diagnosis", "work_order"]
    ref: str  # diagnosis id or work-order number
    fault: str
    similarity: float
    summary: str = ""


@dataclass(frozen=True)
class Citation:
    """A passage of the knowledge base that backs a recommended action."""

    document: str
    passage: str
    locator: str = ""  # page / heading / row
    chunk_id: int | None = None


@dataclass(frozen=True)
class Action:
    text: str
    citations: tuple[Citation, ...] = ()


@dataclass
class Evidence:
    sensors: list[SensorEvidence] = field(default_factory=list)
    log_templates: list[LogEvidence] = field(default_factory=list)
    image: ImageEvidence | None = None
    similar: list[SimilarCase] = field(default_factory=list)


@dataclass
class DiagnosisResult:
    fault: str
    probability: float
    probabilities: dict[str, float]
    modalities: tuple[str, ...]  # the inputs the model actually used
    evidence: Evidence
    explanation: str = ""
    explanation_source: Literal["model", "template", ""] = ""  # "template": schema check failed
    actions: list[Action] = field(default_factory=list)
    model_version: str = ""

    def to_dict(self) -> dict:
        data = asdict(self)
        data["modalities"] = list(self.modalities)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "DiagnosisResult":
        ev = data.get("evidence") or {}
        image = ev.get("image")
        evidence = Evidence(
            sensors=[SensorEvidence(**s) for s in ev.get("sensors", [])],
            log_templates=[LogEvidence(**t) for t in ev.get("log_templates", [])],
            image=ImageEvidence(**image) if image else None,
            similar=[SimilarCase(**s) for s in ev.get("similar", [])],
        )
        actions = [
            Action(text=a["text"], citations=tuple(Citation(**c) for c in a.get("citations", ())))
            for a in data.get("actions", [])
        ]
        return cls(
            fault=data["fault"], probability=float(data["probability"]),
            probabilities={k: float(v) for k, v in data["probabilities"].items()},
            modalities=tuple(data.get("modalities", ())), evidence=evidence,
            explanation=data.get("explanation", ""), explanation_source=data.get("explanation_source", ""),
            actions=actions, model_version=data.get("model_version", ""),
        )
