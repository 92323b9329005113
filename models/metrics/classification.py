"""Classification metrics for fault diagnosis: accuracy, macro-F1, confusion matrix, calibration.

Thin wrappers over scikit-learn that fix the conventions the harnesses rely on: labels are
strings, macro-F1 averages over the classes *present in the ground truth* (so a class the test
set cannot contain, e.g. ``Normal`` in the CWRU cross-load protocol, neither inflates nor
deflates the score, while predicting it still counts as a miss for the true class).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


@dataclass(frozen=True)
class ClassificationReport:
    accuracy: float
    macro_f1: float
    n_samples: int
    expected_calibration_error: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _as_label_array(labels: Sequence[str] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(labels).astype(str)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of labels, got shape {array.shape}")
    return array


def accuracy(y_true: Sequence[str] | np.ndarray, y_pred: Sequence[str] | np.ndarray) -> float:
    truth, predicted = _check_pair(y_true, y_pred)
    return float(accuracy_score(truth, predicted))


def macro_f1(y_true: Sequence[str] | np.ndarray, y_pred: Sequence[str] | np.ndarray) -> float:
    """Macro-F1 over the classes that occur in ``y_true``."""
    truth, predicted = _check_pair(y_true, y_pred)
    present = sorted(set(truth.tolist()))
    return float(f1_score(truth, predicted, labels=present, average="macro", zero_division=0))


def expected_calibration_error(
    y_true: Sequence[str] | np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    *,
    n_bins: int = 15,
) -> float:
    """Top-label ECE: mean |confidence - accuracy| over equal-width confidence bins, weighted by size."""
    truth = _as_label_array(y_true, "y_true")
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(truth), len(classes)):
        raise ValueError(
            f"probabilities must have shape (n_samples, n_classes) = {(len(truth), len(classes))}, "
            f"got {probabilities.shape}"
        )
    confidence = probabilities.max(axis=1)
    correct = np.asarray(classes).astype(str)[probabilities.argmax(axis=1)] == truth
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    error = 0.0
    for b in range(n_bins):
        in_bin = bin_index == b
        if in_bin.any():
            error += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(error)


def labelled_confusion_matrix(
    y_true: Sequence[str] | np.ndarray, y_pred: Sequence[str] | np.ndarray, labels: Sequence[str]
) -> np.ndarray:
    truth, predicted = _check_pair(y_true, y_pred)
    return confusion_matrix(truth, predicted, labels=list(labels))


def classification_report(
    y_true: Sequence[str] | np.ndarray,
    y_pred: Sequence[str] | np.ndarray,
    probabilities: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
) -> ClassificationReport:
    truth, predicted = _check_pair(y_true, y_pred)
    ece = None
    if probabilities is not None:
        if classes is None:
            raise ValueError("classes are required with probabilities (column order of the matrix)")
        ece = expected_calibration_error(truth, probabilities, classes)
    return ClassificationReport(
        accuracy=accuracy(truth, predicted),
        macro_f1=macro_f1(truth, predicted),
        n_samples=len(truth),
        expected_calibration_error=ece,
    )


def _check_pair(
    y_true: Sequence[str] | np.ndarray, y_pred: Sequence[str] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    truth = _as_label_array(y_true, "y_true")
    predicted = _as_label_array(y_pred, "y_pred")
    if len(truth) != len(predicted):
        raise ValueError(f"y_true has {len(truth)} labels but y_pred has {len(predicted)}")
    if len(truth) == 0:
        raise ValueError("cannot score an empty set of predictions")
    return truth, predicted
