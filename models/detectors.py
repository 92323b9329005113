"""``AnomalyDetector``: per-time-step anomaly scores for multichannel sensor frames.

Contract (DESIGN.md)::

    detector = AnomalyDetector(method="reprogram", **params).fit(train_df)
    detector.score(df)    -> pd.Series[float]  (1.0 = the calibrated threshold)
    detector.predict(df)  -> pd.Series[bool]   (threshold + minimum duration / hysteresis)
    detector.save(path);  AnomalyDetector.load(path)   (JSON + safetensors, no pickle)

``df`` has a DatetimeIndex and one numeric column per sensor. Every method first standardises each
channel with the training part's mean and standard deviation.

Methods:

* ``reprogram`` -- the Time-LLM style forecaster (:mod:`models.reprogramming`) on the frozen language
  model; each step's score comes from its forecast residuals (see *Scoring* below).
  ``llm="none"`` (no language model) and ``llm="random"`` (random backbone of the same shape) are
  the ablations. With ``skip=True`` (the default) the trunk keeps a linear patch path next to the
  language model, whose projection starts at zero, so the backbone refines a linear forecast
  instead of replacing it; ``llm="none"`` is then exactly that patch path, and the gap between
  ``reprogram`` and its ablations is what the language model adds. (Without the path, patches reach
  the forecast only through the prototype cross-attention and the backbone, a bottleneck that cost
  SKAB F1 0.760 / FAR 45.6 % against 0.786 / 13.9 % with it, 6 layers, 3 epochs, training windows
  4 steps apart.)
* ``patchtst`` -- tsai's PatchTST as the forecaster, scored exactly like ``reprogram``.
* ``pca`` -- Hotelling T² and Q (squared prediction error) of a PCA model of the training part.
* ``isolation_forest`` -- scikit-learn's IsolationForest on the standardised channels.
* ``zscore`` -- the trivial baseline: the largest per-channel |z| over ``z_threshold``.

Scoring of the forecasters: windows of ``seq_len`` steps forecast the next ``horizon`` steps (one
forecast per step, windows stepping by ``horizon``). Residuals are divided per channel by a robust
scale (MAD) and combined into a Mahalanobis distance with a Ledoit-Wolf covariance, both estimated
on calibration residuals. Calibration uses only the training frame: the model is fitted on its first
``1 - calibration_fraction`` and the residuals of the held-out tail set the scale, covariance and
threshold, so the threshold sees residuals the model did not fit.

Threshold and alarms (all methods but ``zscore``): a trailing mean over ``smooth`` steps, then
``threshold = margin * quantile(calibration scores, q)`` (SKAB's notebooks use q = 0.99 and margin
1.5); an alarm starts after ``min_duration`` steps above the threshold and ends after
``min_duration`` steps below ``release_ratio`` times it (hysteresis), so noise does not chatter.
Everything is causal: a step's score and alarm use only that step and earlier ones.

Constant channels (a setpoint, a stuck transmitter, a constant test signal): a column whose
training values vary by less than ``flat_tolerance`` times its magnitude (at least 1) is left out of
the model (``constant_columns`` names it, with its value) and scored as a deviation from its
constant instead: ``|x - constant| / (flat_tolerance * max(|constant|, 1))`` after the same
smoothing, so 1.0 (the threshold) means it left its training value by more than the tolerance. A
step's score is the larger of the model's and the constant channels'. A frame of constant channels
only needs no model at all. Step, sparse (mostly zero) and integer-valued channels go through the
model like any other (their robust scales fall back to the standard deviation when the MAD is 0).

Stuck channels: with ``stuck_s > 0`` a channel that varied in training but has held one value for
longer than ``max(stuck_s, 2 x its longest hold in training)`` seconds scores that hold over the
limit (1.0 = the threshold): a frozen transmitter whose last value is plausible is invisible to a
model of values. Seconds, not steps, so a slowly sampled channel (or a grid with gaps) gets the same
limit in time. Off by default (0); the score needs a frame reaching that far back (a scoring context
of at least ``stuck_s``).

Slow drifts: with ``drift_s > 0`` each model channel is also predicted from the other channels
(a ridge regression on them and their squares, in standardised units: the squares follow pump
affinity laws and other curved couplings over a daily cycle), and its residual is averaged over
the trailing ``drift_s`` seconds. A transmitter walking away slowly stays inside the training
spread for hours (so the model of values cannot see it) but its residual leaves the others'
prediction and stays away; averaging takes the noise off it. The check scores the largest
``|mean residual| / (drift_margin x its largest value in training)`` over channels (1.0 = the
threshold). It needs a scoring frame reaching ``drift_s`` back (a scoring context of at least
``drift_s``); steps with less history score 0 on it. Off by default (0). With ``drift_daily`` the
predictors also hold the first two harmonics of the time of day (UTC): what follows the day but no
sensor of the unit measures (the ambient temperature under a bearing thermometer) is then
predicted too, instead of widening that channel's limit by the whole daily swing. It assumes the
training days are like the scored ones; where the daily pattern changes (seasons, weather),
retrain, or leave it off.

Several recordings of the same equipment: ``fit([df1, df2, ...])`` trains one model on all of them
(each standardised by its own statistics); ``recalibrate(train_df)`` then returns a detector that
shares the trained model but takes standardisation and threshold from ``train_df`` alone.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from models.training import EpochProgress, TrainConfig, TrainHistory, seed_everything, train_model

METHODS = ("reprogram", "patchtst", "pca", "isolation_forest", "zscore")
FORECASTING_METHODS = ("reprogram", "patchtst")


@dataclass(frozen=True)
class DetectorParams:
    # post-processing (all methods)
    smooth: int = 5
    min_duration: int = 5
    release_ratio: float = 0.8
    quantile: float = 0.99
    margin: float = 1.5
    calibration_fraction: float = 0.25
    # forecasters
    seq_len: int = 48
    horizon: int = 16
    patch_len: int = 12
    stride: int = 6
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 2e-3
    max_steps_per_epoch: int | None = None
    # Every window once per epoch: on SKAB's 16 x 300 fit rows, stride 4 left ~960 windows and a
    # held-out forecast MSE of 0.845; stride 1 gives ~3,800 and 0.793 (label-free, calibration tails).
    # On long plant histories cap the cost with max_steps_per_epoch instead.
    train_stride: int = 1
    seed: int = 0
    # reprogram
    llm: str = "backbone"  # "backbone" | "random" | "none"
    backbone_source: str | None = None
    num_layers: int | None = 2  # first layers of the backbone: 6 scored no better on SKAB at 3x the cost (see models.evaluate.skab)
    n_prototypes: int = 64
    d_model: int = 32
    d_output: int = 16
    channel_mode: str = "mixed"
    skip: bool = True  # linear patch path next to the language model (see ReprogrammingTrunk)
    revin: bool = False
    prompt_statistics: bool = True
    domain: str = "Industrial equipment sensors."
    device: str = "cpu"  # "cpu" | "cuda" | "auto" (reprogram's backbone and trunk)
    quantization: str = "none"  # backbone quantization, see models.backbone.load_backbone
    # patchtst
    patchtst_d_model: int = 32
    patchtst_layers: int = 2
    # pca / isolation forest / zscore
    pca_variance: float = 0.9
    n_estimators: int = 200
    z_threshold: float = 3.0
    # constant channels: relative spread below which a channel counts as constant (see docstring)
    flat_tolerance: float = 1e-6
    # stuck channels: one value held longer than this many seconds (0 = off, see docstring)
    stuck_s: float = 0.0
    # slow drifts: trailing mean of each channel's residual from the others (0 = off, see docstring)
    drift_s: float = 0.0
    drift_margin: float = 1.0
    drift_daily: bool = False  # time-of-day harmonics among the predictors (see docstring)

    @classmethod
    def for_method(cls, method: str, **overrides: object) -> "DetectorParams":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown AnomalyDetector parameter(s) {unknown}; known: {sorted(known)}")
        if method == "zscore":  # the trivial baseline is plain point-wise thresholding
            overrides = {"smooth": 1, "min_duration": 1, **overrides}
        return cls(**overrides)


@dataclass
class Standardizer:
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> "Standardizer":
        std = values.std(axis=0)
        return cls(mean=values.mean(axis=0), std=np.where(std > 1e-12, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)


@dataclass
class ResidualModel:
    """Robust per-channel scale + Ledoit-Wolf precision of calibration residuals."""

    scale: np.ndarray
    precision: np.ndarray

    @classmethod
    def fit(cls, residuals: np.ndarray) -> "ResidualModel":
        from sklearn.covariance import LedoitWolf

        median = np.median(residuals, axis=0)
        scale = 1.4826 * np.median(np.abs(residuals - median), axis=0)
        scale = np.where(scale > 1e-9, scale, residuals.std(axis=0) + 1e-9)
        scaled = residuals / scale
        return cls(scale=scale, precision=LedoitWolf().fit(scaled).precision_)

    def distance(self, residuals: np.ndarray) -> np.ndarray:
        scaled = residuals / self.scale
        d2 = np.einsum("tc,cd,td->t", scaled, self.precision, scaled)
        return np.sqrt(np.maximum(d2, 0.0) / scaled.shape[1])


@dataclass
class Calibration:
    threshold: float
    residual_model: ResidualModel | None = None
    extra: dict[str, float] = field(default_factory=dict)


class AnomalyDetector:
    """See the module docstring."""

    def __init__(self, method: str = "reprogram", *, backbone: object | None = None, **params: object) -> None:
        """``backbone``: an already loaded :class:`models.backbone.Backbone` to use instead of loading
        one from ``backbone_source`` / ``num_layers`` (tests, or several detectors sharing one)."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        self.method = method
        self.params = DetectorParams.for_method(method, **params)
        self.columns: list[str] | None = None
        self.constant_columns: dict[str, float] = {}  # flat in training: column -> its constant
        self.stuck_limits: dict[str, float] = {}  # column -> longest hold of one value still normal (s)
        self.drift: DriftModel | None = None  # each channel from the others, for slow drifts
        self.standardizer: Standardizer | None = None
        self.calibration: Calibration | None = None
        self.model: object | None = None
        self.history: TrainHistory | None = None
        self.backbone = backbone  # the loaded language model (reprogram only), shared on recalibrate

    # -- fitting -------------------------------------------------------------------------------
    def fit(
        self,
        frames: pd.DataFrame | Sequence[pd.DataFrame],
        *,
        on_epoch: Callable[[EpochProgress], None] | None = None,
    ) -> "AnomalyDetector":
        frames = [frames] if isinstance(frames, pd.DataFrame) else list(frames)
        if not frames:
            raise ValueError("fit needs at least one training frame")
        self.columns = _check_frame(frames[0], None, "training frame 0")
        for i, frame in enumerate(frames[1:], start=1):
            _check_frame(frame, self.columns, f"training frame {i}")
        seed_everything(self.params.seed)
        raw = [frame.to_numpy(dtype=np.float64) for frame in frames]
        self.constant_columns = constant_channels(np.concatenate(raw), self.columns, self.params.flat_tolerance)
        keep = self._model_column_indices()
        raw = [values[:, keep] for values in raw]
        self.stuck_limits = stuck_limits(raw, [_seconds(f.index) for f in frames], self.model_columns, self.params.stuck_s)
        self.standardizer = Standardizer.fit(np.concatenate(raw))
        if not keep:  # only constant channels: their deviation is the whole score
            self.model, self.calibration = None, Calibration(threshold=1.0)
            return self
        self.drift = self._fit_drift(raw, [_seconds(f.index) for f in frames])
        standardized = [Standardizer.fit(values).transform(values) for values in raw]
        if self.method in FORECASTING_METHODS:
            self._fit_forecaster(standardized, on_epoch)
        else:
            self._fit_static(np.concatenate(standardized))
        self.calibration = self._calibrate(standardized)
        return self

    def recalibrate(self, train_frame: pd.DataFrame) -> "AnomalyDetector":
        """A detector sharing this one's model, standardised and thresholded on ``train_frame`` only."""
        self._require_fitted()
        _check_frame(train_frame, self.columns, "recalibration frame")
        clone = copy.copy(self)
        everything = train_frame.to_numpy(dtype=np.float64)
        clone.constant_columns = {
            name: float(everything[:, self.columns.index(name)].mean()) for name in self.constant_columns
        }
        values = everything[:, self._model_column_indices()]
        clone.standardizer = Standardizer.fit(values)
        clone.stuck_limits = stuck_limits([values], [_seconds(train_frame.index)], self.model_columns, self.params.stuck_s)
        clone.drift = clone._fit_drift([values], [_seconds(train_frame.index)]) if self.model_columns else None
        if self.model_columns:
            clone.calibration = clone._calibrate([clone.standardizer.transform(values)])
        return clone

    @property
    def model_columns(self) -> list[str]:
        """The columns the model sees: all but the constant ones."""
        return [c for c in (self.columns or []) if c not in self.constant_columns]

    def _fit_drift(self, raw: list[np.ndarray], times: list[np.ndarray]) -> "DriftModel | None":
        if self.params.drift_s <= 0:
            return None
        return DriftModel.fit([self.standardizer.transform(v) for v in raw], times, window_s=self.params.drift_s, daily=self.params.drift_daily)

    def _standardised(self, df: pd.DataFrame) -> np.ndarray:
        """The model columns of ``df``, standardised as in training."""
        return self.standardizer.transform(df.to_numpy(dtype=np.float64)[:, self._model_column_indices()])

    def _model_column_indices(self) -> list[int]:
        return [i for i, c in enumerate(self.columns) if c not in self.constant_columns]

    def _fit_forecaster(self, frames: list[np.ndarray], on_epoch: Callable[[EpochProgress], None] | None) -> None:
        p = self.params
        inputs, targets = [], []
        for z in frames:
            n_fit = _fit_rows(len(z), p.calibration_fraction)
            x, y = forecast_windows(z[:n_fit], p.seq_len, p.horizon, p.train_stride)
            inputs.append(x)
            targets.append(y)
        x_all, y_all = torch.from_numpy(np.concatenate(inputs)), torch.from_numpy(np.concatenate(targets))
        if len(x_all) == 0:
            raise ValueError(
                f"training frames too short: each needs more than seq_len + horizon = {p.seq_len + p.horizon} rows "
                f"in its first {1 - p.calibration_fraction:.0%}"
            )
        self.model = self._build_forecaster(len(self.model_columns))
        config = TrainConfig(
            epochs=p.epochs, batch_size=p.batch_size, learning_rate=p.learning_rate,
            max_steps_per_epoch=p.max_steps_per_epoch, seed=p.seed,
        )
        self.history = train_model(
            self.model, x_all, y_all, loss_fn=nn.functional.mse_loss, config=config,
            forward=self._forward, on_epoch=on_epoch,
        )

    def _build_forecaster(self, n_channels: int) -> nn.Module:
        p = self.params
        torch.manual_seed(p.seed)
        if self.method == "patchtst":
            from tsai.models.PatchTST import PatchTST

            return PatchTST(
                c_in=n_channels, c_out=n_channels, seq_len=p.seq_len, pred_dim=p.horizon,
                n_layers=p.patchtst_layers, n_heads=4, d_model=p.patchtst_d_model, d_ff=2 * p.patchtst_d_model,
                patch_len=p.patch_len, stride=p.stride, revin=p.revin, dropout=0.1,
            )
        from models.reprogramming import ForecastModel, ReprogrammingTrunk

        if p.llm not in ("backbone", "random", "none"):
            raise ValueError(f"llm must be 'backbone', 'random' or 'none' (got {p.llm!r})")
        if p.llm != "none" and self.backbone is None:
            from models.backbone import load_backbone

            self.backbone = load_backbone(
                p.backbone_source, device=p.device, num_layers=p.num_layers, random_init=p.llm == "random",
                seed=p.seed, quantization=p.quantization,
            )
        trunk = ReprogrammingTrunk(
            self.backbone if p.llm != "none" else None, n_channels=n_channels, seq_len=p.seq_len,
            patch_len=p.patch_len, stride=p.stride, n_prototypes=p.n_prototypes, d_model=p.d_model,
            d_output=p.d_output, channel_mode=p.channel_mode, revin=p.revin, prompt_statistics=p.prompt_statistics,
            task=f"forecast {p.horizon} steps", skip=p.skip,
        )
        model = ForecastModel(trunk, horizon=p.horizon)
        return model.to(self.backbone.device) if trunk.backbone is not None else model

    def _forward(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        if self.method == "reprogram":
            if self.backbone is not None and self.params.llm != "none":
                batch = batch.to(self.backbone.device)
            return model(batch, self.params.domain).to("cpu", torch.float32)
        return model(batch)

    def _fit_static(self, z: np.ndarray) -> None:
        p = self.params
        if self.method == "pca":
            self.model = PcaModel.fit(z, p.pca_variance)
        elif self.method == "isolation_forest":
            self.model = IsolationForestModel.fit(z, p.n_estimators, p.seed)
        else:
            self.model = None  # zscore needs only the standardiser

    # -- calibration and scoring --------------------------------------------------------------
    def _calibrate(self, frames: list[np.ndarray]) -> Calibration:
        p = self.params
        if self.method == "zscore":
            return Calibration(threshold=p.z_threshold)
        if self.method in FORECASTING_METHODS:
            residuals = []
            for z in frames:
                n_fit = _fit_rows(len(z), p.calibration_fraction)
                r = self.forecast_residuals(z)[n_fit:]
                residuals.append(r[np.isfinite(r).all(axis=1)])
            pooled = np.concatenate(residuals)
            if len(pooled) < 10:
                raise ValueError(f"only {len(pooled)} calibration residuals: give a longer training frame")
            residual_model = ResidualModel.fit(pooled)
            raw_scores = [
                _smooth(residual_model.distance(np.nan_to_num(r)), p.smooth)[_first_scored(r):] for r in residuals
            ]
            calibration_scores = np.concatenate(raw_scores)
            return Calibration(threshold=_threshold(calibration_scores, p), residual_model=residual_model)
        raw_scores = [_smooth(self.model.raw_score(z), p.smooth) for z in frames]
        return Calibration(threshold=_threshold(np.concatenate(raw_scores), p))

    @torch.no_grad()
    def forecast_residuals(self, z: np.ndarray) -> np.ndarray:
        """Residual of the one forecast of each step ``[T, C]`` (NaN for the first ``seq_len`` steps)."""
        p = self.params
        residuals = np.full(z.shape, np.nan, dtype=np.float64)
        starts = list(range(p.seq_len, len(z) - p.horizon + 1, p.horizon))
        if starts and starts[-1] + p.horizon < len(z):
            starts.append(len(z) - p.horizon)  # cover the tail with one overlapping window
        if not starts:
            return residuals
        self.model.eval()
        contexts = np.stack([z[s - p.seq_len : s].T for s in starts])
        forecasts = []
        for begin in range(0, len(contexts), 64):
            batch = torch.from_numpy(contexts[begin : begin + 64])
            forecasts.append(self._forward(self.model, batch).numpy())
        forecast = np.concatenate(forecasts)  # [W, C, H]
        for s, f in zip(starts, forecast):
            residuals[s : s + p.horizon] = z[s : s + p.horizon] - f.T
        return residuals

    def raw_scores(self, df: pd.DataFrame) -> np.ndarray:
        """Smoothed scores of the model's columns before division by the threshold (zeros when
        every column is constant)."""
        self._require_fitted()
        _check_frame(df, self.columns, "frame to score")
        if not self.model_columns:
            return np.zeros(len(df))
        z = self._standardised(df)
        if self.method == "zscore":
            raw = np.abs(z).max(axis=1)
        elif self.method in FORECASTING_METHODS:
            residuals = self.forecast_residuals(z)
            raw = self.calibration.residual_model.distance(np.nan_to_num(residuals))
            raw[~np.isfinite(residuals).all(axis=1)] = 0.0  # no forecast yet: no evidence either way
        else:
            raw = self.model.raw_score(z)
        return _smooth(raw, self.params.smooth)

    def constant_scores(self, df: pd.DataFrame) -> np.ndarray:
        """Smoothed largest deviation of a constant channel from its constant, in tolerances (1.0 =
        the threshold); zeros when no channel was constant in training."""
        if not self.constant_columns:
            return np.zeros(len(df))
        names = list(self.constant_columns)
        values = df[names].to_numpy(dtype=np.float64)
        constants = np.array([self.constant_columns[n] for n in names])
        tolerance = self.params.flat_tolerance * np.maximum(np.abs(constants), 1.0)
        return _smooth(np.max(np.abs(values - constants) / tolerance, axis=1), self.params.smooth)

    def stuck_scores(self, df: pd.DataFrame) -> np.ndarray:
        """Largest time a channel has held one value at each step, over its channel's limit (1.0 =
        the threshold); zeros when the check is off."""
        if not self.stuck_limits:
            return np.zeros(len(df))
        names = list(self.stuck_limits)
        held = hold_seconds(df[names].to_numpy(dtype=np.float64), _seconds(df.index))
        return np.max(held / np.array([self.stuck_limits[n] for n in names], dtype=np.float64), axis=1)

    def drift_scores(self, df: pd.DataFrame) -> np.ndarray:
        """Largest trailing-mean residual of a channel from the others' prediction, over its
        training limit times ``drift_margin`` (1.0 = the threshold); zeros when the check is off."""
        if self.drift is None:
            return np.zeros(len(df))
        z = self._standardised(df)
        return self.drift.scores(z, _seconds(df.index)) / self.params.drift_margin

    def drift_residuals(self, df: pd.DataFrame) -> pd.DataFrame | None:
        """Per model column, signed: its trailing-mean residual from the other columns' prediction
        over its training limit (what :meth:`drift_scores` takes the largest absolute value of, before
        ``drift_margin``); NaN in the frame's first ``drift_s`` seconds. None when the check is off.
        Root-cause diagnosis reads it: which sensor left the others' prediction, and which way."""
        if self.drift is None:
            return None
        z = self._standardised(df)
        means = self.drift.trailing_means(z, _seconds(df.index)) / self.drift.limits
        return pd.DataFrame(means, index=df.index, columns=self.model_columns)

    def score(self, df: pd.DataFrame) -> pd.Series:
        scores = self.raw_scores(df) / self.calibration.threshold
        scores = np.maximum(scores, np.maximum(self.constant_scores(df), self.stuck_scores(df)))
        scores = np.maximum(scores, self.drift_scores(df))
        return pd.Series(scores, index=df.index, name="score")

    def predict(self, df: pd.DataFrame) -> pd.Series:
        scores = self.score(df).to_numpy()
        alarms = hysteresis_alarms(scores, release_ratio=self.params.release_ratio, min_duration=self.params.min_duration)
        return pd.Series(alarms, index=df.index, name="anomaly")

    # -- bookkeeping --------------------------------------------------------------------------
    def trainable_parameters(self) -> int:
        if isinstance(self.model, nn.Module):
            return sum(q.numel() for q in self.model.parameters() if q.requires_grad)
        return 0

    def _require_fitted(self) -> None:
        if self.standardizer is None or self.calibration is None:
            raise RuntimeError("AnomalyDetector is not fitted: call fit(train_df) first")

    def save(self, path: str | Path) -> Path:
        """Write ``detector.json`` and ``weights.safetensors`` into the folder ``path``."""
        from safetensors.numpy import save_file

        self._require_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "standardizer.mean": self.standardizer.mean, "standardizer.std": self.standardizer.std,
        }
        if self.calibration.residual_model is not None:
            arrays["residual.scale"] = self.calibration.residual_model.scale
            arrays["residual.precision"] = self.calibration.residual_model.precision
        if isinstance(self.model, nn.Module):
            state = self.model.trunk.trainable_state_dict() if self.method == "reprogram" else self.model.state_dict()
            if self.method == "reprogram":
                state = {f"trunk.{k}": v for k, v in state.items()}
                state.update({f"head.{k}": v for k, v in self.model.head.state_dict().items()})
            arrays.update({f"model.{k}": v.detach().cpu().numpy() for k, v in state.items()})
        elif self.model is not None:
            arrays.update({f"model.{k}": v for k, v in self.model.arrays().items()})
        if self.drift is not None:
            arrays["drift.coefficients"], arrays["drift.limits"] = self.drift.coefficients, self.drift.limits
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(folder / "weights.safetensors"))
        meta = {
            "method": self.method, "params": asdict(self.params), "columns": self.columns,
            "threshold": self.calibration.threshold, "constant_columns": self.constant_columns,
            "stuck_limits": self.stuck_limits, "format": 1,
        }
        (folder / "detector.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, path: str | Path, *, backbone: object | None = None) -> "AnomalyDetector":
        from safetensors.numpy import load_file

        folder = Path(path)
        meta_path = folder / "detector.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{folder} has no detector.json: not a saved AnomalyDetector")
        meta = json.loads(meta_path.read_text())
        arrays = load_file(str(folder / "weights.safetensors"))
        detector = cls(meta["method"], backbone=backbone, **meta["params"])
        detector.columns = list(meta["columns"])
        detector.constant_columns = {str(k): float(v) for k, v in meta.get("constant_columns", {}).items()}
        detector.stuck_limits = {str(k): float(v) for k, v in meta.get("stuck_limits", {}).items()}
        detector.standardizer = Standardizer(arrays["standardizer.mean"], arrays["standardizer.std"])
        residual = None
        if "residual.scale" in arrays:
            residual = ResidualModel(arrays["residual.scale"], arrays["residual.precision"])
        detector.calibration = Calibration(threshold=float(meta["threshold"]), residual_model=residual)
        if "drift.coefficients" in arrays:
            detector.drift = DriftModel(arrays["drift.coefficients"], arrays["drift.limits"], detector.params.drift_s, detector.params.drift_daily)
        model_arrays = {k.removeprefix("model."): v for k, v in arrays.items() if k.startswith("model.")}
        if not detector.model_columns:
            detector.model = None
        elif detector.method in FORECASTING_METHODS:
            detector.model = detector._build_forecaster(len(detector.model_columns))
            tensors = {k: torch.from_numpy(v.copy()) for k, v in model_arrays.items()}
            if detector.method == "reprogram":
                detector.model.trunk.load_trainable_state_dict(
                    {k.removeprefix("trunk."): v for k, v in tensors.items() if k.startswith("trunk.")}
                )
                detector.model.head.load_state_dict({k.removeprefix("head."): v for k, v in tensors.items() if k.startswith("head.")})
            else:
                detector.model.load_state_dict(tensors)
            detector.model.eval()
        elif detector.method == "pca":
            detector.model = PcaModel.from_arrays(model_arrays)
        elif detector.method == "isolation_forest":
            detector.model = IsolationForestModel.from_arrays(model_arrays, detector.params.n_estimators, detector.params.seed)
        return detector


