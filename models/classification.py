"""Fault classification of vibration (or any multichannel) waveforms: ``FaultClassifier``.

Contract (DESIGN.md): ``FaultClassifier(method=..., **params).fit(X, y).predict(X)`` and
``.predict_proba(X)`` with ``X`` float32 ``[n, channels, length]`` and string labels;
``classes_`` lists the labels in ``predict_proba`` column order; ``save(path)``/``load(path)``
write a folder with ``config.json`` and ``weights.safetensors`` (no pickle).

Methods
-------
``features``       time-domain + spectrum-band + envelope-spectrum features (``models.features``)
                   and LightGBM gradient boosting. The booster is stored as LightGBM's own text
                   model format inside ``config.json`` (``model_to_string`` / ``model_str=``),
                   which is plain text, not pickle.
``inceptiontime``  tsai ``InceptionTime`` (Fawaz et al. 2020).
``resnet``         tsai ``ResNet`` (Wang et al. 2017), the strongest plain CNN of the UCR study.
``wdcnn``          wide-first-kernel 1-D CNN on raw windows (``models.wdcnn``, Zhang et al. 2017); cheap
                   enough on this CPU to train on the waveform (or its envelope, ``representation=
                   "envelope"``) with per-window normalisation and an ensemble of seeds (``n_models``).
``reprogram``      classification head on the Time-LLM reprogramming trunk (``models.reprogramming``).

Shared behaviour
----------------
* **Windowing**: with ``window_length`` set, each example longer than that is cut into windows
  (``window_stride`` apart); every window is a training sample with the example's label, and
  at prediction the window probabilities of an example are averaged. Calibration examples are
  held out *by example*, so overlapping windows never sit on both sides of that split.
* **Defaults** (``METHOD_DEFAULTS``): what the caller leaves out, the method fills in.
  ``FaultClassifier("inceptiontime")`` is ``VIBRATION_DEFAULTS`` (2048-sample windows, stride
  1024, spectrum input, 15 epochs, batch 32); ``resnet``, ``wdcnn`` and ``reprogram`` get the
  same windows and keep their own training settings; ``features`` takes whole examples. A
  default window applies only to examples longer than it (shorter ones are one input each); an
  explicit ``window_length`` (``None`` included: no windowing) always wins.
* **Class weights**: ``class_weight="balanced"`` weighs each class by n / (k * n_class), so a
  rare fault costs as much in the loss as a common one.
* **Calibration**: temperature scaling (Guo et al. 2017) fitted on a held-out
  ``calibration_fraction`` of the training examples; the temperature is one float in the file.
* **Input representation** for the neural methods: ``"spectrum"`` (default; log power spectrum
  and envelope spectrum per channel, see ``models.features.spectral_representation``),
  ``"waveform"`` (raw samples scaled by the training RMS; the default of ``wdcnn``) or
  ``"envelope"`` (band-passed Hilbert envelope, ``models.features.envelope_waveform``). Raw 2048-sample windows cost about a
  second per window per epoch on the 2-core development CPU, which rules them out for the
  15-minute training budget; the spectra are 8x shorter.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy_file
from safetensors.numpy import save_file as save_numpy_file
from scipy.optimize import minimize_scalar
from sklearn.model_selection import train_test_split

from models.features import FeatureConfig, envelope_waveform, signal_features, spectral_representation

ProgressCallback = Callable[[dict[str, float]], None]
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
METHODS = ("features", "inceptiontime", "resnet", "wdcnn", "reprogram")
# Defaults for vibration captures: what the README's CWRU table reports (``python -m models.evaluate
# cwru``) and what the product's classifier versions start from (phm.condition.classifier). Chosen on
# CWRU 1797 -> 1772 rpm only; 1772 -> 1797 rpm was not looked at before they were fixed. Pass the
# captures' speeds (``speed_rpm=``) to fit and predict: order tracking is what makes them transfer.
VIBRATION_DEFAULTS: dict[str, Any] = {
    "method": "inceptiontime", "window_length": 2048, "window_stride": 1024,
    "representation": "spectrum", "epochs": 15, "batch_size": 32,
}
# What ``FaultClassifier(method)`` fills in for what the caller leaves out (issue 17: the bare
# constructor used to see a whole 1 s capture as one example, train 20 epochs at batch 64, and
# score 0.31 per capture across loads). Windowing applies to every neural method -- a window is
# the unit they were built and measured on; the training settings of VIBRATION_DEFAULTS only to
# the method they were measured with (inceptiontime). ``features`` keeps whole examples: its
# features are computed per example and it was never measured windowed by default.
_WINDOW_DEFAULTS: dict[str, Any] = {k: VIBRATION_DEFAULTS[k] for k in ("window_length", "window_stride")}
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "features": {},
    "inceptiontime": {k: v for k, v in VIBRATION_DEFAULTS.items() if k != "method"},
    "resnet": dict(_WINDOW_DEFAULTS),
    "wdcnn": dict(_WINDOW_DEFAULTS),
    "reprogram": dict(_WINDOW_DEFAULTS),
}
# Marks "not given" apart from an explicit None (None = no windowing: one example is one input).
_UNSET: Any = object()
# Temperature bounds: when the calibration examples are all classified correctly the NLL keeps
# falling as T -> 0, which would make every later mistake maximally confident; never sharpen
# logits by more than 2x, and never flatten them by more than 20x.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.5, 20.0


# --------------------------------------------------------------------------------------------
# Input checks and windowing
# --------------------------------------------------------------------------------------------


def check_waveforms(X: np.ndarray, *, name: str = "X") -> np.ndarray:
    """Validate ``[n, channels, length]`` finite numbers and return them as float32."""
    array = np.asarray(X)
    if array.ndim != 3:
        raise ValueError(f"{name} must have shape [n, channels, length], got {array.shape}")
    if min(array.shape) == 0:
        raise ValueError(f"{name} is empty along some axis: shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)
    bad = ~np.isfinite(array)
    if bad.any():
        example = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{name} holds NaN or inf (first in example {example})")
    return array


def sliding_windows(X: np.ndarray, *, length: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``[n, c, L]`` into ``[m, c, length]`` windows; also returns each window's example index.

    The last window is aligned to the end of the example so no tail is dropped.
    """
    if length < 1 or stride < 1:
        raise ValueError(f"window length and stride must be >= 1, got {length} and {stride}")
    n, channels, total = X.shape
    if total < length:
        raise ValueError(f"examples have {total} samples, shorter than window_length={length}")
    starts = list(range(0, total - length + 1, stride))
    if starts[-1] != total - length:
        starts.append(total - length)
    view = np.lib.stride_tricks.sliding_window_view(X, length, axis=2)[:, :, starts, :]  # [n, c, w, length]
    windows = np.ascontiguousarray(view.transpose(0, 2, 1, 3)).reshape(-1, channels, length)
    owners = np.repeat(np.arange(n), len(starts))
    return windows, owners


