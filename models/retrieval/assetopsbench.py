"""The IBM AssetOpsBench chiller records as knowledge-base material (read from the shared data
folder, never copied into the repository)."""

from __future__ import annotations

from pathlib import Path

#: Reference tables and work orders worth answering from. The event logs (alert, anomaly and
#: generic events) and the sensor dump are time series, not reference knowledge, and are left out.
KB_FILES: tuple[str, ...] = (
    "all_wo_with_code_component_events.csv",
    "failure_codes.csv",
    "primary_failure_codes.csv",
    "failure_mode.csv",
    "component.csv",
    "meter.csv",
    "alert_rule.csv",
    "alert_rule_failure_code_mapping.csv",
    "alert_rule_meter_mapping.csv",
    "anomaly_to_failure_code_mapping.csv",
    "collection_component_mapping.csv",
)


def assetopsbench_dir() -> Path:
    from models.evaluate import shared_data_dir

    return shared_data_dir() / "assetopsbench"


def kb_files(folder: Path | None = None) -> list[Path]:
    folder = folder or assetopsbench_dir()
    return [folder / name for name in KB_FILES if (folder / name).is_file()]