# -- static baselines -----------------------------------------------------------------------------
@dataclass
class PcaModel:
    """Hotelling T² and Q statistics; the score is the larger of the two over its training 99 % level."""

    components: np.ndarray  # [k, C]
    eigenvalues: np.ndarray  # [k]
    t2_level: float
    q_level: float

    @classmethod
    def fit(cls, z: np.ndarray, variance: float) -> "PcaModel":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=variance, svd_solver="full").fit(z)
        model = cls(pca.components_, pca.explained_variance_, 1.0, 1.0)
        t2, q = model.statistics(z)
        model.t2_level, model.q_level = float(np.quantile(t2, 0.99)), float(max(np.quantile(q, 0.99), 1e-9))
        return model

    def statistics(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = z @ self.components.T  # data is standardised, so its training mean is ~0
        t2 = np.sum(scores**2 / self.eigenvalues, axis=1)
        q = np.sum((z - scores @ self.components) ** 2, axis=1)
        return t2, q

    def raw_score(self, z: np.ndarray) -> np.ndarray:
        t2, q = self.statistics(z)
        return np.maximum(t2 / self.t2_level, q / self.q_level)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "components": self.components, "eigenvalues": self.eigenvalues,
            "levels": np.array([self.t2_level, self.q_level]),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "PcaModel":
        levels = arrays["levels"]
        return cls(arrays["components"], arrays["eigenvalues"], float(levels[0]), float(levels[1]))


@dataclass
class IsolationForestModel:
    """scikit-learn IsolationForest; saved as its (small) training set + seed, refitted on load.

    Refitting with the same data and ``random_state`` rebuilds identical trees, which avoids pickle.
    """

    training: np.ndarray
    forest: object
    typical: float = 0.0

    @classmethod
    def fit(cls, z: np.ndarray, n_estimators: int, seed: int) -> "IsolationForestModel":
        from sklearn.ensemble import IsolationForest

        forest = IsolationForest(n_estimators=n_estimators, random_state=seed).fit(z)
        model = cls(training=z, forest=forest)
        model.typical = float(np.median(model.raw_score(z)))
        return model

    def raw_score(self, z: np.ndarray) -> np.ndarray:
        # Excess isolation over the typical training point, so "margin * quantile" scales the excess
        # (the raw IF score sits near 0.5 for every point and a margin would push it out of range).
        return -self.forest.score_samples(z) - self.typical

    def arrays(self) -> dict[str, np.ndarray]:
        return {"training": self.training}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], n_estimators: int, seed: int) -> "IsolationForestModel":
        return cls.fit(arrays["training"], n_estimators, seed)


