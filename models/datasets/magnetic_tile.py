"""Reader for the magnetic-tile surface defect data set (Huang et al. 2018).

Layout: ``<root>/MT_<Class>/<stem>.jpg`` grey photos with a pixel mask ``<stem>.png`` beside each.
Classes: ``Free`` (no defect), ``Blowhole``, ``Break``, ``Crack``, ``Fray``, ``Uneven``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MAGNETIC_TILE_CLASSES = ("Blowhole", "Break", "Crack", "Fray", "Free", "Uneven")
DEFECT_FREE_CLASS = "Free"
_FOLDER_PREFIX = "MT_"


@dataclass(frozen=True)
class TileImage:
    path: Path
    mask_path: Path | None
    label: str

    @property
    def is_defective(self) -> bool:
        return self.label != DEFECT_FREE_CLASS


def load_magnetic_tile(root: str | Path) -> list[TileImage]:
    """All tile photos under ``root``, sorted by class then file name (a stable order for seeded splits)."""
    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"magnetic tile data folder {str(folder)!r} does not exist")
    class_folders = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith(_FOLDER_PREFIX))
    if not class_folders:
        raise ValueError(f"{str(folder)!r} has no MT_<Class> folders; expected {[_FOLDER_PREFIX + c for c in MAGNETIC_TILE_CLASSES]}")
    images: list[TileImage] = []
    for class_folder in class_folders:
        label = class_folder.name.removeprefix(_FOLDER_PREFIX)
        if label not in MAGNETIC_TILE_CLASSES:
            raise ValueError(f"unknown magnetic tile class folder {str(class_folder)!r}; known: {MAGNETIC_TILE_CLASSES}")
        for photo in sorted(class_folder.glob("*.jpg")):
            mask = photo.with_suffix(".png")
            images.append(TileImage(path=photo, mask_path=mask if mask.is_file() else None, label=label))
    if not images:
        raise ValueError(f"no .jpg images under {str(folder)!r}")
    return images
