"""Turn inspection photos (file paths or uint8 arrays, any size) into fixed-size tensors.

Plain photos are RGB, thermal images are either a false-colour RGB rendering or a single
channel; a single channel is treated as grey. With ``channels=1`` colour is reduced to
luminance (ITU-R 601, what PIL's ``"L"`` mode does); with ``channels=3`` grey is replicated
so one encoder can take both.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Literal, Union

import numpy as np
from PIL import Image

ImageInput = Union[str, PathLike, np.ndarray]
ResizeMode = Literal["stretch", "pad"]


def _to_pil(image: ImageInput, *, position: int) -> Image.Image:
    """Open one image; ``position`` names it in error messages."""
    if isinstance(image, (str, PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image {position}: no such file {str(path)!r}")
        try:
            with Image.open(path) as opened:
                opened.load()
                return opened.copy()
        except OSError as error:
            raise ValueError(f"image {position}: cannot decode {str(path)!r}: {error}") from error
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"image {position}: arrays must be uint8, got {image.dtype}")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim == 2:
            return Image.fromarray(image, mode="L")
        if image.ndim == 3 and image.shape[2] in (3, 4):
            return Image.fromarray(image[:, :, :3], mode="RGB")
        raise ValueError(f"image {position}: expected H×W grey or H×W×3 colour, got shape {image.shape}")
    raise TypeError(f"image {position}: expected a file path or a uint8 array, got {type(image).__name__}")


def _resize(picture: Image.Image, *, size: int, mode: ResizeMode) -> Image.Image:
    """Square output; ``pad`` keeps the aspect ratio (edge-replicated margins), ``stretch`` does not."""
    if mode == "stretch":
        return picture.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    if mode != "pad":
        raise ValueError(f"resize mode must be 'stretch' or 'pad', got {mode!r}")
    width, height = picture.size
    scale = size / max(width, height)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    scaled = np.asarray(picture.resize(new_size, Image.Resampling.BILINEAR, reducing_gap=2.0))
    pad_y, pad_x = size - scaled.shape[0], size - scaled.shape[1]
    padding = [(pad_y // 2, pad_y - pad_y // 2), (pad_x // 2, pad_x - pad_x // 2)]
    if scaled.ndim == 3:
        padding.append((0, 0))
    # Edge replication rather than black bars: a black border would look like a dark defect.
    return Image.fromarray(np.pad(scaled, padding, mode="edge"))


def load_image_batch(
    images: Sequence[ImageInput], *, size: int, channels: int, resize_mode: ResizeMode = "stretch"
) -> np.ndarray:
    """Decode, convert and resize images to ``uint8 [n, channels, size, size]``."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if isinstance(images, (str, PathLike, np.ndarray)):
        raise TypeError("images must be a list of paths or arrays, not a single image")
    if len(images) == 0:
        raise ValueError("no images given")
    batch = np.empty((len(images), channels, size, size), dtype=np.uint8)
    for position, image in enumerate(images):
        picture = _to_pil(image, position=position).convert("L" if channels == 1 else "RGB")
        array = np.asarray(_resize(picture, size=size, mode=resize_mode))
        batch[position] = array[None] if channels == 1 else array.transpose(2, 0, 1)
    return batch
