"""Point-wise anomaly detection metrics in SKAB's convention.

SKAB scores "outlier detection" over all scored points of all files concatenated:
F1 of the anomaly class, FAR = FP / (FP + TN) and MAR = FN / (FN + TP), both in percent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np


@dataclass(frozen=True)
class DetectionCounts:
    tp: int
    fp: int
    tn: int
    fn: int

    def __add__(self, other: "DetectionCounts") -> "DetectionCounts":
        return DetectionCounts(self.tp + other.tp, self.fp + other.fp, self.tn + other.tn, self.fn + other.fn)


@dataclass(frozen=True)
class DetectionScores:
    f1: float
    far_percent: float
    mar_percent: float
    precision: float
    recall: float
    n_points: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def confusion_counts(y_true: Iterable[bool | int], y_pred: Iterable[bool | int]) -> DetectionCounts:
    truth = np.asarray(list(y_true) if not isinstance(y_true, np.ndarray) else y_true).astype(bool)
    pred = np.asarray(list(y_pred) if not isinstance(y_pred, np.ndarray) else y_pred).astype(bool)
    if truth.shape != pred.shape:
        raise ValueError(f"labels and predictions differ in shape: {truth.shape} vs {pred.shape}")
    return DetectionCounts(
        tp=int(np.sum(truth & pred)),
        fp=int(np.sum(~truth & pred)),
        tn=int(np.sum(~truth & ~pred)),
        fn=int(np.sum(truth & ~pred)),
    )


def detection_scores(counts: DetectionCounts) -> DetectionScores:
    precision = counts.tp / (counts.tp + counts.fp) if counts.tp + counts.fp else 0.0
    recall = counts.tp / (counts.tp + counts.fn) if counts.tp + counts.fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    negatives = counts.fp + counts.tn
    positives = counts.fn + counts.tp
    return DetectionScores(
        f1=f1,
        far_percent=100.0 * counts.fp / negatives if negatives else 0.0,
        mar_percent=100.0 * counts.fn / positives if positives else 0.0,
        precision=precision,
        recall=recall,
        n_points=counts.tp + counts.fp + counts.tn + counts.fn,
    )


def score_detection(y_true: Iterable[bool | int], y_pred: Iterable[bool | int]) -> DetectionScores:
    return detection_scores(confusion_counts(y_true, y_pred))
