"""``ImageClassifier``: the DESIGN.md image contract, over the learned encoder or hand-crafted features.

``ImageClassifier(method="cnn" | "features", ...).fit(images, labels)`` then ``.predict(images)`` /
``.predict_proba(images)``; ``images`` is a list of file paths or uint8 arrays (H×W grey or H×W×3),
any size; labels are strings and ``classes_`` lists them in ``predict_proba`` column order.
``save(path)`` writes a folder with ``config.json`` and ``model.safetensors`` (no pickle);
``ImageClassifier.load(path)`` reads it back.

* ``cnn``: the compact ``VisionEncoder`` trained from scratch (or fine-tuned from a local
  ``encoder_checkpoint``) with flips / small rotations / lighting augmentation, class-balanced
  sampling and flip test-time augmentation. ``image_tokens`` exposes its tokens for the fusion model.
* ``features``: ``surface_features`` + gradient-boosted trees (``feature_classifier="boosting"``,
  stored as arrays) or a standardised class-weighted logistic regression (``"logistic"``): the
  classical baselines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch import nn

from models.vision.augment import augment_batch
from models.vision.boosting import BoostedTrees, export_boosted_trees
from models.vision.encoder import DEFAULT_WIDTHS, VisionEncoder
from models.vision.features import FEATURE_IMAGE_SIZE, surface_feature_matrix
from models.vision.preprocessing import ImageInput, ResizeMode, load_image_batch

Method = Literal["cnn", "features"]
ProgressCallback = Callable[[int, int, float], None]
FORMAT_NAME = "phm-image-classifier"
FORMAT_VERSION = 1
_PREDICT_BATCH = 64


@dataclass
class ImageClassifierParams:
    """Everything that defines a model; stored in ``config.json`` by ``save``."""

    method: Method = "cnn"
    # 128 px for 40 epochs: on magnetic tiles (seed 0) more optimiser steps beat more pixels at the
    # same CPU cost: AUROC 0.975 / accuracy 0.913, against 0.937 / 0.839 at 160 px × 30 epochs
    # and 0.841 / 0.765 at 192 px × 20 epochs. A blowhole (≈ 5 % of the short side) still spans
    # ~6 px at 128.
    image_size: int = 128
    channels: int = 3
    resize_mode: ResizeMode = "stretch"
    widths: list[int] = field(default_factory=lambda: list(DEFAULT_WIDTHS))
    blocks_per_stage: int = 1
    token_grid: int = 4
    epochs: int = 40
    # Small batches: more optimiser steps for the same CPU time, which is what a few hundred
    # images need; BatchNorm is still stable at 16.
    batch_size: int = 16
    learning_rate: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05
    dropout: float = 0.2
    # Sampling weight of a class ∝ count ** -class_balance: 0 keeps the data's frequencies, 1 draws
    # every class equally often; 0.5 lifts rare defects without overfitting their few images.
    class_balance: float = 0.5
    # Weight of the defect-mask loss when masks are given (see _EncoderWithHead).
    mask_loss_weight: float = 1.0
    mask_positive_weight: float = 4.0
    augment: bool = True
    # Class-balanced sampling trains the model under a flatter prior than the data's; shifting the
    # logits by log(data prior / sampling prior) at prediction undoes that (logit adjustment),
    # which is what accuracy on data with the real class mix needs.
    prior_correction: bool = True
    test_time_flips: bool = True
    encoder_checkpoint: str | None = None
    freeze_encoder: bool = False
    # Classifier over the hand-crafted features: gradient-boosted trees (saved as arrays, see
    # models.vision.boosting) or a standardised class-weighted logistic regression.
    feature_classifier: Literal["boosting", "logistic"] = "boosting"
    feature_regularization: float = 1.0
    seed: int = 0
    # One thread by default: on a CPU shared with other jobs, two threads spend more time waiting
    # for each other than computing (measured 2–8× slower per step on the 2-core dev machine).
    num_threads: int = 1


class _EncoderWithHead(nn.Module):
    """Encoder, one defect-mask head (1×1 conv) per stage, and a class head.

    The mask heads learn only when ``fit`` gets defect masks: dense per-location supervision
    teaches the encoder *where* a small defect is from a few hundred images, which the image
    label alone does slowly. The class head sees the pooled last stage plus each mask head's
    strongest response, so "is there a defect anywhere" reaches the decision directly.
    """

    def __init__(self, encoder: VisionEncoder, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.mask_heads = nn.ModuleList(nn.Conv2d(width, 1, kernel_size=1) for width in encoder.widths[1:])
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * encoder.feature_dim + len(self.mask_heads), n_classes)

    def forward_with_masks(self, pixels: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        maps = self.encoder.stage_maps(pixels)
        mask_logits = [head(stage_map) for head, stage_map in zip(self.mask_heads, maps)]
        last = maps[-1]
        strongest = torch.cat([logits.amax(dim=(2, 3)) for logits in mask_logits], dim=1)
        pooled = torch.cat([last.mean(dim=(2, 3)), last.amax(dim=(2, 3)), strongest], dim=1)
        return self.head(self.dropout(pooled)), mask_logits

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.forward_with_masks(pixels)[0]


def _mask_loss(mask_logits: list[torch.Tensor], masks: torch.Tensor, pos_weight: torch.Tensor) -> torch.Tensor:
    """Mean BCE over the stages; a cell is "defect" when any defect pixel falls inside it."""
    losses = []
    for logits in mask_logits:
        target = (F.adaptive_max_pool2d(masks, logits.shape[-2:]) > 0.5).float()
        losses.append(F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight))
    return torch.stack(losses).mean()


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """Use ``count`` torch threads inside the block, then restore the process setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_labels(labels: Sequence[str], n_images: int) -> np.ndarray:
    if isinstance(labels, str):
        raise TypeError("labels must be a list of strings, not one string")
    if len(labels) != n_images:
        raise ValueError(f"got {n_images} images but {len(labels)} labels")
    for position, label in enumerate(labels):
        if not isinstance(label, str) or not label:
            raise ValueError(f"label {position} must be a non-empty string, got {label!r}")
    array = np.asarray(labels, dtype=object)
    if len(set(array)) < 2:
        raise ValueError(f"need at least two classes to train, got only {sorted(set(array))}")
    return array


