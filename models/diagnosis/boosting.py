"""Gradient-boosted trees on the diagnoser's window statistics, next to the fusion network.

The fusion network (:mod:`models.diagnosis.network`) reads the sensor window as patch tokens and
the statistics of :mod:`models.diagnosis.features` (window, cross-measure, residual and trend
summaries) as one more input. At the raise, minutes into a fault, the answer hangs on a few of those
statistics ("the current is off its prediction and the vibration is not": a drifting current
transmitter, not a misalignment), which trees split on directly while the network, trained for ten
epochs on two thousand incidents, weighs them with everything else. On the plant trial's
development seeds LightGBM on the statistics alone was right at the raise more often than the
network, and the two together more often than either (README, "Diagnosis right at the raise").

:class:`SummaryBooster` is that model: one LightGBM multiclass model over every (equipment type,
class) pair of the diagnoser's taxonomy, fed the summary and a one-hot of the equipment type, its
probabilities renormalised over the incident's type's classes. LightGBM (already the project's
boosting library, :mod:`models.classification`) saves to its own text format, so a diagnoser folder
holds no pickle: an uploaded diagnoser cannot run code when it is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Probability floor before the log: a class the trees never saw in training keeps a finite score.
PROBABILITY_FLOOR = 1e-4

BOOSTER_PARAMS = {
    "objective": "multiclass",
    "learning_rate": 0.08,
    "num_leaves": 15,
    "min_child_samples": 10,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,  # the shared 2-core machine; the fusion network trains single-threaded too
    "verbose": -1,
}
ROUNDS = 200


class SummaryBooster:
    """LightGBM over ``[summary, one-hot equipment type]`` for the flat (type, class) rows."""

    def __init__(self, equipment_types: Sequence[str], n_classes: int, booster: object | None = None) -> None:
        self.equipment_types = list(equipment_types)
        self.n_classes = n_classes
        self.booster = booster

    def _inputs(self, summaries: np.ndarray, types: Sequence[str]) -> np.ndarray:
        onehot = np.array([[t == known for known in self.equipment_types] for t in types], dtype=np.float64)
        return np.hstack([np.asarray(summaries, dtype=np.float64), onehot])

    def fit(self, summaries: np.ndarray, types: Sequence[str], rows: Sequence[int], *, seed: int = 0) -> "SummaryBooster":
        """``rows``: each incident's flat class row (``FaultDiagnoser._class_row``)."""
        import lightgbm

        if len(rows) == 0:
            raise ValueError("the summary booster needs at least one incident")
        data = lightgbm.Dataset(self._inputs(summaries, types), label=np.asarray(rows))
        self.booster = lightgbm.train({**BOOSTER_PARAMS, "num_class": self.n_classes, "seed": seed}, data, num_boost_round=ROUNDS)
        return self

    def log_probabilities(self, summaries: np.ndarray, types: Sequence[str], masks: np.ndarray) -> np.ndarray:
        """``[N, n_classes]`` log-probabilities, renormalised over each row's ``masks`` (its type's
        classes); ``-inf`` outside the mask."""
        if self.booster is None:
            raise RuntimeError("the summary booster is not fitted")
        probabilities = np.asarray(self.booster.predict(self._inputs(summaries, types)), dtype=np.float64).reshape(len(types), -1)
        probabilities = np.where(masks, np.maximum(probabilities, PROBABILITY_FLOOR), 0.0)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore"):
            return np.log(probabilities)

    def to_string(self) -> str:
        if self.booster is None:
            raise RuntimeError("the summary booster is not fitted")
        return self.booster.model_to_string()

    @classmethod
    def from_string(cls, text: str, equipment_types: Sequence[str], n_classes: int) -> "SummaryBooster":
        import lightgbm

        try:
            booster = lightgbm.Booster(model_str=text)
        except lightgbm.basic.LightGBMError as exc:
            raise ValueError(f"not a LightGBM model: {exc}") from exc
        if booster.num_model_per_iteration() != n_classes:
            raise ValueError(f"the saved summary booster has {booster.num_model_per_iteration()} classes, the diagnoser {n_classes}")
        return cls(equipment_types, n_classes, booster)
