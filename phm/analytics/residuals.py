"""The plant detector's per-sensor residuals over a diagnosis window (``Incident.residuals``).

A detector with a drift check (``params.drift_s``) predicts each sensor from the unit's others and
raises when one leaves that prediction; the root-cause diagnoser was trained on the same residuals
(``models.diagnosis.onset``: the demo detector fitted per unit), so the diagnosis of an alarm sees
what made the detector raise: a bearing thermocouple walking away alone, or vibration, bearing
temperature and current leaving together. Units whose detectors have no drift check get none and
are diagnosed from the window alone.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pandas as pd

from phm.analytics.models import DetectorConfig, ModelVersion
from phm.assets.models import Equipment

log = logging.getLogger(__name__)

DETECTOR_SOURCE_PREFIX = "detector:"


def drift_detector(*, equipment: Equipment, source: str = "", using: str = "default"):
    """``(config, detector)`` of the equipment's active detector with a drift check — the one that
    raised the alarm (``source`` ``detector:<name>``) when it has one — or None."""
    from phm.analytics.scoring import loaded_detector

    configs = list(DetectorConfig.objects.using(using).filter(equipment=equipment).order_by("pk"))
    raised_by = source.removeprefix(DETECTOR_SOURCE_PREFIX) if source.startswith(DETECTOR_SOURCE_PREFIX) else None
    configs.sort(key=lambda c: c.name != raised_by)
    for config in configs:
        if float((config.params or {}).get("drift_s") or 0) <= 0:
            continue
        version = ModelVersion.objects.using(using).filter(config=config, is_active=True).first()
        if version is None:
            continue
        detector = loaded_detector(version)
        if getattr(detector, "drift", None) is not None:
            return config, detector
    return None


def detector_residuals(
    *, equipment: Equipment, start: datetime, end: datetime, source: str = "", using: str = "default"
) -> pd.DataFrame | None:
    """Per measure (``TEMP_BRG``, ...), the drift residual of the equipment's detector at each grid
    step of [start, end], in units of its training limit, signed; None without such a detector or
    data. The detector reads ``drift_s`` of history before ``start`` as its trailing window."""
    from phm.analytics.diagnosis import measure_name
    from phm.analytics.training import grid_frame

    found = drift_detector(equipment=equipment, source=source, using=using)
    if found is None:
        return None
    config, detector = found
    grid = grid_frame(config=config, start=start - timedelta(seconds=detector.drift.window_s), end=end + timedelta(microseconds=1), using=using)
    if grid.empty or any(column not in grid.columns for column in detector.columns):
        return None
    residuals = detector.drift_residuals(grid[detector.columns])
    residuals = residuals[residuals.index >= pd.Timestamp(start)].dropna(how="all")
    residuals.columns = [measure_name(tag, equipment.tag) for tag in residuals.columns]
    return residuals if len(residuals) else None
