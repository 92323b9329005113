"""NASA C-MAPSS turbofan run-to-failure data (Saxena et al., 2008).

Files are space-separated without header: unit, cycle, 3 operational settings, 21 sensors.
Training files run each engine to failure; the official test files stop each engine at a
random cycle before failure. :func:`truncate_units` reproduces that for held-out units of a
training file, so cross-validation by unit follows the official last-cycle protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

SETTING_COLUMNS = [f"setting_{i}" for i in range(1, 4)]
SENSOR_COLUMNS = [f"sensor_{i}" for i in range(1, 22)]
COLUMNS = ["unit", "cycle", *SETTING_COLUMNS, *SENSOR_COLUMNS]
# The shortest engine history in the official FD001 test file has 31 cycles; held-out units are
# never cut shorter, so every model sees at least that much history, as in the official test set.
MIN_OBSERVED_CYCLES = 31


def read_cmapss(path: str | Path) -> pd.DataFrame:
    """One C-MAPSS text file as a frame with ``unit``, ``cycle``, settings and sensors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no C-MAPSS file at {path}")
    frame = pd.read_csv(path, sep=r"\s+", header=None)
    if frame.shape[1] != len(COLUMNS):
        raise ValueError(f"{path}: expected {len(COLUMNS)} columns (unit, cycle, 3 settings, 21 sensors), got {frame.shape[1]}")
    frame.columns = COLUMNS
    frame[["unit", "cycle"]] = frame[["unit", "cycle"]].astype(int)
    return frame


def load_fd001(root: str | Path) -> pd.DataFrame:
    """The FD001 training file (100 engines, one operating condition, one fault mode)."""
    return read_cmapss(Path(root) / "train_FD001.txt")


def unit_folds(units: np.ndarray | list[int], *, n_folds: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold split of *engine units* (never of rows), shuffled with ``seed``: (train units, test units)."""
    unique_units = np.unique(np.asarray(units))
    if unique_units.size < n_folds:
        raise ValueError(f"need at least {n_folds} units for {n_folds} folds, got {unique_units.size}")
    splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [(unique_units[train], unique_units[test]) for train, test in splitter.split(unique_units)]


@dataclass(frozen=True)
class TruncatedUnits:
    observed: pd.DataFrame  # rows up to each unit's cut cycle
    true_rul: pd.Series  # cycles left after the cut, indexed by unit (not capped)


def truncate_units(
    frame: pd.DataFrame, *, rng: np.random.Generator, min_observed: int = MIN_OBSERVED_CYCLES
) -> TruncatedUnits:
    """Cut each run-to-failure unit at a random cycle, as the official test files do.

    For a unit with ``L`` cycles the number of observed cycles is drawn uniformly from
    ``[min(min_observed, L - 1), L - 1]``: at least one cycle is always left before failure
    (true RUL >= 1), and the draw covers early and late life alike.
    """
    observed_parts: list[pd.DataFrame] = []
    true_rul: dict[int, int] = {}
    for unit, rows in frame.sort_values(["unit", "cycle"]).groupby("unit", sort=True):
        length = len(rows)
        if length < 2:
            raise ValueError(f"unit {unit} has {length} cycle(s); need at least 2 to truncate")
        low = min(min_observed, length - 1)
        keep = int(rng.integers(low, length))  # in [low, length - 1]
        observed_parts.append(rows.iloc[:keep])
        true_rul[int(unit)] = length - keep
    observed = pd.concat(observed_parts, ignore_index=True)
    return TruncatedUnits(observed=observed, true_rul=pd.Series(true_rul, name="true_rul").rename_axis("unit"))
