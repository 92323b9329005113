"""Evaluation harnesses on public PHM data sets: ``python -m models.evaluate <name> --data DIR``.

Each harness is a module ``models.evaluate.<name>`` with a ``main(argv: list[str]) -> int``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """Where the public data sets live: ``$PHM_DATA_DIR`` or ``../shared/data`` next to the repo."""
    return Path(os.environ.get("PHM_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