class ImageClassifier:
    """Classify inspection photos; see the module docstring for the contract."""

    def __init__(self, method: Method = "cnn", *, progress: ProgressCallback | None = None, **params: Any) -> None:
        known = set(ImageClassifierParams.__dataclass_fields__)
        unknown = sorted(set(params) - known)
        if unknown:
            raise TypeError(f"unknown ImageClassifier parameters {unknown}; known: {sorted(known - {'method'})}")
        if method not in ("cnn", "features"):
            raise ValueError(f"method must be 'cnn' or 'features', got {method!r}")
        self.params = ImageClassifierParams(method=method, **params)
        if self.params.feature_classifier not in ("boosting", "logistic"):
            raise ValueError(f"feature_classifier must be 'boosting' or 'logistic', got {self.params.feature_classifier!r}")
        if self.params.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {self.params.channels}")
        self.progress = progress
        self.classes_: list[str] = []
        self.network_: _EncoderWithHead | None = None
        self.scaler_: StandardScaler | None = None
        self.linear_: LogisticRegression | None = None
        self.trees_: BoostedTrees | None = None
        self.train_seconds_: float | None = None
        self.logit_adjustment_: np.ndarray | None = None

    # ----------------------------------------------------------------- public contract
    def fit(
        self,
        images: Sequence[ImageInput],
        labels: Sequence[str],
        masks: Sequence[ImageInput | None] | None = None,
    ) -> ImageClassifier:
        """Train on ``images`` and their string ``labels``.

        ``masks`` is optional: per image a defect mask (path or uint8 array, non-zero = defect, any
        size, resized like its image) or ``None`` where none was drawn. The CNN then also learns
        to locate defects (mask heads); the features baseline ignores masks.
        """
        label_array = _check_labels(labels, len(images))
        if masks is not None and len(masks) != len(images):
            raise ValueError(f"got {len(images)} images but {len(masks)} masks")
        self.classes_ = sorted(set(label_array))
        targets = np.searchsorted(np.asarray(self.classes_, dtype=object), label_array)
        started = time.perf_counter()
        if self.params.method == "features":
            self._fit_features(self._feature_matrix(images), targets)
        else:
            with _torch_threads(self.params.num_threads):
                self._fit_cnn(self._pixels(images), targets, self._masks(masks, len(images)))
        self.train_seconds_ = time.perf_counter() - started
        return self

    def predict_proba(self, images: Sequence[ImageInput]) -> np.ndarray:
        self._check_fitted()
        if self.params.method == "features":
            return self._features_proba(self._feature_matrix(images))
        with _torch_threads(self.params.num_threads):
            return self._cnn_proba(self._pixels(images))

    def predict(self, images: Sequence[ImageInput]) -> np.ndarray:
        probabilities = self.predict_proba(images)
        return np.asarray(self.classes_, dtype=object)[probabilities.argmax(axis=1)]

    def image_tokens(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """``float32 [n, token_grid², feature_dim]`` encoder tokens, the input of ``VisionProjector``."""
        self._check_fitted()
        if self.network_ is None:
            raise ValueError("image_tokens needs method='cnn'; the features baseline has no encoder")
        pixels = self._pixels(images)
        self.network_.eval()
        # no_grad rather than inference_mode: the fusion model trains a projector on these tokens.
        with torch.no_grad():
            return torch.cat(
                [self.network_.encoder.tokens(self._as_float(pixels[i : i + _PREDICT_BATCH])) for i in range(0, len(pixels), _PREDICT_BATCH)]
            )

    @property
    def n_parameters(self) -> int:
        if self.network_ is not None:
            return sum(parameter.numel() for parameter in self.network_.parameters())
        if self.linear_ is not None:
            return int(self.linear_.coef_.size + self.linear_.intercept_.size)
        if self.trees_ is not None:
            return int(self.trees_.feature.size)  # tree nodes
        return 0

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write ``path/config.json`` and ``path/model.safetensors``; returns the folder."""
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "params": asdict(self.params),
            "classes": self.classes_,
            "train_seconds": self.train_seconds_,
        }
        if self.network_ is not None:
            tensors = {name: value.detach().contiguous() for name, value in self.network_.state_dict().items()}
            if self.logit_adjustment_ is not None:
                tensors["logit_adjustment"] = torch.from_numpy(self.logit_adjustment_.copy())
        elif self.trees_ is not None:
            tensors = {f"trees.{name}": torch.from_numpy(np.ascontiguousarray(array)) for name, array in self.trees_.to_arrays().items()}
        else:
            assert self.scaler_ is not None and self.linear_ is not None
            tensors = {
                "scaler.mean": torch.from_numpy(self.scaler_.mean_.copy()),
                "scaler.scale": torch.from_numpy(self.scaler_.scale_.copy()),
                "linear.coef": torch.from_numpy(self.linear_.coef_.copy()),
                "linear.intercept": torch.from_numpy(self.linear_.intercept_.copy()),
            }
        save_file(tensors, str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> ImageClassifier:
        folder = Path(path)
        config_path, weights_path = folder / "config.json", folder / "model.safetensors"
        if not config_path.is_file() or not weights_path.is_file():
            raise FileNotFoundError(f"{str(folder)!r} is not a saved ImageClassifier (needs config.json and model.safetensors)")
        config = json.loads(config_path.read_text())
        if config.get("format") != FORMAT_NAME or config.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{str(config_path)!r} holds format {config.get('format')!r} v{config.get('version')}, "
                f"expected {FORMAT_NAME!r} v{FORMAT_VERSION}"
            )
        params = dict(config["params"])
        # The checkpoint it was initialised from is not needed (and may be gone): weights are here.
        params["encoder_checkpoint"] = None
        model = cls(params.pop("method"), **params)
        model.classes_ = list(config["classes"])
        model.train_seconds_ = config.get("train_seconds")
        tensors = load_file(str(weights_path))
        if model.params.method == "cnn":
            adjustment = tensors.pop("logit_adjustment", None)
            model.logit_adjustment_ = None if adjustment is None else adjustment.numpy()
            model.network_ = model._build_network(len(model.classes_))
            model.network_.load_state_dict(tensors)
            model.network_.eval()
        elif model.params.feature_classifier == "boosting":
            model.trees_ = BoostedTrees.from_arrays(
                {name.removeprefix("trees."): value.numpy() for name, value in tensors.items() if name.startswith("trees.")}
            )
        else:
            model.scaler_ = StandardScaler()
            model.scaler_.mean_ = tensors["scaler.mean"].numpy()
            model.scaler_.scale_ = tensors["scaler.scale"].numpy()
            model.scaler_.n_features_in_ = model.scaler_.mean_.shape[0]
            model.linear_ = LogisticRegression()
            model.linear_.coef_ = tensors["linear.coef"].numpy()
            model.linear_.intercept_ = tensors["linear.intercept"].numpy()
            model.linear_.classes_ = np.arange(len(model.classes_))
            model.linear_.n_features_in_ = model.linear_.coef_.shape[1]
        return model

    # ----------------------------------------------------------------- internals
    def _check_fitted(self) -> None:
        if not self.classes_:
            raise ValueError("this ImageClassifier is not fitted yet: call fit(images, labels) or load(path)")

    def _pixels(self, images: Sequence[ImageInput]) -> np.ndarray:
        return load_image_batch(
            images, size=self.params.image_size, channels=self.params.channels, resize_mode=self.params.resize_mode
        )

    def _masks(self, masks: Sequence[ImageInput | None] | None, count: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``(bool [n, 1, size, size] masks, bool [n] has-mask)`` or None when no mask was given."""
        if masks is None or all(mask is None for mask in masks):
            return None
        present = np.array([mask is not None for mask in masks])
        resized = np.zeros((count, 1, self.params.image_size, self.params.image_size), dtype=bool)
        try:
            loaded = load_image_batch(
                [mask for mask in masks if mask is not None],
                size=self.params.image_size, channels=1, resize_mode=self.params.resize_mode,
            )
        except (TypeError, ValueError, FileNotFoundError) as error:
            raise ValueError(f"bad defect mask (position among the given masks): {error}") from error
        # Any coverage after resizing counts: a one-pixel crack must not vanish when shrunk.
        resized[present] = loaded > 0
        return resized, present

    def _feature_matrix(self, images: Sequence[ImageInput]) -> np.ndarray:
        grey = load_image_batch(images, size=FEATURE_IMAGE_SIZE, channels=1, resize_mode=self.params.resize_mode)
        return surface_feature_matrix(grey)

    @staticmethod
    def _as_float(pixels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(pixels).float().div_(255.0)

    def _fit_features(self, features: np.ndarray, targets: np.ndarray) -> None:
        if self.params.feature_classifier == "boosting":
            # OpenMP threads capped like torch's: oversubscribed cores make boosting several times slower.
            with threadpool_limits(limits=self.params.num_threads, user_api="openmp"):
                booster = HistGradientBoostingClassifier(class_weight="balanced", random_state=self.params.seed)
                self.trees_ = export_boosted_trees(booster.fit(features, targets))
            return
        self.scaler_ = StandardScaler().fit(features)
        self.linear_ = LogisticRegression(
            C=self.params.feature_regularization, class_weight="balanced", max_iter=5000, random_state=self.params.seed
        ).fit(self.scaler_.transform(features), targets)

    def _features_proba(self, features: np.ndarray) -> np.ndarray:
        if self.trees_ is not None:
            return self.trees_.predict_proba(features)
        assert self.scaler_ is not None and self.linear_ is not None
        return self.linear_.predict_proba(self.scaler_.transform(features))

    def _build_network(self, n_classes: int) -> _EncoderWithHead:
        encoder = VisionEncoder(
            in_channels=self.params.channels,
            widths=self.params.widths,
            blocks_per_stage=self.params.blocks_per_stage,
            token_grid=self.params.token_grid,
        )
        return _EncoderWithHead(encoder, n_classes, self.params.dropout)

    def _sampling_weights(self, targets: np.ndarray) -> torch.Tensor:
        counts = np.bincount(targets, minlength=len(self.classes_)).astype(np.float64)
        return torch.from_numpy(counts[targets] ** -self.params.class_balance)

    def _logit_adjustment(self, targets: np.ndarray) -> np.ndarray:
        """``log(data prior) − log(sampling prior)`` per class (zeros when correction is off)."""
        counts = np.bincount(targets, minlength=len(self.classes_)).astype(np.float64)
        if not self.params.prior_correction:
            return np.zeros_like(counts)
        sampled = counts ** (1 - self.params.class_balance)
        return np.log(counts / counts.sum()) - np.log(sampled / sampled.sum())

    def _fit_cnn(self, pixels: np.ndarray, targets: np.ndarray, masks: tuple[np.ndarray, np.ndarray] | None) -> None:
        params = self.params
        torch.manual_seed(params.seed)
        generator = torch.Generator().manual_seed(params.seed)
        network = self._build_network(len(self.classes_))
        if params.encoder_checkpoint:
            network.encoder.load_checkpoint(params.encoder_checkpoint)
        if params.freeze_encoder:
            if not params.encoder_checkpoint:
                raise ValueError("freeze_encoder=True needs an encoder_checkpoint: a random encoder would stay random")
            network.encoder.requires_grad_(False)
        trainable = [parameter for parameter in network.parameters() if parameter.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=params.learning_rate, weight_decay=params.weight_decay)
        steps_per_epoch = max(1, len(pixels) // params.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=params.learning_rate, total_steps=params.epochs * steps_per_epoch, pct_start=0.2
        )
        weights = self._sampling_weights(targets)
        target_tensor = torch.from_numpy(targets).long()
        pos_weight = torch.tensor(params.mask_positive_weight)
        use_masks = masks is not None and params.mask_loss_weight > 0
        for epoch in range(params.epochs):
            network.train()
            if params.freeze_encoder:
                network.encoder.eval()  # keep the checkpoint's BatchNorm statistics
            order = torch.multinomial(weights, steps_per_epoch * params.batch_size, replacement=True, generator=generator)
            epoch_loss = 0.0
            for step in range(steps_per_epoch):
                batch_index = order[step * params.batch_size : (step + 1) * params.batch_size]
                rows = batch_index.numpy()
                batch = self._as_float(pixels[rows])
                batch_masks = torch.from_numpy(masks[0][rows]).float() if use_masks else None
                if params.augment:
                    batch, batch_masks = augment_batch(batch, generator=generator, masks=batch_masks)
                logits, mask_logits = network.forward_with_masks(batch)
                loss = F.cross_entropy(logits, target_tensor[batch_index], label_smoothing=params.label_smoothing)
                if use_masks:
                    has_mask = torch.from_numpy(masks[1][rows])
                    if has_mask.any():
                        loss = loss + params.mask_loss_weight * _mask_loss(
                            [m[has_mask] for m in mask_logits], batch_masks[has_mask], pos_weight
                        )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                epoch_loss += float(loss.detach())
            if self.progress is not None:
                self.progress(epoch + 1, params.epochs, epoch_loss / steps_per_epoch)
        network.eval()
        self.network_ = network
        self.logit_adjustment_ = self._logit_adjustment(targets)

    def _cnn_proba(self, pixels: np.ndarray) -> np.ndarray:
        assert self.network_ is not None
        self.network_.eval()
        adjustment = torch.zeros(len(self.classes_))
        if self.logit_adjustment_ is not None:
            adjustment = torch.from_numpy(self.logit_adjustment_).float()
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(pixels), _PREDICT_BATCH):
                batch = self._as_float(pixels[start : start + _PREDICT_BATCH])
                views = [batch]
                if self.params.test_time_flips:
                    views += [batch.flip(3), batch.flip(2)]
                outputs.append(
                    torch.stack([F.softmax(self.network_(view) + adjustment, dim=1) for view in views]).mean(0)
                )
        return torch.cat(outputs).numpy().astype(np.float64)
