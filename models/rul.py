"""Remaining useful life from run-to-failure histories: ``RULEstimator``.

Contract (DESIGN.md): ``RULEstimator(method=...).fit(df).predict(df) -> pd.Series`` where ``df``
has columns ``unit``, ``cycle`` and one numeric column per setting/sensor. ``fit`` treats every
unit as run to failure, so the RUL of a row is its unit's last cycle minus its cycle, clipped to
``rul_cap`` (the piecewise-linear target of Heimes 2008: early in life the true RUL is not
observable from the sensors, so the model is asked for "at least ``rul_cap``"). ``predict``
returns the RUL at each unit's last observed cycle, indexed by unit; ``predict_cycles`` returns
it at every cycle (each prediction uses only the history up to that cycle).

Inputs of the network are the last ``window`` cycles of the selected columns (short histories
are front-padded with their first row), plus the cycle number. Columns that are constant or
take at most two values in the training data carry no degradation signal and are dropped.

Normalisation (``normalisation=``):
``"unit"``   (default) each unit's columns minus the mean of its own first ``baseline_cycles``
             cycles, divided by the pooled training scale: engines start with different
             manufacturing offsets and wear, and degradation is the *drift* from a unit's own start.
``"global"`` z-score with training means and standard deviations.
``"both"``   the two side by side as separate input channels.

Methods: ``inceptiontime`` (tsai InceptionTime regressor), ``reprogram`` (regression head on the
Time-LLM reprogramming trunk, see ``models.reprogramming``), ``lightgbm`` (gradient boosting on
rolling statistics of the same windows: level, recent means, slopes, spread; see
:func:`window_features`). ``n_models=k`` trains k copies with seeds ``seed .. seed+k-1`` and
averages their predictions (an ensemble across seeds: one network's RUL error on a held-out
engine depends noticeably on its initialisation).

Prediction interval (``interval=0.8``, the default; ``None`` turns it off): cross-conformal,
Mondrian by predicted RUL. ``fit`` also trains ``interval_folds`` copies on folds of the training
*units* and predicts every cycle of each held-out unit with the copy that never saw it; the
out-of-fold residuals (capped true RUL minus prediction, each unit weighted equally, since a test
unit is cut at one random cycle whatever its length) are split into ``interval_bins`` bins of
predicted RUL, and each bin keeps its (1-level)/2 and (1+level)/2 residual quantiles. An interval
is the final model's prediction plus its bin's two quantiles. Why this and not quantile heads:
it works the same for every method (networks and boosting), needs no change of loss, and the
residuals are those of models that did not see the unit, so the width reflects the error on a
new machine (a tree's in-sample residuals are far too small). Binning matters: the error near
the cap (early life, where wear is not yet visible) is several times the error near failure, so
one width for all would be too wide late and too narrow early. ``n_units_`` records how many
run-to-failure histories the model rests on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.numpy import load_file as load_numpy_file
from safetensors.numpy import save_file as save_numpy_file

from models.classification import (
    MeanEnsemble,
    TrainingLog,
    combined_log,
    TrainingSettings,
    count_parameters,
    load_persisted_state,
    network_outputs,
    persisted_state,
    train_network,
)

ProgressCallback = Callable[[dict[str, float]], None]
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
ID_COLUMNS = ("unit", "cycle")
NORMALISATIONS = ("unit", "global", "both")
METHODS = ("inceptiontime", "reprogram", "lightgbm")
LIGHTGBM_DEFAULTS: dict[str, Any] = {
    "n_estimators": 2000, "learning_rate": 0.02, "num_leaves": 15, "min_child_samples": 50,
    "subsample": 0.8, "colsample_bytree": 0.8, "early_stopping_rounds": 100,
}


def check_run_frame(frame: pd.DataFrame, *, name: str = "df") -> pd.DataFrame:
    """Validate a ``unit``/``cycle`` frame and return it sorted by unit and cycle."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in ID_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it needs 'unit', 'cycle' and sensor columns")
    if frame.empty:
        raise ValueError(f"{name} has no rows")
    non_numeric = [c for c in frame.columns if c not in ID_COLUMNS and not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise ValueError(f"{name}: columns {non_numeric} are not numeric")
    if frame.drop(columns=list(ID_COLUMNS)).isna().to_numpy().any():
        column = frame.columns[frame.isna().any()].tolist()
        raise ValueError(f"{name}: NaN values in column(s) {column}")
    duplicated = frame.duplicated(subset=list(ID_COLUMNS))
    if duplicated.any():
        first = frame.loc[duplicated, list(ID_COLUMNS)].iloc[0].tolist()
        raise ValueError(f"{name}: (unit, cycle) {first} appears more than once")
    return frame.sort_values(list(ID_COLUMNS)).reset_index(drop=True)


def piecewise_linear_rul(frame: pd.DataFrame, *, cap: float | None = 125.0) -> pd.Series:
    """RUL of each row of run-to-failure histories: unit's last cycle - cycle, clipped at ``cap``."""
    rul = frame.groupby("unit")["cycle"].transform("max") - frame["cycle"]
    return rul.clip(upper=cap).astype(np.float64) if cap is not None else rul.astype(np.float64)


def informative_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric columns other than unit/cycle that vary (more than two distinct values) in ``frame``."""
    columns = [c for c in frame.columns if c not in ID_COLUMNS]
    return [c for c in columns if frame[c].nunique() > 2 and frame[c].std() > 0]


class _History:
    """Normalised per-cycle inputs of each unit and the windows that end at each cycle."""

    def __init__(self, columns: list[str], normalisation: str, baseline_cycles: int, window: int) -> None:
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
        self.columns = columns
        self.normalisation = normalisation
        self.baseline_cycles = baseline_cycles
        self.window = window

    def fit(self, frame: pd.DataFrame) -> None:
        values = frame[self.columns].to_numpy(np.float64)
        self.global_mean = values.mean(axis=0)
        self.global_scale = values.std(axis=0) + 1e-9
        drift = self._unit_drift(frame)
        self.drift_scale = drift.std(axis=0) + 1e-9
        self.cycle_scale = float(frame.groupby("unit")["cycle"].max().mean())

    def _unit_drift(self, frame: pd.DataFrame) -> np.ndarray:
        values = frame[self.columns].to_numpy(np.float64)
        baseline = frame.groupby("unit", sort=False)[self.columns].transform(lambda s: s.iloc[: self.baseline_cycles].mean())
        return values - baseline.to_numpy(np.float64)

    def per_cycle(self, frame: pd.DataFrame) -> np.ndarray:
        """``[rows, channels]`` float32 for a sorted, checked frame."""
        parts = []
        if self.normalisation in ("global", "both"):
            parts.append((frame[self.columns].to_numpy(np.float64) - self.global_mean) / self.global_scale)
        if self.normalisation in ("unit", "both"):
            parts.append(self._unit_drift(frame) / self.drift_scale)
        parts.append(frame[["cycle"]].to_numpy(np.float64) / self.cycle_scale)
        return np.concatenate(parts, axis=1).astype(np.float32)

    def windows(self, frame: pd.DataFrame, *, last_only: bool) -> np.ndarray:
        """``[n, channels, window]``: one window per row (or per unit's last row if ``last_only``)."""
        inputs = self.per_cycle(frame)
        out = []
        for rows in frame.groupby("unit", sort=False).indices.values():
            unit_inputs = inputs[rows]
            padded = np.concatenate([np.repeat(unit_inputs[:1], self.window - 1, axis=0), unit_inputs])
            view = np.lib.stride_tricks.sliding_window_view(padded, self.window, axis=0)  # [T, channels, window]
            out.append(view[-1:] if last_only else view)
        return np.ascontiguousarray(np.concatenate(out)).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {
            "global_mean": self.global_mean,
            "global_scale": self.global_scale,
            "drift_scale": self.drift_scale,
            "cycle_scale": np.array([self.cycle_scale]),
        }

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.global_mean, self.global_scale = arrays["global_mean"], arrays["global_scale"]
        self.drift_scale, self.cycle_scale = arrays["drift_scale"], float(arrays["cycle_scale"][0])


def _slope(values: np.ndarray) -> np.ndarray:
    """Least-squares slope per cycle along the last axis of ``[n, channels, k]``."""
    steps = np.arange(values.shape[-1], dtype=np.float64)
    steps -= steps.mean()
    return (values * steps).sum(axis=-1) / (steps**2).sum()


def window_features(windows: np.ndarray) -> np.ndarray:
    """Rolling statistics of ``[n, channels, window]`` inputs for gradient boosting: per channel the
    last value, the means of the last 5 and 10 cycles and of the window, the slopes over the
    last 10 cycles and the window, and the window's standard deviation -> ``[n, 7 * channels]``.
    Means and slopes over several spans separate the sensor noise (large per cycle) from the
    degradation trend (slow), which a tree cannot do from single values."""
    x = windows.astype(np.float64, copy=False)
    recent = x[..., -min(10, x.shape[-1]) :]
    parts = [x[..., -1], x[..., -min(5, x.shape[-1]) :].mean(axis=-1), recent.mean(axis=-1), x.mean(axis=-1),
             _slope(recent), _slope(x), x.std(axis=-1)]
    return np.stack(parts, axis=-1).reshape(len(x), -1).astype(np.float32)


class _BoostedRegressor:
    """LightGBM on :func:`window_features`, predicting RUL / cap (like the networks)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.settings = {**LIGHTGBM_DEFAULTS, **{k: v for k, v in params.items() if k in LIGHTGBM_DEFAULTS}}
        self.seed = int(params.get("seed", 0))
        self.booster: Any = None

    def fit(self, inputs: np.ndarray, targets: np.ndarray, validation: tuple[np.ndarray, np.ndarray] | None) -> TrainingLog:
        import lightgbm

        started = time.perf_counter()
        train_set = lightgbm.Dataset(window_features(inputs), label=targets)
        valid_sets, callbacks = [], []
        if validation is not None:
            valid_sets = [lightgbm.Dataset(window_features(validation[0]), label=validation[1], reference=train_set)]
            callbacks.append(lightgbm.early_stopping(self.settings["early_stopping_rounds"], verbose=False))
        self.booster = lightgbm.train(
            {
                "objective": "regression", "learning_rate": self.settings["learning_rate"],
                "num_leaves": self.settings["num_leaves"], "min_child_samples": self.settings["min_child_samples"],
                "bagging_fraction": self.settings["subsample"], "bagging_freq": 1,
                "feature_fraction": self.settings["colsample_bytree"], "seed": self.seed,
                "deterministic": True, "num_threads": 1, "verbose": -1,
            },
            train_set, num_boost_round=self.settings["n_estimators"], valid_sets=valid_sets, callbacks=callbacks,
        )
        rounds = self.booster.current_iteration()
        return TrainingLog(epochs_run=rounds, best_epoch=self.booster.best_iteration or rounds, seconds=time.perf_counter() - started)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(window_features(inputs), num_iteration=self.booster.best_iteration or None))

    def parameter_counts(self) -> tuple[int, int]:
        nodes = sum(tree["num_leaves"] * 2 - 1 for tree in self.booster.dump_model()["tree_info"])
        return nodes, nodes


def _build_network(method: str, n_channels: int, window: int, params: dict[str, Any]) -> torch.nn.Module:
    torch.manual_seed(int(params.get("seed", 0)))
    if method == "inceptiontime":
        from tsai.models.InceptionTime import InceptionTime

        return InceptionTime(n_channels, 1, seq_len=window, nf=int(params.get("nf", 16)))
    if method == "reprogram":
        from models.heads import build_reprogram_regressor

        return build_reprogram_regressor(n_channels=n_channels, seq_len=window, params=params)
    raise ValueError(f"unknown RUL method {method!r}; choose one of {METHODS}")


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q`` quantile of ``values`` with sample ``weights`` (inverse of the weighted CDF)."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    position = np.searchsorted(cumulative, q * cumulative[-1], side="left")
    return float(values[order][min(position, len(values) - 1)])


def residual_bins(predicted: np.ndarray, residuals: np.ndarray, weights: np.ndarray, *, level: float, n_bins: int) -> dict[str, np.ndarray]:
    """Bins of predicted RUL (equal weight each) and each bin's (1-level)/2, (1+level)/2 residual
    quantiles: the calibration of :meth:`RULEstimator.predict_interval`."""
    order = np.argsort(predicted)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    # Inner edges at equal shares of the weight; a bin holds at least one residual.
    inner = [predicted[order][min(np.searchsorted(cumulative, k / n_bins), len(order) - 1)] for k in range(1, n_bins)]
    edges = np.unique(np.asarray(inner, dtype=np.float64))
    which = np.searchsorted(edges, predicted, side="right")
    low, high = (1 - level) / 2, (1 + level) / 2
    lower, upper = np.zeros(len(edges) + 1), np.zeros(len(edges) + 1)
    for b in range(len(edges) + 1):
        mask = which == b
        values, w = (residuals[mask], weights[mask]) if mask.any() else (residuals, weights)
        lower[b], upper[b] = weighted_quantile(values, w, low), weighted_quantile(values, w, high)
    return {"edges": edges, "lower": lower, "upper": upper, "level": np.array([level])}


def interval_bounds(point: np.ndarray, calibration: dict[str, np.ndarray], *, cap: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) around ``point`` from its bin's residual quantiles, within [0, cap]; the
    interval always holds the point itself."""
    which = np.searchsorted(calibration["edges"], point, side="right")
    lower = np.clip(point + calibration["lower"][which], 0.0, cap)
    upper = np.clip(point + calibration["upper"][which], 0.0, cap)
    return np.minimum(lower, point), np.maximum(upper, point)


class _ScaledMSE(torch.nn.Module):
    """MSE on the network's single output against the RUL divided by the cap (targets in [0, 1])."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(output.reshape(-1), target)


class RULEstimator:
    """Remaining-useful-life regression on unit/cycle histories (see module docstring)."""

    def __init__(
        self,
        method: str = "inceptiontime",
        *,
        rul_cap: float = 125.0,
        window: int = 30,
        normalisation: str = "unit",
        baseline_cycles: int = 20,
        validation_fraction: float = 0.1,
        train_stride: int = 1,
        seed: int = 0,
        interval: float | None = 0.8,
        interval_folds: int = 5,
        interval_bins: int = 5,
        progress: ProgressCallback | None = None,
        on_fold: Callable[[int, int], None] | None = None,
        **params: Any,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
        if rul_cap <= 0 or window < 2 or baseline_cycles < 1:
            raise ValueError(f"need rul_cap > 0, window >= 2, baseline_cycles >= 1; got {rul_cap}, {window}, {baseline_cycles}")
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
        self.method = method
        self.rul_cap = float(rul_cap)
        self.window = window
        self.normalisation = normalisation
        self.baseline_cycles = baseline_cycles
        if train_stride < 1:
            raise ValueError(f"train_stride must be >= 1, got {train_stride}")
        self.validation_fraction = validation_fraction
        # Train on every k-th cycle's window (counted back from each unit's last cycle): windows
        # of neighbouring cycles overlap by window-1 rows, so k = 2..4 costs little accuracy and
        # divides the CPU time per epoch by k.
        self.train_stride = train_stride
        self.seed = seed
        if interval is not None and not 0 < interval < 1:
            raise ValueError(f"interval must be a level in (0, 1) or None, got {interval}")
        if interval_folds < 2 or interval_bins < 1:
            raise ValueError(f"need interval_folds >= 2 and interval_bins >= 1; got {interval_folds}, {interval_bins}")
        self.interval = interval
        self.interval_folds = interval_folds
        self.interval_bins = interval_bins
        self.progress = progress
        # Called with (fold done, folds) as the interval's calibration copies finish (they have
        # no epochs of their own to report when the method is gradient boosting).
        self.on_fold = on_fold
        self.params = params
        self.calibration_: dict[str, np.ndarray] | None = None
        self.n_units_ = 0
        if int(params.get("n_models", 1)) < 1:
            raise ValueError(f"n_models must be >= 1, got {params['n_models']}")
        self.network: torch.nn.Module | _BoostedRegressor | None = None
        self.training_log = TrainingLog()

    def _network_params(self) -> dict[str, Any]:
        return {**self.params, "seed": self.seed}

    def fit(self, df: pd.DataFrame) -> RULEstimator:
        frame = check_run_frame(df)
        self._fit_point(frame)
        self.n_units_ = int(frame["unit"].nunique())
        if self.interval is not None:
            self.calibration_ = self._calibrate(frame)
        return self

    def _fit_point(self, frame: pd.DataFrame) -> None:
        """The point model on every training unit (the one ``predict`` uses)."""
        self.columns_ = informative_columns(frame)
        if not self.columns_:
            raise ValueError("no column varies in the training data; nothing to learn RUL from")
        self._history = _History(self.columns_, self.normalisation, self.baseline_cycles, self.window)
        self._history.fit(frame)
        units = frame["unit"].unique()
        rng = np.random.default_rng(self.seed)
        n_validation = int(round(self.validation_fraction * len(units)))
        validation_units = set(rng.choice(units, size=n_validation, replace=False).tolist()) if n_validation else set()
        is_validation = frame["unit"].isin(validation_units).to_numpy()
        targets = (piecewise_linear_rul(frame, cap=self.rul_cap) / self.rul_cap).to_numpy(np.float32)

        cycles_before_end = frame.groupby("unit").cumcount(ascending=False).to_numpy()
        on_stride = cycles_before_end % self.train_stride == 0

        def part(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            subset = frame[mask]
            return self._history.windows(subset, last_only=False)[on_stride[mask]], targets[mask & on_stride]

        train_inputs, train_targets = part(~is_validation)
        validation = part(is_validation) if validation_units else None
        self.n_channels_ = train_inputs.shape[1]
        if self.method == "lightgbm":
            self.network = _BoostedRegressor(self._network_params())
            self.training_log = self.network.fit(train_inputs, train_targets, validation)
            return
        members, logs = [], []
        for member in range(int(self.params.get("n_models", 1))):
            params = {**self._network_params(), "seed": self.seed + member}
            network = _build_network(self.method, self.n_channels_, self.window, params)
            settings = TrainingSettings(**{k: v for k, v in params.items() if k in TrainingSettings.__dataclass_fields__})
            logs.append(train_network(
                network, train_inputs, train_targets, loss_fn=_ScaledMSE(), validation=validation,
                settings=settings, progress=self.progress, target_dtype=torch.float32,
            ))
            members.append(network)
        self.network = members[0] if len(members) == 1 else MeanEnsemble(members)
        self.training_log = combined_log(logs)

    def _calibrate(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Out-of-fold residuals by unit fold -> per-bin residual quantiles (module docstring)."""
        units = frame["unit"].unique()
        if len(units) < self.interval_folds:
            raise ValueError(
                f"a {self.interval:.0%} interval needs at least interval_folds={self.interval_folds} run-to-failure units, got {len(units)}; "
                "pass interval=None or fewer interval_folds"
            )
        rng = np.random.default_rng(self.seed + 1)
        folds = np.array_split(rng.permutation(units), self.interval_folds)
        predicted, residuals, weights = [], [], []
        for index, held_out in enumerate(folds, start=1):
            inner = RULEstimator(**{**self._config_kwargs(), "interval": None, "progress": None})
            inner._fit_point(frame[~frame["unit"].isin(held_out)])
            test = frame[frame["unit"].isin(held_out)]
            out_of_fold = inner.predict_cycles(test).to_numpy()
            true = piecewise_linear_rul(test, cap=self.rul_cap).to_numpy()
            predicted.append(out_of_fold)
            residuals.append(true - out_of_fold)
            weights.append(1.0 / test.groupby("unit")["cycle"].transform("size").to_numpy(np.float64))
            if self.on_fold is not None:
                self.on_fold(index, len(folds))
        return residual_bins(np.concatenate(predicted), np.concatenate(residuals), np.concatenate(weights),
                             level=float(self.interval), n_bins=self.interval_bins)

    def _config_kwargs(self) -> dict[str, Any]:
        config = self._config()
        return {**{k: v for k, v in config.items() if k != "params"}, **config["params"]}

    def _check_fitted(self) -> torch.nn.Module | _BoostedRegressor:
        if self.network is None:
            raise RuntimeError("RULEstimator is not fitted: call fit(df) or load(path) first")
        return self.network

    def _predict_windows(self, windows: np.ndarray) -> np.ndarray:
        network = self._check_fitted()
        scaled = network.predict(windows) if isinstance(network, _BoostedRegressor) else network_outputs(network, windows).reshape(-1)
        return np.clip(scaled * self.rul_cap, 0.0, self.rul_cap)

    def _prepare(self, df: pd.DataFrame) -> pd.DataFrame:
        frame = check_run_frame(df)
        missing = [c for c in self.columns_ if c not in frame.columns]
        if missing:
            raise ValueError(f"df lacks column(s) {missing} that the estimator was fitted on")
        return frame

    def predict(self, df: pd.DataFrame) -> pd.Series:
        """RUL at each unit's last observed cycle, indexed by unit."""
        self._check_fitted()
        frame = self._prepare(df)
        predictions = self._predict_windows(self._history.windows(frame, last_only=True))
        units = frame.groupby("unit", sort=False)["unit"].first().to_numpy()
        return pd.Series(predictions, index=pd.Index(units, name="unit"), name="rul")

    def predict_interval(self, df: pd.DataFrame) -> pd.DataFrame:
        """RUL at each unit's last observed cycle with the ``interval`` prediction interval:
        columns ``rul``, ``lower``, ``upper``, indexed by unit."""
        if self.calibration_ is None:
            raise RuntimeError("this RULEstimator has no prediction interval (fitted with interval=None)")
        point = self.predict(df)
        lower, upper = interval_bounds(point.to_numpy(), self.calibration_, cap=self.rul_cap)
        return pd.DataFrame({"rul": point.to_numpy(), "lower": lower, "upper": upper}, index=point.index)

    def predict_cycles(self, df: pd.DataFrame) -> pd.Series:
        """RUL at every row, from the history up to that cycle; indexed by (unit, cycle)."""
        self._check_fitted()
        frame = self._prepare(df)
        predictions = self._predict_windows(self._history.windows(frame, last_only=False))
        index = pd.MultiIndex.from_frame(frame[list(ID_COLUMNS)])
        return pd.Series(predictions, index=index, name="rul")

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameters; for gradient boosting, tree nodes."""
        network = self._check_fitted()
        if isinstance(network, (_BoostedRegressor, MeanEnsemble)):
            return network.parameter_counts()
        return count_parameters(network)

    def _config(self) -> dict[str, Any]:
        return {
            "method": self.method, "rul_cap": self.rul_cap, "window": self.window, "normalisation": self.normalisation,
            "baseline_cycles": self.baseline_cycles, "validation_fraction": self.validation_fraction,
            "train_stride": self.train_stride, "seed": self.seed,
            "interval": self.interval, "interval_folds": self.interval_folds, "interval_bins": self.interval_bins,
            "params": self.params,
        }

    def save(self, path: str | Path) -> Path:
        network = self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        booster = None
        if isinstance(network, _BoostedRegressor):
            # LightGBM's own text model format inside the JSON (plain text, not pickle).
            arrays, booster = {}, network.booster.model_to_string()
        else:
            arrays = {f"network.{k}": v.detach().cpu().numpy() for k, v in persisted_state(network).items()}
        arrays.update({f"history.{k}": v for k, v in self._history.state().items()})
        if self.calibration_ is not None:
            arrays.update({f"interval.{k}": v for k, v in self.calibration_.items()})
        save_numpy_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(folder / WEIGHTS_FILE))
        document = {
            "estimator": "RULEstimator", "config": self._config(), "columns": self.columns_,
            "n_channels": self.n_channels_, "training_log": asdict(self.training_log), "booster": booster,
            "n_units": self.n_units_,
        }
        (folder / CONFIG_FILE).write_text(json.dumps(document))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> RULEstimator:
        folder = Path(path)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} is missing; is {folder} a saved RULEstimator?")
        document = json.loads((folder / CONFIG_FILE).read_text())
        if document.get("estimator") != "RULEstimator":
            raise ValueError(f"{folder / CONFIG_FILE} does not describe a RULEstimator")
        config = document["config"]
        estimator = cls(**{k: v for k, v in config.items() if k != "params"}, **config["params"])
        estimator.columns_, estimator.n_channels_ = document["columns"], document["n_channels"]
        arrays = load_numpy_file(str(folder / WEIGHTS_FILE))
        estimator._history = _History(estimator.columns_, estimator.normalisation, estimator.baseline_cycles, estimator.window)
        estimator._history.restore({k.removeprefix("history."): v for k, v in arrays.items() if k.startswith("history.")})
        calibration = {k.removeprefix("interval."): v for k, v in arrays.items() if k.startswith("interval.")}
        estimator.calibration_ = calibration or None
        estimator.n_units_ = int(document.get("n_units", 0))
        estimator.training_log = TrainingLog(**document["training_log"])
        if estimator.method == "lightgbm":
            import lightgbm

            estimator.network = _BoostedRegressor(estimator._network_params())
            estimator.network.booster = lightgbm.Booster(model_str=document["booster"])
            return estimator
        params = estimator._network_params()
        members = [
            _build_network(estimator.method, estimator.n_channels_, estimator.window, {**params, "seed": estimator.seed + i})
            for i in range(int(params.get("n_models", 1)))
        ]
        estimator.network = members[0] if len(members) == 1 else MeanEnsemble(members)
        state = {k.removeprefix("network."): torch.from_numpy(v.copy()) for k, v in arrays.items() if k.startswith("network.")}
        load_persisted_state(estimator.network, state)
        estimator.network.eval()
        estimator.training_log = TrainingLog(**document["training_log"])
        return estimator
