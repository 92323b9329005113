"""Gradient-boosted trees stored as plain arrays, so a fitted model saves to safetensors, not pickle.

scikit-learn's ``HistGradientBoostingClassifier`` trains the trees; ``export_boosted_trees`` copies
each tree's nodes (feature, threshold, children, leaf value, where missing values go) into flat
arrays, and ``BoostedTrees.predict_proba`` walks them with NumPy. Tests check that the walk gives
scikit-learn's own probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, softmax
from sklearn.ensemble import HistGradientBoostingClassifier

_ARRAY_FIELDS = ("feature", "threshold", "left", "right", "is_leaf", "value", "missing_left", "tree_offsets", "tree_output", "baseline")


@dataclass(frozen=True)
class BoostedTrees:
    """All trees' nodes concatenated; ``left``/``right`` index into the concatenation."""

    feature: np.ndarray  # int64 [nodes]
    threshold: np.ndarray  # float64 [nodes]; ``x <= threshold`` goes left
    left: np.ndarray  # int64 [nodes]
    right: np.ndarray  # int64 [nodes]
    is_leaf: np.ndarray  # bool [nodes]
    value: np.ndarray  # float64 [nodes], leaf contribution to the raw score
    missing_left: np.ndarray  # bool [nodes], where NaN goes
    tree_offsets: np.ndarray  # int64 [trees], root node of each tree
    tree_output: np.ndarray  # int64 [trees], which raw score (class) the tree adds to
    baseline: np.ndarray  # float64 [outputs], raw score before any tree

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in _ARRAY_FIELDS}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> BoostedTrees:
        missing = [name for name in _ARRAY_FIELDS if name not in arrays]
        if missing:
            raise ValueError(f"boosted trees are missing arrays {missing}")
        return cls(**{name: np.asarray(arrays[name]) for name in _ARRAY_FIELDS})

    def raw_scores(self, features: np.ndarray) -> np.ndarray:
        rows = features.shape[0]
        scores = np.tile(self.baseline, (rows, 1)).astype(np.float64)
        sample = np.arange(rows)
        for root, output in zip(self.tree_offsets, self.tree_output):
            node = np.full(rows, root, dtype=np.int64)
            active = ~self.is_leaf[node]
            while active.any():
                current = node[active]
                value = features[sample[active], self.feature[current]]
                go_left = np.where(np.isnan(value), self.missing_left[current], value <= self.threshold[current])
                node[active] = np.where(go_left, self.left[current], self.right[current])
                active = ~self.is_leaf[node]
            scores[:, output] += self.value[node]
        return scores

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        scores = self.raw_scores(np.asarray(features, dtype=np.float64))
        if scores.shape[1] == 1:  # binary: one raw score, the log-odds of the second class
            positive = expit(scores[:, 0])
            return np.column_stack([1 - positive, positive])
        return softmax(scores, axis=1)


def export_boosted_trees(model: HistGradientBoostingClassifier) -> BoostedTrees:
    """Copy a fitted classifier's trees into arrays (numeric features only, no categorical splits)."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ("feature", "threshold", "left", "right", "is_leaf", "value", "missing_left")}
    offsets, outputs = [], []
    total = 0
    for iteration in model._predictors:  # [iterations][trees per iteration]; sklearn's fitted trees
        for output, predictor in enumerate(iteration):
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits cannot be exported; use numeric features")
            offsets.append(total)
            outputs.append(output)
            parts["feature"].append(nodes["feature_idx"].astype(np.int64))
            parts["threshold"].append(nodes["num_threshold"].astype(np.float64))
            parts["left"].append(nodes["left"].astype(np.int64) + total)
            parts["right"].append(nodes["right"].astype(np.int64) + total)
            parts["is_leaf"].append(nodes["is_leaf"].astype(bool))
            parts["value"].append(nodes["value"].astype(np.float64))
            parts["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
            total += len(nodes)
    return BoostedTrees(
        **{name: np.concatenate(arrays) for name, arrays in parts.items()},
        tree_offsets=np.asarray(offsets, dtype=np.int64),
        tree_output=np.asarray(outputs, dtype=np.int64),
        baseline=np.asarray(model._baseline_prediction, dtype=np.float64).ravel(),
    )
