"""Condition monitoring models, one module per concept (captures; classification and health add
their own modules and one import line here)."""

from phm.condition.models.captures import CaptureSource, WaveformCapture, WaveformUnit
from phm.condition.models.health import HealthPoint, RULEstimate, RULJobStatus, RULModelVersion, RULTrainingJob, RULTrainingProgress

__all__ = ["CaptureSource", "HealthPoint", "RULEstimate", "RULJobStatus", "RULModelVersion", "RULTrainingJob", "RULTrainingProgress",
           "WaveformCapture", "WaveformUnit"]
from phm.condition.models.classifier import CaptureClassification, CaptureClassifier, ClassifierTrainingJob, ClassifierTrainingProgress, ClassifierVersion  # noqa: E402
