"""Choosing a detector's calibration (threshold quantile and margin) on labelled cases, for a
false-alarm rate a control room can live with.

The rule: among the candidates whose point-wise false-alarm rate on the choosing cases is at most
``far_target`` %, the one with the best F1; when none reaches the target, the one with the lowest
false-alarm rate. Only the threshold moves: each candidate recalibrates the already fitted model on
each case's own training part (:meth:`AnomalyDetector.recalibrate`), so a grid costs scoring, not
training. Report the choice on cases it never saw (see ``phm.skab_product --protocol``).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.detectors import AnomalyDetector
from models.metrics.detection import DetectionCounts, confusion_counts, detection_scores

QUANTILES = (0.99, 0.995, 0.999)
MARGINS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
FAR_TARGET_PERCENT = 10.0


@dataclass(frozen=True)
class Case:
    """One labelled recording: its first ``train_rows`` rows train and calibrate, the rest is scored."""

    name: str
    frame: pd.DataFrame
    labels: np.ndarray
    train_rows: int

    @property
    def train(self) -> pd.DataFrame:
        return self.frame.iloc[: self.train_rows]


@dataclass(frozen=True)
class Choice:
    quantile: float
    margin: float
    reached_target: bool
    table: list[dict]  # every candidate: quantile, margin, f1, far_percent, mar_percent

    @property
    def params(self) -> dict[str, float]:
        return {"quantile": self.quantile, "margin": self.margin}


def with_calibration(detector: AnomalyDetector, train_frame: pd.DataFrame, *, quantile: float, margin: float) -> AnomalyDetector:
    """``detector``'s model with a threshold at ``margin`` x the ``quantile`` of ``train_frame``'s scores."""
    base = copy.copy(detector)
    base.params = dataclasses.replace(detector.params, quantile=quantile, margin=margin)
    return base.recalibrate(train_frame)


def evaluate(detectors: Mapping[str, AnomalyDetector], cases: Sequence[Case], *, quantile: float, margin: float) -> dict:
    """Point-wise F1 / FAR / MAR over ``cases`` (pooled counts, as SKAB scores) at one calibration."""
    total = DetectionCounts(0, 0, 0, 0)
    for case in cases:
        calibrated = with_calibration(detectors[case.name], case.train, quantile=quantile, margin=margin)
        predicted = calibrated.predict(case.frame).to_numpy()[case.train_rows:]
        total = total + confusion_counts(case.labels[case.train_rows:], predicted)
    return detection_scores(total).as_dict()


def choose_calibration(
    detectors: Mapping[str, AnomalyDetector], cases: Sequence[Case], *, quantiles: Sequence[float] = QUANTILES,
    margins: Sequence[float] = MARGINS, far_target: float = FAR_TARGET_PERCENT,
) -> Choice:
    """The rule in the module docstring over the grid ``quantiles`` x ``margins``; ``detectors``
    maps each case's name to its fitted detector (one shared model or one per case)."""
    if not cases:
        raise ValueError("choose_calibration needs at least one labelled case")
    missing = [c.name for c in cases if c.name not in detectors]
    if missing:
        raise ValueError(f"no fitted detector for case(s) {missing}")
    table = [
        {"quantile": q, "margin": m, **evaluate(detectors, cases, quantile=q, margin=m)}
        for q in quantiles for m in margins
    ]
    within = [row for row in table if row["far_percent"] <= far_target]
    if within:
        best = max(within, key=lambda r: (r["f1"], -r["far_percent"]))
    else:
        best = min(table, key=lambda r: (r["far_percent"], -r["f1"]))
    return Choice(quantile=best["quantile"], margin=best["margin"], reached_target=bool(within), table=table)
