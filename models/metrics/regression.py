"""Regression metrics for remaining useful life: RMSE, MAE and the PHM08 challenge score.

The PHM08 score (Saxena et al., 2008) penalises late predictions (over-estimated RUL, the
dangerous direction) more than early ones: with d = predicted - true,
``s = sum(exp(-d/13) - 1)`` for d < 0 and ``sum(exp(d/10) - 1)`` for d >= 0. Lower is better.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

EARLY_SCALE = 13.0
LATE_SCALE = 10.0


@dataclass(frozen=True)
class RegressionReport:
    rmse: float
    mae: float
    phm08_score: float
    n_samples: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _check_pair(
    y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(y_true, dtype=np.float64).ravel()
    predicted = np.asarray(y_pred, dtype=np.float64).ravel()
    if truth.shape != predicted.shape:
        raise ValueError(f"y_true has {truth.size} values but y_pred has {predicted.size}")
    if truth.size == 0:
        raise ValueError("cannot score an empty set of predictions")
    if not (np.isfinite(truth).all() and np.isfinite(predicted).all()):
        raise ValueError("y_true and y_pred must be finite (found NaN or inf)")
    return truth, predicted


def rmse(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray) -> float:
    truth, predicted = _check_pair(y_true, y_pred)
    return float(np.sqrt(np.mean((predicted - truth) ** 2)))


def mae(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray) -> float:
    truth, predicted = _check_pair(y_true, y_pred)
    return float(np.mean(np.abs(predicted - truth)))


def phm08_score(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray) -> float:
    """Asymmetric PHM08 score summed over samples; late predictions cost more than early ones."""
    truth, predicted = _check_pair(y_true, y_pred)
    error = predicted - truth
    penalty = np.where(error < 0, np.expm1(-error / EARLY_SCALE), np.expm1(error / LATE_SCALE))
    return float(penalty.sum())


def regression_report(
    y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray
) -> RegressionReport:
    truth, predicted = _check_pair(y_true, y_pred)
    return RegressionReport(
        rmse=rmse(truth, predicted),
        mae=mae(truth, predicted),
        phm08_score=phm08_score(truth, predicted),
        n_samples=int(truth.size),
    )
