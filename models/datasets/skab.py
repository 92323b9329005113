"""Reader for the Skoltech Anomaly Benchmark (SKAB): `;`-separated CSVs, one per experiment.

Protocol (SKAB's leaderboard): in each file the first 400 rows are the training part (they hold no
anomalies), the rest is scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SENSOR_COLUMNS = (
    "Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure",
    "Temperature", "Thermocouple", "Voltage", "Volume Flow RateRMS",
)
LABEL_COLUMNS = ("anomaly", "changepoint")
TRAIN_ROWS = 400


@dataclass(frozen=True)
class SkabExperiment:
    name: str  # e.g. "valve1/3"
    sensors: pd.DataFrame  # DatetimeIndex, one float column per sensor
    anomaly: pd.Series  # bool per row

    @property
    def train(self) -> pd.DataFrame:
        return self.sensors.iloc[:TRAIN_ROWS]


def read_skab_csv(path: str | Path) -> tuple[pd.DataFrame, pd.Series]:
    """One SKAB file -> (sensor frame, anomaly labels); labels are all False when the file has none."""
    path = Path(path)
    frame = pd.read_csv(path, sep=";", index_col="datetime", parse_dates=True)
    missing = [c for c in SENSOR_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing SKAB sensor columns {missing}")
    sensors = frame.loc[:, list(SENSOR_COLUMNS)].astype("float64").sort_index()
    if sensors.isna().any().any():
        raise ValueError(f"{path}: sensor columns contain empty cells")
    anomaly = frame["anomaly"].astype(bool) if "anomaly" in frame.columns else pd.Series(False, index=frame.index)
    return sensors, anomaly.reindex(sensors.index).rename("anomaly")


def load_skab(root: str | Path, *, groups: tuple[str, ...] | None = None) -> list[SkabExperiment]:
    """All labelled experiments under ``root`` (folders such as ``valve1``, ``valve2``, ``other``).

    ``anomaly-free`` is skipped: it has no labels to score. Files sort numerically within a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"SKAB folder {root} does not exist")
    experiments = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "anomaly-free"):
        if groups is not None and folder.name not in groups:
            continue
        for csv in sorted(folder.glob("*.csv"), key=lambda p: (len(p.stem), p.stem)):
            sensors, anomaly = read_skab_csv(csv)
            experiments.append(SkabExperiment(name=f"{folder.name}/{csv.stem}", sensors=sensors, anomaly=anomaly))
    if not experiments:
        raise FileNotFoundError(f"no SKAB experiment CSVs under {root}")
    return experiments
