"""Root-cause diagnosis over sensors, logs and images (see :mod:`models.diagnosis.types` for the data contract)."""

from models.diagnosis.types import (
    MODALITIES, NORMAL, Action, Citation, DiagnosisResult, Evidence, ImageEvidence, Incident, LogEvent,
    LogEvidence, SensorEvidence, SimilarCase,
)

__all__ = [
    "MODALITIES", "NORMAL", "Action", "Citation", "DiagnosisResult", "Evidence", "ImageEvidence", "Incident",
    "LogEvent", "LogEvidence", "SensorEvidence", "SimilarCase",
]
