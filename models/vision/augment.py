"""Batch augmentation for inspection photos, done on whole tensors so it costs little on CPU.

Inspection photos of one part differ by how the part lies (flips, a few degrees of rotation,
a little shift and scale) and by the lighting (gamma, contrast, sensor noise). Defects are small,
so the geometric jitter is kept mild: a shift of 5 % cannot push a defect out of the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentationSettings:
    max_rotation_degrees: float = 8.0
    max_shift: float = 0.05
    max_scale_change: float = 0.1
    gamma_range: tuple[float, float] = (0.8, 1.25)
    max_contrast_change: float = 0.2
    noise_std: float = 0.01


def _uniform(count: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def augment_batch(
    pixels: torch.Tensor,
    *,
    generator: torch.Generator,
    settings: AugmentationSettings = AugmentationSettings(),
    masks: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Randomly flip, rotate, shift, scale and relight ``float [b, c, h, w]`` pixels in [0, 1].

    ``masks`` (``float [b, 1, h, w]`` defect masks) get the same geometric moves, no relighting.
    """
    count = pixels.shape[0]
    flip_x = torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0)
    flip_y = torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0)
    angle = _uniform(count, -1, 1, generator) * math.radians(settings.max_rotation_degrees)
    scale = 1 + _uniform(count, -1, 1, generator) * settings.max_scale_change
    shift = _uniform(2 * count, -1, 1, generator).view(count, 2) * settings.max_shift * 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # affine_grid maps output coordinates to input coordinates in [-1, 1]; flips negate a column.
    theta = torch.stack(
        [
            torch.stack([cos * flip_x, -sin * flip_y, shift[:, 0]], dim=1),
            torch.stack([sin * flip_x, cos * flip_y, shift[:, 1]], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    # Reflection rather than zeros: a black border would look like a dark defect.
    moved = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    moved_masks = None
    if masks is not None:
        moved_masks = F.grid_sample(masks, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    gamma = _uniform(count, *settings.gamma_range, generator).view(count, 1, 1, 1)
    relit = moved.clamp(1e-4, 1.0) ** gamma
    contrast = (1 + _uniform(count, -1, 1, generator) * settings.max_contrast_change).view(count, 1, 1, 1)
    mean = relit.mean(dim=(1, 2, 3), keepdim=True)
    relit = (relit - mean) * contrast + mean
    noise = torch.randn(relit.shape, generator=generator) * settings.noise_std
    return (relit + noise).clamp(0.0, 1.0), moved_masks