@dataclass
class DriftModel:
    """Each channel predicted from the others (linear and squared terms, ridge), its residual
    averaged over a trailing window in seconds, against the largest such mean in training."""

    coefficients: np.ndarray  # [C, 2 (C - 1) (+ 4 daily) + 1]: others, their squares, (time of day,) intercept
    limits: np.ndarray  # [C]: largest |trailing mean residual| in training
    window_s: float
    daily: bool = False

    @classmethod
    def fit(cls, frames: Sequence[np.ndarray], times: Sequence[np.ndarray], *, window_s: float, daily: bool = False) -> "DriftModel":
        from sklearn.linear_model import Ridge

        z, t = np.concatenate(frames), np.concatenate(times)
        n_channels = z.shape[1]
        coefficients = np.zeros((n_channels, 2 * (n_channels - 1) + (4 if daily else 0) + 1))
        for c in range(n_channels):
            features = _drift_features(z, c, t if daily else None)
            if features.shape[1]:
                ridge = Ridge(alpha=1.0).fit(features, z[:, c])
                coefficients[c, :-1], coefficients[c, -1] = ridge.coef_, ridge.intercept_
            else:  # one channel: its drift is from its own training mean
                coefficients[c, -1] = float(z[:, c].mean())
        model = cls(coefficients, np.ones(n_channels), window_s, daily)
        means = [model.trailing_means(f, t) for f, t in zip(frames, times, strict=True)]
        means = np.concatenate([m[np.isfinite(m).all(axis=1)] for m in means])
        if len(means) == 0:
            longest = max((float(t[-1] - t[0]) for t in times if len(t)), default=0.0)
            raise ValueError(f"drift_s = {window_s:g} s needs a training stretch at least that long; the longest is {longest:.0f} s")
        model.limits = np.maximum(np.abs(means).max(axis=0), 1e-6)
        return model

    def residuals(self, z: np.ndarray, times_s: np.ndarray) -> np.ndarray:
        out = np.empty_like(z, dtype=np.float64)
        for c in range(z.shape[1]):
            features = _drift_features(z, c, times_s if self.daily else None)
            out[:, c] = z[:, c] - features @ self.coefficients[c, :-1] - self.coefficients[c, -1]
        return out

    def trailing_means(self, z: np.ndarray, times_s: np.ndarray) -> np.ndarray:
        """``[T, C]`` mean residual over ``(t - window_s, t]``; NaN where the frame does not reach
        that far back (its first ``window_s`` seconds)."""
        residuals = self.residuals(z, times_s)
        sums = np.vstack([np.zeros((1, z.shape[1])), np.cumsum(residuals, axis=0)])
        end = np.arange(1, len(z) + 1)
        begin = np.searchsorted(times_s, times_s - self.window_s, side="right")
        means = (sums[end] - sums[begin]) / (end - begin)[:, None]
        means[times_s - (times_s[0] if len(times_s) else 0.0) < self.window_s] = np.nan
        return means

    def scores(self, z: np.ndarray, times_s: np.ndarray) -> np.ndarray:
        if len(z) == 0:
            return np.zeros(0)
        return np.nan_to_num(np.max(np.abs(self.trailing_means(z, times_s)) / self.limits, axis=1), nan=0.0)


