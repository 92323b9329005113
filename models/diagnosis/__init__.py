"""Root-cause diagnosis over sensors, logs and images (see :mod:`models.diagnosis.types` for the data contract)."""

from models.diagnosis.types import (
    MODALITIES, NO_KNOWN_FAULT, NO_KNOWN_FAULT_TEXT, NORMAL, Action, Citation, DiagnosisResult, Evidence, ImageEvidence, Incident, LogEvent,
    LogEvidence, SensorEvidence, SimilarCase,
)

__all__ = [
    "MODALITIES", "NO_KNOWN_FAULT", "NO_KNOWN_FAULT_TEXT", "NORMAL", "Action", "Citation", "DiagnosisResult", "Evidence", "ImageEvidence", "Incident",
    "LogEvent", "LogEvidence", "SensorEvidence", "SimilarCase",
]

# The model is exported lazily: models.logs imports models.diagnosis.types, and the model imports
# models.logs, so an eager import here would be circular for whoever imports models.logs first.
_LAZY = {
    "DEFAULT_TAXONOMY": "models.diagnosis.taxonomy", "FAILURE_MODES": "models.diagnosis.taxonomy",
    "FailureMode": "models.diagnosis.taxonomy", "DiagnoserConfig": "models.diagnosis.model",
    "FaultDiagnoser": "models.diagnosis.model", "simulate_incidents": "models.diagnosis.simulate",
}
__all__ += list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'models.diagnosis' has no attribute {name!r}")