def balanced_class_weights(targets: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
    weights = np.zeros(n_classes)
    present = counts > 0
    weights[present] = len(targets) / (present.sum() * counts[present])
    return weights


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood of held-out logits (Guo et al. 2017)."""
    logits = logits.astype(np.float64)

    def nll(log_temperature: float) -> float:
        scaled = logits / math.exp(log_temperature)
        scaled -= scaled.max(axis=1, keepdims=True)
        log_probabilities = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
        return float(-log_probabilities[np.arange(len(targets)), targets].mean())

    result = minimize_scalar(nll, bounds=(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)), method="bounded")
    return float(math.exp(result.x))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def _per_example(values: float | Sequence[float] | np.ndarray | None, n: int, name: str) -> np.ndarray | None:
    """One positive finite float per example (a scalar applies to all), or None."""
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        array = np.full(n, float(array))
    if array.shape != (n,):
        raise ValueError(f"{name} must be one number or one per example ({n}), got shape {array.shape}")
    bad = ~(np.isfinite(array) & (array > 0))
    if bad.any():
        raise ValueError(f"{name} must be positive and finite; example {int(np.argmax(bad))} has {array[bad][0]}")
    return array


def order_resample(example: np.ndarray, factor: float) -> np.ndarray:
    """``[c, L]`` -> ``[c, round(L * factor)]`` by Fourier resampling (``factor`` 1 leaves it alone)."""
    if abs(factor - 1.0) < 1e-9:
        return example
    from scipy.signal import resample

    return resample(example.astype(np.float64), int(round(example.shape[-1] * factor)), axis=-1).astype(np.float32)


def _take(X: np.ndarray | list[np.ndarray], index: np.ndarray) -> np.ndarray | list[np.ndarray]:
    return [X[i] for i in index] if isinstance(X, list) else X[index]


# --------------------------------------------------------------------------------------------
# Torch training shared by the neural methods
# --------------------------------------------------------------------------------------------


@dataclass
class TrainingSettings:
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 0
    # Stop at an epoch boundary once the next epoch would end past this many seconds.
    time_budget_s: float | None = None
    # Cap on batches per epoch (drawn from a fresh shuffle each epoch): bounds CPU time on big sets.
    max_steps_per_epoch: int | None = None
    # One thread: on the shared 2-core machine two threads ran 3-7x *slower* per batch (measured
    # 00:05 UTC, load average 13) because they fight other processes for the same cores.
    num_threads: int = 1


@dataclass
class TrainingLog:
    epochs_run: int = 0
    best_epoch: int = 0
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def train_network(
    network: torch.nn.Module,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    loss_fn: torch.nn.Module,
    validation: tuple[np.ndarray, np.ndarray] | None,
    settings: TrainingSettings,
    progress: ProgressCallback | None = None,
    target_dtype: torch.dtype = torch.long,
) -> TrainingLog:
    """Seeded mini-batch AdamW, warm-up + cosine schedule; keeps the weights of the best validation epoch.

    Only parameters with ``requires_grad`` are optimised, so a frozen backbone stays frozen. With
    ``time_budget_s`` the first epoch's duration decides how many epochs fit and the schedule is
    shortened to match (so the epoch count then depends on the machine's speed); without it,
    training is fully determined by the seed.
    ``models.training.train_model`` (issue 4) is the shared loop; this one exists because the
    estimators here need an explicit held-out set (calibration examples chosen by example, not
    the tail of the array), per-class loss weights and the time budget.
    """
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.num_threads)
    generator = torch.Generator().manual_seed(settings.seed)
    x_all = torch.from_numpy(inputs)
    y_all = torch.as_tensor(targets, dtype=target_dtype)
    trainable = [p for p in network.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the network has no trainable parameters")
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(x_all) / settings.batch_size))
    if settings.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, settings.max_steps_per_epoch)
    # Warm-up then cosine decay over the planned steps. The plan is a mutable dict because a time
    # budget may shorten it after the first epoch, so the rate still anneals before training stops.
    plan = {"epochs": settings.epochs, "total_steps": settings.epochs * steps_per_epoch}
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _learning_rate_factor(step, plan["total_steps"]))
    log = TrainingLog()
    best_loss, best_state = math.inf, None
    started = time.perf_counter()
    epoch = 0
    while epoch < plan["epochs"]:
        epoch += 1
        network.train()
        order = torch.randperm(len(x_all), generator=generator)[: steps_per_epoch * settings.batch_size]
        total_loss, seen = 0.0, 0
        for batch in order.split(settings.batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(network(x_all[batch]), y_all[batch])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 5.0)
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(batch)
            seen += len(batch)
        train_loss = total_loss / seen
        validation_loss = _evaluate_loss(network, loss_fn, validation, target_dtype) if validation else train_loss
        if validation_loss < best_loss:
            best_loss, log.best_epoch = validation_loss, epoch
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        elapsed = time.perf_counter() - started
        per_epoch = elapsed / epoch
        if epoch == 1 and settings.time_budget_s is not None:
            affordable = max(1, int(settings.time_budget_s // per_epoch))
            if affordable < plan["epochs"]:
                plan.update(epochs=affordable, total_steps=affordable * steps_per_epoch)
        record = {
            "epoch": float(epoch),
            "epochs": float(plan["epochs"]),
            "loss": train_loss,
            "validation_loss": validation_loss,
            "elapsed_s": elapsed,
            "eta_s": per_epoch * (plan["epochs"] - epoch),
        }
        log.history.append(record)
        log.epochs_run = epoch
        if progress is not None:
            progress(record)
        if settings.time_budget_s is not None and elapsed + per_epoch > settings.time_budget_s:
            break
    log.seconds = time.perf_counter() - started
    if best_state is not None:
        network.load_state_dict(best_state)
    network.eval()
    return log


def combined_log(logs: list[TrainingLog]) -> TrainingLog:
    """One log for several trainings run one after the other (ensemble members)."""
    if len(logs) == 1:
        return logs[0]
    return TrainingLog(
        epochs_run=sum(log.epochs_run for log in logs), best_epoch=logs[-1].best_epoch,
        seconds=sum(log.seconds for log in logs), history=[record for log in logs for record in log.history],
    )


def _learning_rate_factor(step: int, total_steps: int, warmup_share: float = 0.2) -> float:
    """Linear warm-up from 1/25 of the peak rate, then cosine decay to ~0 at ``total_steps``."""
    progress = min(step / max(total_steps, 1), 1.0)
    if progress < warmup_share:
        return 0.04 + 0.96 * progress / warmup_share
    return 1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * (progress - warmup_share) / (1 - warmup_share)))


@torch.no_grad()
def _evaluate_loss(
    network: torch.nn.Module, loss_fn: torch.nn.Module, data: tuple[np.ndarray, np.ndarray], target_dtype: torch.dtype
) -> float:
    network.eval()
    inputs, targets = data
    total = 0.0
    for start in range(0, len(inputs), 256):
        x = torch.from_numpy(inputs[start : start + 256])
        y = torch.as_tensor(targets[start : start + 256], dtype=target_dtype)
        total += loss_fn(network(x), y).item() * len(x)
    return total / len(inputs)


@torch.no_grad()
def network_outputs(network: torch.nn.Module, inputs: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    network.eval()
    outputs = [network(torch.from_numpy(inputs[s : s + batch_size])).float().numpy() for s in range(0, len(inputs), batch_size)]
    return np.concatenate(outputs)


def count_parameters(network: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, including a frozen backbone the network holds outside
    its module tree (the reprogramming trunk keeps it as a plain attribute)."""
    total = sum(p.numel() for p in network.parameters())
    trainable = sum(p.numel() for p in network.parameters() if p.requires_grad)
    backbone = getattr(getattr(network, "trunk", None), "backbone", None)
    if backbone is not None:
        total += backbone.num_parameters()
        trainable += sum(p.numel() for p in backbone.trainable_parameters())
    return trainable, total


def persisted_state(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Weights worth writing: a network may expose ``persisted_state()`` to leave out a frozen backbone."""
    getter = getattr(network, "persisted_state", None)
    return getter() if callable(getter) else network.state_dict()


def load_persisted_state(network: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    loader = getattr(network, "load_persisted_state", None)
    if callable(loader):
        loader(state)
    else:
        network.load_state_dict(state)


class MeanEnsemble(torch.nn.Module):
    """Members trained separately (seeds differ); the output is their mean."""

    def __init__(self, members: list[torch.nn.Module]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(dim=0)

    def persisted_state(self) -> dict[str, torch.Tensor]:
        return {f"{i}.{k}": v for i, member in enumerate(self.members) for k, v in persisted_state(member).items()}

    def load_persisted_state(self, state: dict[str, torch.Tensor]) -> None:
        for i, member in enumerate(self.members):
            load_persisted_state(member, {k.removeprefix(f"{i}."): v for k, v in state.items() if k.startswith(f"{i}.")})

    def parameter_counts(self) -> tuple[int, int]:
        """Trainable parameters of all members; a frozen backbone they share counts once."""
        counts = [count_parameters(member) for member in self.members]
        trainable = sum(t for t, _ in counts)
        return trainable, trainable + counts[0][1] - counts[0][0]


# --------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------


class _Method:
    """One way of turning windows into class logits. Subclasses register under ``name``."""

    name: ClassVar[str]
    registry: ClassVar[dict[str, type[_Method]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "name", None):
            _Method.registry[cls.name] = cls

    def __init__(self, feature_config: FeatureConfig, params: dict[str, Any]) -> None:
        self.feature_config = feature_config
        self.params = params
        self.training_log = TrainingLog()

    def fit(
        self,
        windows: np.ndarray,
        targets: np.ndarray,
        class_weights: np.ndarray,
        validation: tuple[np.ndarray, np.ndarray] | None,
        n_classes: int,
        progress: ProgressCallback | None,
    ) -> None:
        """Train on windows with integer targets; ``class_weights[k]`` weighs class k in the loss."""
        raise NotImplementedError

    def logits(self, windows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def parameter_counts(self) -> tuple[int, int]:
        raise NotImplementedError

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays for safetensors and JSON-able extras needed by :meth:`restore`."""
        raise NotImplementedError

    def restore(self, arrays: dict[str, np.ndarray], extras: dict[str, Any], n_channels: int, n_classes: int, window_length: int) -> None:
        raise NotImplementedError


class FeatureBoostingMethod(_Method):
    """Hand-crafted features + LightGBM (multiclass softmax objective, raw scores are the logits)."""

    name = "features"
    defaults: ClassVar[dict[str, Any]] = {
        "n_estimators": 400, "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 10, "early_stopping_rounds": 40,
    }

    def fit(self, windows, targets, class_weights, validation, n_classes, progress):  # type: ignore[override]
        import lightgbm

        settings = {**self.defaults, **self.params}
        started = time.perf_counter()
        train_set = lightgbm.Dataset(signal_features(windows, self.feature_config), label=targets, weight=class_weights[targets])
        valid_sets, callbacks = [], []
        if validation is not None:
            valid_inputs, valid_targets = validation
            valid_sets = [lightgbm.Dataset(signal_features(valid_inputs, self.feature_config), label=valid_targets, reference=train_set)]
            callbacks.append(lightgbm.early_stopping(settings["early_stopping_rounds"], verbose=False))
        self.booster = lightgbm.train(
            {
                "objective": "multiclass",
                "num_class": n_classes,
                "learning_rate": settings["learning_rate"],
                "num_leaves": settings["num_leaves"],
                "min_child_samples": settings["min_child_samples"],
                "seed": int(self.params.get("seed", 0)),
                "deterministic": True,
                "num_threads": 1,
                "verbose": -1,
            },
            train_set,
            num_boost_round=settings["n_estimators"],
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        rounds = self.booster.current_iteration()
        self.training_log = TrainingLog(epochs_run=rounds, best_epoch=self.booster.best_iteration or rounds, seconds=time.perf_counter() - started)

    def logits(self, windows):  # type: ignore[override]
        features = signal_features(windows, self.feature_config)
        scores = self.booster.predict(features, raw_score=True, num_iteration=self.booster.best_iteration or None)
        return np.asarray(scores, dtype=np.float64)

    def parameter_counts(self) -> tuple[int, int]:
        nodes = sum(tree["num_leaves"] * 2 - 1 for tree in self.booster.dump_model()["tree_info"])
        return nodes, nodes

    def state(self):  # type: ignore[override]
        return {}, {"booster": self.booster.model_to_string()}

    def restore(self, arrays, extras, n_channels, n_classes, window_length):  # type: ignore[override]
        import lightgbm

        self.booster = lightgbm.Booster(model_str=extras["booster"])


class _NeuralMethod(_Method):
    """Neural methods: a torch network over the chosen input representation, weighted cross-entropy."""

    def build(self, n_inputs: int, n_classes: int, input_length: int) -> torch.nn.Module:
        raise NotImplementedError

    def representation(self, windows: np.ndarray) -> np.ndarray:
        kind = self.params.get("representation", "spectrum")
        if kind == "spectrum":
            return spectral_representation(windows, self.feature_config, n_bins=int(self.params.get("spectrum_bins", 128)))
        if kind == "waveform":
            return windows.astype(np.float32, copy=False)
        if kind == "envelope":
            return envelope_waveform(windows, self.feature_config)
        raise ValueError(f"representation must be 'spectrum', 'waveform' or 'envelope', got {kind!r}")

    def _standardise(self, inputs: np.ndarray) -> np.ndarray:
        return ((inputs - self.input_mean) / self.input_scale).astype(np.float32)

    def fit(self, windows, targets, class_weights, validation, n_classes, progress):  # type: ignore[override]
        inputs = self.representation(windows)
        # One mean/scale per input channel: keeps relative level differences between windows
        # (fault severity shows in level), unlike per-window normalisation.
        self.input_mean = inputs.mean(axis=(0, 2), keepdims=True)[0].astype(np.float32)
        self.input_scale = (inputs.std(axis=(0, 2), keepdims=True)[0] + 1e-6).astype(np.float32)
        inputs = self._standardise(inputs)
        valid = None
        if validation is not None:
            valid = (self._standardise(self.representation(validation[0])), validation[1])
        loss_fn = torch.nn.CrossEntropyLoss(weight=torch.as_tensor(class_weights, dtype=torch.float32))
        # ``n_models`` > 1: an ensemble across seeds (members differ only in initialisation and
        # batch order); their logits are averaged. Worth it where one network's errors on a
        # shifted domain depend on its seed (CWRU cross-load).
        members, logs = [], []
        for member_seed in self._member_seeds():
            self.params = {**self.params, "seed": member_seed}
            members.append(self.build(inputs.shape[1], n_classes, inputs.shape[2]))
            settings = TrainingSettings(**{k: v for k, v in self.params.items() if k in TrainingSettings.__dataclass_fields__})
            logs.append(train_network(members[-1], inputs, targets, loss_fn=loss_fn, validation=valid, settings=settings, progress=progress))
        self.params = {**self.params, "seed": self._member_seeds()[0]}
        self.network = members[0] if len(members) == 1 else MeanEnsemble(members)
        self.training_log = combined_log(logs)

    def _member_seeds(self) -> list[int]:
        first = int(self.params.get("base_seed", self.params.get("seed", 0)))
        self.params.setdefault("base_seed", first)
        return [first + i for i in range(int(self.params.get("n_models", 1)))]

    def logits(self, windows):  # type: ignore[override]
        return network_outputs(self.network, self._standardise(self.representation(windows))).astype(np.float64)

    def parameter_counts(self) -> tuple[int, int]:
        if isinstance(self.network, MeanEnsemble):
            return self.network.parameter_counts()
        return count_parameters(self.network)

    def state(self):  # type: ignore[override]
        arrays = {f"network.{k}": v.detach().cpu().numpy() for k, v in persisted_state(self.network).items()}
        arrays["input_mean"], arrays["input_scale"] = self.input_mean, self.input_scale
        return arrays, {}

    def restore(self, arrays, extras, n_channels, n_classes, window_length):  # type: ignore[override]
        self.input_mean, self.input_scale = arrays["input_mean"], arrays["input_scale"]
        probe = self.representation(np.zeros((1, n_channels, window_length), dtype=np.float32))
        members = []
        for member_seed in self._member_seeds():
            self.params = {**self.params, "seed": member_seed}
            members.append(self.build(probe.shape[1], n_classes, probe.shape[2]))
        self.network = members[0] if len(members) == 1 else MeanEnsemble(members)
        state = {k.removeprefix("network."): torch.from_numpy(v.copy()) for k, v in arrays.items() if k.startswith("network.")}
        load_persisted_state(self.network, state)
        self.network.eval()


class InceptionTimeMethod(_NeuralMethod):
    name = "inceptiontime"

    def build(self, n_inputs, n_classes, input_length):  # type: ignore[override]
        from tsai.models.InceptionTime import InceptionTime

        torch.manual_seed(int(self.params.get("seed", 0)))
        return InceptionTime(n_inputs, n_classes, seq_len=input_length, nf=int(self.params.get("nf", 16)))


class ResNetMethod(_NeuralMethod):
    name = "resnet"

    def build(self, n_inputs, n_classes, input_length):  # type: ignore[override]
        from tsai.models.ResNet import ResNet

        torch.manual_seed(int(self.params.get("seed", 0)))
        return ResNet(n_inputs, n_classes)


class WDCNNMethod(_NeuralMethod):
    """Wide-first-kernel 1-D CNN on raw windows (``models.wdcnn``); the default input is the waveform."""

    name = "wdcnn"

    def representation(self, windows):  # type: ignore[override]
        if "representation" not in self.params:
            return windows.astype(np.float32, copy=False)
        return super().representation(windows)

    def build(self, n_inputs, n_classes, input_length):  # type: ignore[override]
        from models.wdcnn import WDCNN

        torch.manual_seed(int(self.params.get("seed", 0)))
        return WDCNN(
            n_inputs, n_classes,
            per_window_norm=bool(self.params.get("per_window_norm", True)),
            noise_std=float(self.params.get("noise_std", 0.0)),
            scale_jitter=float(self.params.get("scale_jitter", 0.0)),
            spectral_jitter_db=float(self.params.get("spectral_jitter_db", 0.0)),
            dropout=float(self.params.get("dropout", 0.3)),
        )


class ReprogramMethod(_NeuralMethod):
    """Classification head on the reprogramming trunk; options in ``models.heads``."""

    name = "reprogram"

    def build(self, n_inputs, n_classes, input_length):  # type: ignore[override]
        from models.heads import build_reprogram_classifier

        return build_reprogram_classifier(n_channels=n_inputs, seq_len=input_length, n_classes=n_classes, params=self.params)


# Keyword parameters each method reads (beyond FaultClassifier's named arguments), so a caller can
# refuse a misspelt one ("epoch") instead of training silently without it. ``reprogram`` passes
# its parameters on to models.heads, so it is not checked here.
_NEURAL_PARAMS = frozenset(TrainingSettings.__dataclass_fields__) | {"representation", "spectrum_bins", "n_models", "base_seed", "nf"}
METHOD_PARAMS: dict[str, frozenset[str]] = {
    "features": frozenset(FeatureBoostingMethod.defaults) | {"level_features", "spectrum_features"},
    "inceptiontime": _NEURAL_PARAMS,
    "resnet": _NEURAL_PARAMS,
    "wdcnn": _NEURAL_PARAMS | {"per_window_norm", "noise_std", "scale_jitter", "spectral_jitter_db", "dropout"},
}
_NAMED_ARGUMENTS = frozenset({
    "method", "window_length", "window_stride", "sampling_rate", "shaft_hz", "reference_rpm", "fault_orders", "class_weight",
    "calibrate", "calibration_fraction", "seed", "progress",
})


def unknown_params(method: str, params: dict[str, Any]) -> list[str]:
    """Keys of ``params`` that ``FaultClassifier(method, **params)`` would ignore (none for ``reprogram``)."""
    known = METHOD_PARAMS.get(method)
    if known is None:
        return []
    return sorted(set(params) - known - _NAMED_ARGUMENTS)


# --------------------------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------------------------


class FaultClassifier:
    """Classify ``[n, channels, length]`` waveforms into string fault labels (see module docstring).

    Parameters beyond the named ones go to the method: training settings for neural methods
    (``epochs``, ``batch_size``, ``learning_rate``, ``weight_decay``, ``time_budget_s``,
    ``representation``), LightGBM settings for ``features`` (``n_estimators``, ``num_leaves``,
    ``learning_rate``, ``min_child_samples``), trunk options for ``reprogram``.
    """

    def __init__(
        self,
        method: str = "features",
        *,
        window_length: int | None = _UNSET,
        window_stride: int | None = _UNSET,
        sampling_rate: float = 12_000.0,
        shaft_hz: float | None = None,
        reference_rpm: float | None = None,
        fault_orders: dict[str, float] | None = None,
        class_weight: str | None = "balanced",
        calibrate: bool = True,
        calibration_fraction: float = 0.15,
        seed: int = 0,
        progress: ProgressCallback | None = None,
        **params: Any,
    ) -> None:
        if method not in _Method.registry:
            raise ValueError(f"unknown method {method!r}; choose one of {sorted(_Method.registry)}")
        if class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")
        if not 0.0 < calibration_fraction < 0.5:
            raise ValueError(f"calibration_fraction must be in (0, 0.5), got {calibration_fraction}")
        self.method = method
        defaults = METHOD_DEFAULTS.get(method, {})
        # The default window applies only to examples longer than it (decided at fit, see
        # _resolve_default_window); an explicit window_length is always used as given.
        self._default_window = window_length is _UNSET and defaults.get("window_length") is not None
        if window_length is _UNSET:
            window_length = defaults.get("window_length")
            if window_stride is _UNSET:
                window_stride = defaults.get("window_stride")
        if window_stride is _UNSET:
            window_stride = None
        self.window_length = window_length
        self.window_stride = window_stride or (window_length // 2 if window_length else None)
        self.sampling_rate = sampling_rate
        self.shaft_hz = shaft_hz
        if reference_rpm is not None and not (math.isfinite(reference_rpm) and reference_rpm > 0):
            raise ValueError(f"reference_rpm must be a positive number, got {reference_rpm}")
        self.reference_rpm = reference_rpm
        self.fault_orders = dict(fault_orders or {})
        self.class_weight = class_weight
        self.calibrate = calibrate
        self.calibration_fraction = calibration_fraction
        self.seed = seed
        self.progress = progress
        # Explicit arguments win over the method's defaults.
        self.params = {**{k: v for k, v in defaults.items() if k not in ("window_length", "window_stride")}, **params}
        self.temperature = 1.0
        self.classes_: np.ndarray | None = None
        self._method: _Method | None = None

    # -- configuration ------------------------------------------------------------------------

    def _feature_config(self) -> FeatureConfig:
        shaft_hz = self.shaft_hz
        if shaft_hz is None and self.reference_rpm is not None and self.fault_orders:
            shaft_hz = self.reference_rpm / 60.0  # order-tracked input turns at the reference speed
        return FeatureConfig(
            sampling_rate=self.sampling_rate, shaft_hz=shaft_hz, fault_orders=self.fault_orders,
            level_features=bool(self.params.get("level_features", False)),
            spectrum_features=bool(self.params.get("spectrum_features", True)),
        )

    def _make_method(self) -> _Method:
        return _Method.registry[self.method](self._feature_config(), {**self.params, "seed": self.seed})

    def _windows(self, X: np.ndarray | list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(X, list):  # order-tracked examples: lengths differ, window each on its own
            if self.window_length is None:
                raise ValueError("order tracking (speed_rpm or sample_rate_hz given) needs window_length")
            parts = [sliding_windows(x[None], length=self.window_length, stride=int(self.window_stride))[0] for x in X]
            owners = np.concatenate([np.full(len(part), i) for i, part in enumerate(parts)])
            return np.concatenate(parts), owners
        if self.window_length is None or X.shape[2] == self.window_length:
            return X, np.arange(len(X))
        return sliding_windows(X, length=self.window_length, stride=int(self.window_stride))

    def _order_tracked(
        self, X: np.ndarray, speed_rpm: float | Sequence[float] | np.ndarray | None,
        sample_rate_hz: float | Sequence[float] | np.ndarray | None, *, fitting: bool,
    ) -> np.ndarray | list[np.ndarray]:
        """Resample each example onto the classifier's grid: ``sampling_rate`` samples a second at
        ``reference_rpm`` (a fixed number of samples per shaft revolution).

        Why: bearing defect frequencies are fixed multiples of shaft speed, so once every capture has
        the same samples per revolution a fault impacts at the same sample spacing whatever the load
        or speed it was captured at. Examples without a speed are taken to run at the reference speed;
        examples at another sampling rate are brought to ``sampling_rate`` either way.
        """
        n = len(X)
        speeds = _per_example(speed_rpm, n, "speed_rpm")
        rates = _per_example(sample_rate_hz, n, "sample_rate_hz")
        if speeds is not None:
            if fitting and self.reference_rpm is None:
                self.reference_rpm = float(np.median(speeds))
            if self.reference_rpm is None:
                raise ValueError("speed_rpm given, but the classifier was fitted without speeds (no reference_rpm)")
        elif fitting and self.reference_rpm is not None:
            speeds = np.full(n, self.reference_rpm)
        if speeds is None and rates is None:
            return X
        factors = np.ones(n)
        if speeds is not None and self.reference_rpm is not None:
            factors *= speeds / self.reference_rpm
        if rates is not None:
            factors *= self.sampling_rate / rates
        return [order_resample(x, factor) for x, factor in zip(X, factors)]

    # -- fit / predict ------------------------------------------------------------------------

    def fit(
        self, X: np.ndarray, y: Sequence[str] | np.ndarray, *,
        speed_rpm: float | Sequence[float] | np.ndarray | None = None,
        sample_rate_hz: float | Sequence[float] | np.ndarray | None = None,
    ) -> FaultClassifier:
        """``speed_rpm`` / ``sample_rate_hz`` (one value, or one per example) turn on order
        tracking: see :meth:`_order_tracked`. The reference speed is ``reference_rpm``, or the
        median training speed."""
        X = check_waveforms(X)
        labels = np.asarray(y).astype(str)
        if labels.shape != (len(X),):
            raise ValueError(f"y must hold one label per example: {len(X)} examples, y has shape {labels.shape}")
        self.classes_ = np.unique(labels)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least two classes to classify, got {self.classes_.tolist()}")
        self.n_channels_, self.input_length_ = X.shape[1], X.shape[2]
        self._resolve_default_window()
        tracked = self._order_tracked(X, speed_rpm, sample_rate_hz, fitting=True)
        targets = np.searchsorted(self.classes_, labels)
        fit_index, calibration_index = self._calibration_split(targets)
        fit_windows, owners = self._windows(_take(tracked, fit_index))
        fit_targets = targets[fit_index][owners]
        class_weights = balanced_class_weights(fit_targets, len(self.classes_)) if self.class_weight else np.ones(len(self.classes_))
        validation = None
        if calibration_index is not None:
            calibration_windows, calibration_owners = self._windows(_take(tracked, calibration_index))
            validation = (calibration_windows, targets[calibration_index][calibration_owners])
        self._method = self._make_method()
        self._method.fit(fit_windows, fit_targets, class_weights, validation, len(self.classes_), self.progress)
        self.temperature = fit_temperature(self._method.logits(validation[0]), validation[1]) if validation is not None else 1.0
        return self

    def _resolve_default_window(self) -> None:
        """A default window longer than the examples would refuse them; such short examples are
        each one input, as before the defaults existed. Saved as resolved, so predict and load agree."""
        if self._default_window and self.window_length is not None and self.input_length_ <= self.window_length:
            self.window_length = None
            self.window_stride = None
        self._default_window = False

    def _calibration_split(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        index = np.arange(len(targets))
        if not self.calibrate:
            return index, None
        counts = np.bincount(targets)
        stratify = targets if counts[counts > 0].min() >= 2 else None
        n_held = max(int(round(self.calibration_fraction * len(targets))), len(self.classes_) if stratify is not None else 1)
        if n_held >= len(targets):
            raise ValueError(f"{len(targets)} examples are too few to hold out {n_held} for calibration; pass calibrate=False")
        fit_index, calibration_index = train_test_split(index, test_size=n_held, random_state=self.seed, stratify=stratify)
        return np.sort(fit_index), np.sort(calibration_index)

    def _check_fitted(self) -> _Method:
        if self._method is None or self.classes_ is None:
            raise RuntimeError("FaultClassifier is not fitted: call fit(X, y) or load(path) first")
        return self._method

    def predict_proba(
        self, X: np.ndarray, *,
        speed_rpm: float | Sequence[float] | np.ndarray | None = None,
        sample_rate_hz: float | Sequence[float] | np.ndarray | None = None,
    ) -> np.ndarray:
        method = self._check_fitted()
        X = check_waveforms(X)
        if X.shape[1] != self.n_channels_:
            raise ValueError(f"X has {X.shape[1]} channels; the classifier was fitted on {self.n_channels_}")
        windows, owners = self._windows(self._order_tracked(X, speed_rpm, sample_rate_hz, fitting=False))
        probabilities = softmax(method.logits(windows) / self.temperature)
        # Average window probabilities per example (a long recording votes with all its windows).
        summed = np.zeros((len(X), len(self.classes_)))
        np.add.at(summed, owners, probabilities)
        return summed / np.bincount(owners, minlength=len(X))[:, None]

    def predict_window_proba(
        self, X: np.ndarray, *,
        speed_rpm: float | Sequence[float] | np.ndarray | None = None,
        sample_rate_hz: float | Sequence[float] | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-window probabilities before the per-example average, and each window's example index
        (how much one short window can be trusted on its own)."""
        method = self._check_fitted()
        X = check_waveforms(X)
        windows, owners = self._windows(self._order_tracked(X, speed_rpm, sample_rate_hz, fitting=False))
        return softmax(method.logits(windows) / self.temperature), owners

    def predict(
        self, X: np.ndarray, *,
        speed_rpm: float | Sequence[float] | np.ndarray | None = None,
        sample_rate_hz: float | Sequence[float] | np.ndarray | None = None,
    ) -> np.ndarray:
        return self.classes_[self.predict_proba(X, speed_rpm=speed_rpm, sample_rate_hz=sample_rate_hz).argmax(axis=1)]

    # -- reporting ----------------------------------------------------------------------------

    @property
    def training_log(self) -> TrainingLog:
        return self._check_fitted().training_log

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameters; for gradient boosting, tree nodes."""
        return self._check_fitted().parameter_counts()

    # -- persistence --------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "window_length": self.window_length,
            "window_stride": self.window_stride,
            "sampling_rate": self.sampling_rate,
            "shaft_hz": self.shaft_hz,
            "reference_rpm": self.reference_rpm,
            "fault_orders": self.fault_orders,
            "class_weight": self.class_weight,
            "calibrate": self.calibrate,
            "calibration_fraction": self.calibration_fraction,
            "seed": self.seed,
            "params": self.params,
        }

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` + ``weights.safetensors`` into the folder ``path``."""
        method = self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        arrays, extras = method.state()
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        arrays["temperature"] = np.array([self.temperature], dtype=np.float64)
        save_numpy_file(arrays, str(folder / WEIGHTS_FILE))
        document = {
            "estimator": "FaultClassifier",
            "config": self._config(),
            "classes": self.classes_.tolist(),
            "n_channels": self.n_channels_,
            "input_length": self.input_length_,
            "training_log": asdict(method.training_log),
            "method_state": extras,
        }
        (folder / CONFIG_FILE).write_text(json.dumps(document))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> FaultClassifier:
        folder = Path(path)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} is missing; is {folder} a saved FaultClassifier?")
        document = json.loads((folder / CONFIG_FILE).read_text())
        if document.get("estimator") != "FaultClassifier":
            raise ValueError(f"{folder / CONFIG_FILE} does not describe a FaultClassifier")
        config = document["config"]
        classifier = cls(
            method=config["method"],
            **{k: v for k, v in config.items() if k not in {"method", "params"}},
            **config["params"],
        )
        # The saved params exactly: a model saved before METHOD_DEFAULTS existed must not gain
        # defaults it was not trained with (its window_length, None or not, is passed explicitly above).
        classifier.params = dict(config["params"])
        classifier._default_window = False
        classifier.classes_ = np.asarray(document["classes"])
        classifier.n_channels_, classifier.input_length_ = document["n_channels"], document["input_length"]
        arrays = load_numpy_file(str(folder / WEIGHTS_FILE))
        classifier.temperature = float(arrays.pop("temperature")[0])
        method = classifier._make_method()
        window_length = classifier.window_length or classifier.input_length_
        method.restore(arrays, document["method_state"], classifier.n_channels_, len(classifier.classes_), window_length)
        method.training_log = TrainingLog(**document["training_log"])
        classifier._method = method
        return classifier
