"""Fault classes per equipment type and their ISO 14224 failure-mode names.

Class ids are the demo simulator's fault kinds (``connectors.simulator.FAULT_KINDS``) plus
``normal``, so simulated incidents carry their labels as they are. What an operator reads is the
ISO 14224 failure mode (Annex B: failure mode codes per equipment class, failure mechanism codes
in Table B.2) in :data:`FAILURE_MODES`. A plant with other equipment types passes its own taxonomy
(``{equipment_type: [classes, "normal" first]}``); unknown classes are shown by their id.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.diagnosis.types import NO_KNOWN_FAULT, NO_KNOWN_FAULT_TEXT, NORMAL


@dataclass(frozen=True)
class FailureMode:
    code: str  # ISO 14224 failure mode code (VIB, ERO, ...), "" for no failure
    name: str  # the failure mode as an operator reads it
    mechanism: str  # ISO 14224 failure mechanism (Table B.2), code and name


FAILURE_MODES: dict[str, FailureMode] = {
    NORMAL: FailureMode("", "No failure", ""),
    NO_KNOWN_FAULT: FailureMode("", NO_KNOWN_FAULT_TEXT[0].upper() + NO_KNOWN_FAULT_TEXT[1:], ""),
    "bearing_wear": FailureMode("VIB", "Vibration / bearing wear", "2.4 Wear"),
    "cavitation": FailureMode("ERO", "Erratic output / cavitation", "2.1 Cavitation"),
    "misalignment": FailureMode("VIB", "Vibration / shaft misalignment", "1.3 Clearance/alignment failure"),
    "condenser_fouling": FailureMode("IHT", "Insufficient heat transfer / condenser fouling", "5.1 Blockage/plugged"),
    "sensor_drift": FailureMode("AIR", "Abnormal instrument reading / sensor drift", "3.4 Out of adjustment"),
    "stuck_sensor": FailureMode("AIR", "Abnormal instrument reading / stuck sensor", "3.3 Faulty signal/indication/alarm"),
}

DEFAULT_TAXONOMY: dict[str, list[str]] = {
    "pump": [NORMAL, "bearing_wear", "cavitation", "misalignment", "sensor_drift", "stuck_sensor"],
    "motor": [NORMAL, "bearing_wear", "misalignment", "sensor_drift", "stuck_sensor"],
    "fan": [NORMAL, "bearing_wear", "misalignment", "sensor_drift", "stuck_sensor"],
    "chiller": [NORMAL, "condenser_fouling", "sensor_drift", "stuck_sensor"],
}


def failure_mode(fault: str) -> FailureMode:
    return FAILURE_MODES.get(fault, FailureMode("", fault.replace("_", " "), ""))


def training_label(fault: str) -> str:
    """The class an alarm's diagnosis stands for: ``no_known_fault`` is the model's ``normal``."""
    return NORMAL if fault == NO_KNOWN_FAULT else fault


def display_name(fault: str) -> str:
    mode = failure_mode(fault)
    return f"{mode.name} ({mode.code})" if mode.code else mode.name


def check_taxonomy(taxonomy: dict[str, list[str]]) -> dict[str, list[str]]:
    """A copy with ``normal`` first for every type; refuses empty or duplicated class lists."""
    if not taxonomy:
        raise ValueError("the taxonomy names no equipment type")
    checked: dict[str, list[str]] = {}
    for equipment_type, classes in taxonomy.items():
        names = [str(c) for c in classes]
        if len(set(names)) != len(names):
            raise ValueError(f"taxonomy of {equipment_type!r} repeats a class: {names}")
        rest = [c for c in names if c != NORMAL]
        if not rest:
            raise ValueError(f"taxonomy of {equipment_type!r} has no fault class besides {NORMAL!r}")
        checked[str(equipment_type)] = [NORMAL, *rest]
    return checked
