"""Fleet detectors: one model trained on the pooled training windows of several identical units,
calibrated per unit.

Plants run fleets of identical machines (pumps of one type, valves of one rig). A forecaster fitted
on one unit's short history sees few operating points; pooled over the fleet it sees many. Each unit
still differs in offsets and noise, so every unit gets its own standardisation and threshold from
its own training part (:meth:`AnomalyDetector.recalibrate`): the SKAB harness protocol
(``models.evaluate.skab``), here as a library function the product trains through as well.

Units name their sensors differently (``P-101.VIB`` / ``P-102.VIB``), so the pooled model sees
channels by *role* (the same list for every unit, in the same order); each unit's calibrated copy is
then renamed to read that unit's own columns.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from models.detectors import AnomalyDetector
from models.training import EpochProgress


@dataclass
class FleetFit:
    shared: AnomalyDetector  # fitted on every unit's frames (role columns)
    units: dict[str, AnomalyDetector]  # unit -> copy calibrated on that unit, reading its own columns


def fit_fleet(
    method: str,
    params: Mapping[str, object],
    frames: Mapping[str, pd.DataFrame | Sequence[pd.DataFrame]],
    *,
    columns: Mapping[str, Sequence[str]] | None = None,
    roles: Sequence[str] | None = None,
    on_epoch: Callable[[EpochProgress], None] | None = None,
    backbone: object | None = None,
) -> FleetFit:
    """Fit one detector on the pooled ``frames`` of every unit and recalibrate it per unit.

    ``frames``: unit -> its training frame (or healthy segments). ``columns``/``roles``: when the
    units' columns differ, ``columns[unit]`` lists that unit's columns in the order of ``roles``
    (the channel names the pooled model uses); without them every unit must have the same columns.
    A unit with several segments is calibrated on its longest one (a forecaster's windows must not
    straddle a gap).
    """
    if not frames:
        raise ValueError("fit_fleet needs the training frames of at least one unit")
    segments = {unit: [f] if isinstance(f, pd.DataFrame) else list(f) for unit, f in frames.items()}
    empty = [unit for unit, parts in segments.items() if not parts]
    if empty:
        raise ValueError(f"fit_fleet: no training frame for unit(s) {empty}")
    if columns is None:
        first = list(next(iter(segments.values()))[0].columns)
        roles = first
        columns = {unit: first for unit in segments}
    elif roles is None:
        raise ValueError("fit_fleet: give roles together with columns")
    roles = [str(r) for r in roles]
    renamed: dict[str, list[pd.DataFrame]] = {}
    for unit, parts in segments.items():
        own = list(columns.get(unit, ()))
        if len(own) != len(roles):
            raise ValueError(f"fit_fleet: unit {unit!r} has {len(own)} columns {own}, the fleet has {len(roles)} roles {roles}")
        renamed[unit] = [_to_roles(part, own, roles, unit) for part in parts]
    shared = AnomalyDetector(method, backbone=backbone, **dict(params)).fit(
        [part for parts in renamed.values() for part in parts], on_epoch=on_epoch
    )
    units = {}
    for unit, parts in renamed.items():
        calibrated = shared.recalibrate(max(parts, key=len))
        units[unit] = rename_columns(calibrated, dict(zip(roles, columns[unit])))
    return FleetFit(shared=shared, units=units)


def _to_roles(frame: pd.DataFrame, own: list[str], roles: list[str], unit: str) -> pd.DataFrame:
    missing = [c for c in own if c not in frame.columns]
    if missing:
        raise ValueError(f"fit_fleet: unit {unit!r} frame lacks columns {missing}")
    part = frame.loc[:, own]
    part.columns = roles
    return part


def rename_columns(detector: AnomalyDetector, mapping: Mapping[str, str]) -> AnomalyDetector:
    """A copy of ``detector`` that reads columns renamed by ``mapping`` (old -> new), same model."""
    clone = copy.copy(detector)
    clone.columns = [mapping.get(c, c) for c in detector.columns]
    clone.constant_columns = {mapping.get(c, c): v for c, v in detector.constant_columns.items()}
    clone.stuck_limits = {mapping.get(c, c): v for c, v in detector.stuck_limits.items()}
    return clone