def _drift_features(z: np.ndarray, channel: int, times_s: np.ndarray | None = None) -> np.ndarray:
    """The other channels, their squares and, with ``times_s``, the first two harmonics of the day."""
    others = np.delete(z, channel, axis=1).astype(np.float64)
    parts = [others, others**2]
    if times_s is not None:
        day = 2 * np.pi * (np.asarray(times_s, dtype=np.float64) % 86400.0) / 86400.0
        parts.append(np.column_stack([np.sin(day), np.cos(day), np.sin(2 * day), np.cos(2 * day)]))
    return np.hstack(parts)


# -- helpers --------------------------------------------------------------------------------------
def forecast_windows(z: np.ndarray, seq_len: int, horizon: int, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Sliding (context, target) pairs: ``[N, C, seq_len]`` and ``[N, C, horizon]`` float32."""
    starts = range(seq_len, len(z) - horizon + 1, step)
    if len(starts) == 0:
        channels = z.shape[1]
        return np.zeros((0, channels, seq_len), np.float32), np.zeros((0, channels, horizon), np.float32)
    x = np.stack([z[s - seq_len : s].T for s in starts]).astype(np.float32)
    y = np.stack([z[s : s + horizon].T for s in starts]).astype(np.float32)
    return x, y


def hysteresis_alarms(scores: np.ndarray, *, release_ratio: float, min_duration: int) -> np.ndarray:
    """Alarm after ``min_duration`` steps >= 1, clear after ``min_duration`` steps < ``release_ratio``.

    Causal: the alarm starts at the step that confirms it (no back-filling of the run).
    """
    alarms = np.zeros(len(scores), dtype=bool)
    active, above, below = False, 0, 0
    for t, value in enumerate(scores):
        if not active:
            above = above + 1 if value >= 1.0 else 0
            if above >= min_duration:
                active, below = True, 0
        else:
            below = below + 1 if value < release_ratio else 0
            if below >= min_duration:
                active, above = False, 0
        alarms[t] = active
    return alarms


def constant_channels(values: np.ndarray, columns: Sequence[str], tolerance: float) -> dict[str, float]:
    """Columns whose spread (max - min) is within ``tolerance * max(|mean|, 1)``: name -> mean."""
    means = values.mean(axis=0)
    spread = values.max(axis=0) - values.min(axis=0)
    flat = spread <= tolerance * np.maximum(np.abs(means), 1.0)
    return {str(columns[i]): float(means[i]) for i in np.flatnonzero(flat)}


def hold_seconds(values: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """``[T, C]``: seconds since each channel's value last changed (0 at a change and at the frame's
    first row, which knows no earlier value)."""
    if len(values) == 0:
        return np.zeros(values.shape, dtype=np.float64)
    steps = np.arange(len(values))[:, None]
    changed = np.vstack([np.ones((1, values.shape[1]), dtype=bool), values[1:] != values[:-1]])
    last_change = np.maximum.accumulate(np.where(changed, steps, 0), axis=0)
    return times_s[:, None] - times_s[last_change]


def stuck_limits(frames: Sequence[np.ndarray], times: Sequence[np.ndarray], columns: Sequence[str], stuck_s: float) -> dict[str, float]:
    """Per channel: ``max(stuck_s, 2 x its longest hold of one value in training)`` seconds."""
    if stuck_s <= 0 or not columns:
        return {}
    longest = np.max([hold_seconds(v, t).max(axis=0) for v, t in zip(frames, times, strict=True) if len(v)], axis=0)
    return {str(c): float(max(stuck_s, 2 * held)) for c, held in zip(columns, longest, strict=True)}


def _seconds(index: pd.DatetimeIndex) -> np.ndarray:
    """Epoch seconds of a DatetimeIndex, whatever its resolution."""
    return index.as_unit("ns").asi8.astype(np.float64) / 1e9


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1:
        return np.asarray(values, dtype=np.float64)
    return pd.Series(values).rolling(window, min_periods=1).mean().to_numpy()


def _threshold(scores: np.ndarray, p: DetectorParams) -> float:
    finite = scores[np.isfinite(scores)]
    if len(finite) == 0:
        raise ValueError("no finite calibration scores")
    return float(max(p.margin * np.quantile(finite, p.quantile), 1e-9))


def _fit_rows(n_rows: int, calibration_fraction: float) -> int:
    return int(math.floor(n_rows * (1.0 - calibration_fraction)))


def _first_scored(residuals: np.ndarray) -> int:
    finite = np.isfinite(residuals).all(axis=1)
    return int(np.argmax(finite)) if finite.any() else len(residuals)


def _check_frame(df: pd.DataFrame, columns: list[str] | None, what: str) -> list[str]:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    if not isinstance(df.index, pd.DatetimeIndex):
        raise TypeError(f"{what}: expected a DatetimeIndex, got {type(df.index).__name__}")
    non_numeric = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        raise TypeError(f"{what}: columns {non_numeric} are not numeric (one numeric column per sensor)")
    if df.isna().any().any():
        bad = df.columns[df.isna().any()].tolist()
        raise ValueError(f"{what}: columns {bad} contain NaN; fill or drop them first")
    if columns is not None and list(df.columns) != columns:
        raise ValueError(f"{what}: columns {list(df.columns)} differ from the training columns {columns}")
    return [str(c) for c in df.columns]
