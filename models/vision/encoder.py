"""A compact convolutional encoder for inspection photos, trained from scratch on CPU.

Why a small ResNet and not a ViT: the plant has hundreds, not millions, of labelled photos and
no pretrained download is possible, so convolution's locality prior is what makes training from
scratch work; a patchify stem and three residual stages (torchvision's ``BasicBlock``) keep a
192×192 image at about 50 M multiply-adds (0.55 M parameters), small enough to train on a CPU.

The encoder yields two views of an image:

* ``feature_map``: ``[batch, feature_dim, h, w]``, the last stage (stride 32 with the default widths);
* ``forward`` / ``tokens``: ``[batch, token_grid², feature_dim]``, the map average-pooled onto a
  fixed grid and flattened row-major: the "image tokens" a projector maps into a language model;
* ``pooled``: ``[batch, 2 * feature_dim]``, global average and global max pooling side by side:
  max pooling keeps the response of a defect that covers a few pixels of a large tile.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from torchvision.models.resnet import BasicBlock

ENCODER_CHECKPOINT_ENV = "PHM_VISION_ENCODER_CHECKPOINT"
DEFAULT_WIDTHS = (32, 48, 96, 160)
PATCH_SIZE = 4


def configured_encoder_checkpoint() -> Path | None:
    """The local pretrained encoder named by ``$PHM_VISION_ENCODER_CHECKPOINT``, if set.

    Estimators never read the environment themselves (a model must not change with the shell it
    runs in); the application passes this to ``ImageClassifier(encoder_checkpoint=...)``.
    """
    value = os.environ.get(ENCODER_CHECKPOINT_ENV, "").strip()
    if not value:
        return None
    path = Path(value)
    if not path.exists():
        raise FileNotFoundError(f"${ENCODER_CHECKPOINT_ENV} points to {value!r}, which does not exist")
    return path


def standardize_per_image(pixels: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Zero mean, unit variance per image: removes the global lighting differences between shots."""
    mean = pixels.mean(dim=(1, 2, 3), keepdim=True)
    std = pixels.std(dim=(1, 2, 3), keepdim=True)
    return (pixels - mean) / (std + eps)


def _stage(in_width: int, out_width: int, blocks: int) -> nn.Sequential:
    downsample = nn.Sequential(
        nn.Conv2d(in_width, out_width, kernel_size=1, stride=2, bias=False), nn.BatchNorm2d(out_width)
    )
    layers: list[nn.Module] = [BasicBlock(in_width, out_width, stride=2, downsample=downsample)]
    layers += [BasicBlock(out_width, out_width) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class VisionEncoder(nn.Module):
    """Residual CNN: a stride-4 stem of ``widths[0]`` channels, then one stride-2 stage per further width.

    Input is pixels in [0, 1], ``[batch, in_channels, height, width]``, any size divisible by
    ``4 * 2 ** (len(widths) - 1)`` gives an exact grid (others are fine, borders are pooled).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        widths: Sequence[int] = DEFAULT_WIDTHS,
        blocks_per_stage: int = 1,
        token_grid: int = 4,
    ) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (grey) or 3 (RGB), got {in_channels}")
        if not widths or any(width <= 0 for width in widths):
            raise ValueError(f"widths must be positive channel counts, got {list(widths)}")
        if blocks_per_stage < 1 or token_grid < 1:
            raise ValueError("blocks_per_stage and token_grid must be at least 1")
        self.in_channels = in_channels
        self.widths = tuple(int(width) for width in widths)
        self.blocks_per_stage = blocks_per_stage
        self.token_grid = token_grid
        if len(self.widths) < 2:
            raise ValueError(f"widths needs the stem width and at least one stage width, got {list(widths)}")
        stem_width = self.widths[0]
        # A 4×4 stride-4 "patchify" stem (as in ConvNeXt) instead of a 3×3 stride-2 conv: a linear
        # map of 16 pixels to 32 channels loses nothing a small defect needs, and it skips the
        # full-resolution feature maps that dominate CPU training time.
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_width, kernel_size=PATCH_SIZE, stride=PATCH_SIZE, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
        )
        stages = []
        previous = stem_width
        for width in self.widths[1:]:
            stages.append(_stage(previous, width, blocks_per_stage))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.token_pool = nn.AdaptiveAvgPool2d(token_grid)

    @property
    def feature_dim(self) -> int:
        return self.widths[-1]

    @property
    def num_tokens(self) -> int:
        return self.token_grid * self.token_grid

    def config(self) -> dict:
        """Constructor arguments, JSON-serialisable, to rebuild the same architecture."""
        return {
            "in_channels": self.in_channels,
            "widths": list(self.widths),
            "blocks_per_stage": self.blocks_per_stage,
            "token_grid": self.token_grid,
        }

    def _check_input(self, pixels: torch.Tensor) -> None:
        if pixels.ndim != 4 or pixels.shape[1] != self.in_channels:
            raise ValueError(
                f"expected pixels [batch, {self.in_channels}, height, width], got {tuple(pixels.shape)}"
            )

    def stage_maps(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        """The output of every stage, finest first (strides 8, 16, 32 with the default widths)."""
        self._check_input(pixels)
        features = self.stem(standardize_per_image(pixels))
        maps = []
        for stage in self.stages:
            features = stage(features)
            maps.append(features)
        return maps

    def feature_map(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.stage_maps(pixels)[-1]

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[batch, token_grid², feature_dim]`` image tokens, row-major over the grid."""
        return self.token_pool(self.feature_map(pixels)).flatten(2).transpose(1, 2)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.tokens(pixels)

    def pooled(self, pixels: torch.Tensor) -> torch.Tensor:
        features = self.feature_map(pixels)
        return torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)

    def load_checkpoint(self, path: str | Path) -> None:
        """Load encoder weights from a local ``.safetensors`` file.

        Accepts a bare encoder state dict or a saved ``ImageClassifier`` (its ``model.safetensors``
        or the folder holding it), whose encoder weights carry the prefix ``encoder.``.
        """
        checkpoint = Path(path)
        if checkpoint.is_dir():
            checkpoint = checkpoint / "model.safetensors"
        if not checkpoint.is_file():
            raise FileNotFoundError(f"encoder checkpoint {str(checkpoint)!r} does not exist")
        state = load_file(str(checkpoint))
        if any(key.startswith("encoder.") for key in state):
            state = {key.removeprefix("encoder."): value for key, value in state.items() if key.startswith("encoder.")}
        try:
            result = self.load_state_dict(state, strict=False)
        except RuntimeError as error:  # tensor shape mismatch: a different width or channel count
            raise ValueError(f"encoder checkpoint {str(checkpoint)!r} does not fit {self.config()}: {error}") from error
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                f"encoder checkpoint {str(checkpoint)!r} does not match this architecture "
                f"({self.config()}): missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
            )
