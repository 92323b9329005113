"""Health indicator per time step, usable without any run-to-failure history: ``HealthIndicator``.

``fit(healthy)`` learns what a machine looks like when it is healthy from a stretch of its own
readings (the first days of a run: one numeric column per sensor, any index). ``transform(df)``
gives one value per row of ``df``:

1. the Mahalanobis distance of the row from the healthy mean, with a Ledoit-Wolf shrunk
   covariance (a few dozen healthy rows of correlated sensors make a plain covariance singular),
2. smoothed by an exponentially weighted mean (``span`` rows: one noisy reading is not wear),
3. divided by the healthy ``limit`` (the ``quantile`` of the smoothed healthy distances), so
   ``s <= 1`` looks healthy,
4. mapped to a health indicator in [0, 1]: **1 = like the healthy reference**, falling as the
   machine drifts away from it.

   - Without failure history: ``HI = min(1, 1 / s)``; 0.5 means twice as far from healthy as the
     healthy data ever was. It never reaches 0: nothing says where failure lies.
   - With failure history (:meth:`calibrate_failure` given the indicators' distances at the end of
     earlier runs to failure): ``HI = 1`` up to the healthy limit, ``0`` at the median distance at
     which those machines failed, linear in between (clipped).

A degradation model in the sense of the PHM literature (distance from a health baseline, Lee
et al. 2014), not a learnt RUL: it needs only healthy data, which every machine has.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import load_file, save_file
from sklearn.covariance import LedoitWolf

CONFIG_FILE = "health.json"
WEIGHTS_FILE = "health.safetensors"
#: Fewer healthy rows than this cannot describe a healthy machine.
MIN_HEALTHY_ROWS = 10


class HealthIndicator:
    """Distance-from-healthy health indicator in [0, 1] (see module docstring)."""

    def __init__(self, *, span: int = 10, quantile: float = 0.99) -> None:
        if span < 1:
            raise ValueError(f"span must be >= 1, got {span}")
        if not 0.5 <= quantile < 1:
            raise ValueError(f"quantile must be in [0.5, 1), got {quantile}")
        self.span = span
        self.quantile = quantile
        self.failure_level_: float | None = None
        self.columns_: list[str] | None = None

    def _numeric(self, frame: pd.DataFrame, *, name: str) -> np.ndarray:
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
        missing = [c for c in self.columns_ or [] if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks column(s) {missing} the health indicator was fitted on")
        values = frame[self.columns_].to_numpy(np.float64)
        if np.isnan(values).any():
            bad = [c for c in self.columns_ if frame[c].isna().any()]
            raise ValueError(f"{name}: NaN values in column(s) {bad}")
        return values

    def fit(self, healthy: pd.DataFrame) -> HealthIndicator:
        """Learn the healthy reference from ``healthy`` (numeric columns; constant ones are dropped)."""
        if not isinstance(healthy, pd.DataFrame):
            raise TypeError(f"healthy must be a pandas DataFrame, got {type(healthy).__name__}")
        numeric = [c for c in healthy.columns if pd.api.types.is_numeric_dtype(healthy[c])]
        self.columns_ = [c for c in numeric if healthy[c].nunique() > 1]
        if not self.columns_:
            raise ValueError("healthy data has no varying numeric column; nothing to measure health by")
        if len(healthy) < MIN_HEALTHY_ROWS:
            raise ValueError(f"healthy data has {len(healthy)} rows; need at least {MIN_HEALTHY_ROWS}")
        values = self._numeric(healthy, name="healthy")
        self.mean_ = values.mean(axis=0)
        self.scale_ = values.std(axis=0) + 1e-9
        covariance = LedoitWolf().fit((values - self.mean_) / self.scale_).covariance_
        self.precision_ = np.linalg.pinv(covariance)
        distances = self._smoothed(values)
        self.limit_ = float(np.quantile(distances, self.quantile)) or 1.0
        return self

    def _smoothed(self, values: np.ndarray) -> np.ndarray:
        z = (values - self.mean_) / self.scale_
        raw = np.sqrt(np.einsum("ij,jk,ik->i", z, self.precision_, z))
        return pd.Series(raw).ewm(span=self.span, adjust=True).mean().to_numpy()

    def _check_fitted(self) -> None:
        if self.columns_ is None:
            raise RuntimeError("HealthIndicator is not fitted: call fit(healthy) or load(path) first")

    def distance(self, frame: pd.DataFrame) -> pd.Series:
        """Smoothed distance from healthy in units of the healthy limit (``s`` of the docstring)."""
        self._check_fitted()
        values = self._numeric(frame, name="df")
        return pd.Series(self._smoothed(values) / self.limit_, index=frame.index, name="distance")

    def calibrate_failure(self, distances_at_failure: list[float] | np.ndarray) -> HealthIndicator:
        """Set the failure level (HI = 0) to the median of ``distances_at_failure`` (each the
        :meth:`distance` at the last step of a run to failure)."""
        levels = np.asarray(distances_at_failure, dtype=np.float64)
        levels = levels[np.isfinite(levels)]
        if levels.size == 0:
            raise ValueError("no finite distance at failure to calibrate with")
        self.failure_level_ = float(max(np.median(levels), 1.0 + 1e-6))
        return self

    def transform(self, frame: pd.DataFrame) -> pd.Series:
        """Health indicator per row of ``frame``, in [0, 1] (1 = healthy)."""
        s = self.distance(frame).to_numpy()
        if self.failure_level_ is None:
            health = np.minimum(1.0, 1.0 / np.maximum(s, 1e-9))
        else:
            health = np.clip((self.failure_level_ - s) / (self.failure_level_ - 1.0), 0.0, 1.0)
        return pd.Series(health, index=frame.index, name="health")

    def save(self, path: str | Path) -> Path:
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"mean": self.mean_, "scale": self.scale_, "precision": np.ascontiguousarray(self.precision_)}, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps({
            "estimator": "HealthIndicator", "span": self.span, "quantile": self.quantile, "columns": self.columns_,
            "limit": self.limit_, "failure_level": self.failure_level_,
        }))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> HealthIndicator:
        folder = Path(path)
        document = json.loads((folder / CONFIG_FILE).read_text())
        if document.get("estimator") != "HealthIndicator":
            raise ValueError(f"{folder / CONFIG_FILE} does not describe a HealthIndicator")
        indicator = cls(span=document["span"], quantile=document["quantile"])
        arrays = load_file(str(folder / WEIGHTS_FILE))
        indicator.columns_, indicator.limit_, indicator.failure_level_ = document["columns"], document["limit"], document["failure_level"]
        indicator.mean_, indicator.scale_, indicator.precision_ = arrays["mean"], arrays["scale"], arrays["precision"]
        return indicator
