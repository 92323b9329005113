"""Metrics for inspection-image classifiers: defect-vs-free AUROC next to the multi-class scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score


@dataclass(frozen=True)
class ImageClassificationScores:
    defect_auroc: float
    accuracy: float
    macro_f1: float
    n_samples: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def defect_scores(probabilities: np.ndarray, classes: Sequence[str], normal_class: str) -> np.ndarray:
    """Probability that an image shows any defect: ``1 − P(normal_class)``."""
    classes = list(classes)
    if normal_class not in classes:
        raise ValueError(f"normal class {normal_class!r} is not among the model's classes {classes}")
    if probabilities.ndim != 2 or probabilities.shape[1] != len(classes):
        raise ValueError(f"probabilities must be [n, {len(classes)}], got shape {probabilities.shape}")
    return 1.0 - probabilities[:, classes.index(normal_class)]


def score_image_classifier(
    y_true: Sequence[str], probabilities: np.ndarray, classes: Sequence[str], *, normal_class: str
) -> ImageClassificationScores:
    """AUROC of defect-vs-normal from ``1 − P(normal)``, plus accuracy and macro-F1 of the argmax class."""
    truth = np.asarray(y_true).astype(str)
    if len(truth) != len(probabilities):
        raise ValueError(f"{len(truth)} labels but {len(probabilities)} probability rows")
    is_defect = truth != normal_class
    if is_defect.all() or not is_defect.any():
        raise ValueError("AUROC needs both defective and normal images in y_true")
    predicted = np.asarray(classes).astype(str)[probabilities.argmax(axis=1)]
    return ImageClassificationScores(
        defect_auroc=float(roc_auc_score(is_defect, defect_scores(probabilities, classes, normal_class))),
        accuracy=float(accuracy_score(truth, predicted)),
        macro_f1=float(f1_score(truth, predicted, labels=sorted(set(truth)), average="macro", zero_division=0)),
        n_samples=len(truth),
    )
