"""Demo plant simulator: physically plausible multi-sensor data with injectable faults.

A data source like any other connector (no Django): it produces :class:`Reading` and
:class:`LogRecord` batches for a plant definition and pushes them to a :class:`Sink`.

Physics, kept simple but honest enough that detectors have something real to find:

- Pumps follow the affinity laws (flow ∝ speed, head ∝ speed², shaft power ∝ speed³) around a
  daily demand cycle; motor current follows shaft power over efficiency; bearing and winding
  temperatures are first-order lags toward a load- and ambient-dependent steady state.
- Process noise is AR(1) (slow wander), measurement noise is white.
- Faults ramp in with a severity profile and leave their textbook signatures:
  bearing wear (vibration with impulsive bursts and bearing temperature rising together),
  cavitation (suction pressure drop, discharge pressure and flow oscillation, broadband vibration),
  misalignment (vibration and bearing temperature, extra current), condenser fouling on the
  chiller (condenser pressure and compressor power up), sensor drift (one sensor walks away) and a
  stuck sensor (one sensor freezes). Controller log lines accompany faults and normal operation.

The generator works in chunks with carried state, so a stream and a backfill of the same span
produce the same signals for the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from connectors.records import LogRecord, Reading
from connectors.sink import Sink

FAULT_KINDS = ("bearing_wear", "cavitation", "misalignment", "condenser_fouling", "sensor_drift", "stuck_sensor")
ROTATING_TYPES = {"pump", "motor", "fan"}


@dataclass(frozen=True)
class SensorDef:
    measure: str  # suffix of the tag: VIB, TEMP_BRG, ...
    name: str
    measurement: str
    unit: str
    range_low: float
    range_high: float
    sampling_period_s: float = 1.0


@dataclass(frozen=True)
class EquipmentDef:
    tag: str
    name: str
    equipment_type: str
    area: str
    line: str
    criticality: str = "B"
    rated_speed_rpm: float = 1480.0
    rated_flow: float = 0.0  # m3/h for pumps
    rated_head_bar: float = 0.0
    rated_power_kw: float = 30.0
    sensors: tuple[SensorDef, ...] = ()
    faults: tuple[str, ...] = ()

    def sensor_tag(self, measure: str) -> str:
        return f"{self.tag}.{measure}"


@dataclass(frozen=True)
class PlantDef:
    site_code: str
    site_name: str
    areas: dict[str, str]  # code -> name
    lines: dict[str, tuple[str, str]]  # code -> (area code, name)
    equipment: tuple[EquipmentDef, ...]

    def get(self, tag: str) -> EquipmentDef:
        for item in self.equipment:
            if item.tag == tag:
                return item
        raise KeyError(f"no equipment {tag!r} in plant {self.site_code}")


def _pump_sensors() -> tuple[SensorDef, ...]:
    return (
        SensorDef("VIB", "Bearing housing vibration RMS", "vibration_rms", "mm/s", 0, 50),
        SensorDef("TEMP_BRG", "Bearing temperature", "bearing_temperature", "degC", -20, 150),
        SensorDef("CURRENT", "Motor current", "current", "A", 0, 200),
        SensorDef("PRESS_DIS", "Discharge pressure", "pressure", "bar", 0, 16),
        SensorDef("PRESS_SUC", "Suction pressure", "pressure", "bar", -1, 6),
        SensorDef("FLOW", "Flow", "flow", "m3/h", 0, 600),
        SensorDef("SPEED", "Shaft speed", "speed", "rpm", 0, 3600),
    )


DEMO_PLANT = PlantDef(
    site_code="riverside",
    site_name="Riverside Works",
    areas={"pumping": "Raw water pumping", "utilities": "Utilities"},
    lines={"ps1": ("pumping", "Pump station 1"), "ps2": ("pumping", "Pump station 2"), "hvac": ("utilities", "HVAC and cooling")},
    equipment=(
        EquipmentDef(
            "P-101", "Raw water pump 1", "pump", "pumping", "ps1", "A", rated_flow=320, rated_head_bar=4.5, rated_power_kw=55,
            sensors=_pump_sensors(), faults=("bearing_wear", "cavitation", "misalignment", "sensor_drift", "stuck_sensor"),
        ),
        EquipmentDef(
            "M-101", "P-101 drive motor", "motor", "pumping", "ps1", "A", rated_power_kw=55,
            sensors=(
                SensorDef("VIB", "Motor vibration RMS", "vibration_rms", "mm/s", 0, 50),
                SensorDef("TEMP_BRG", "Motor bearing temperature", "bearing_temperature", "degC", -20, 150),
                SensorDef("TEMP_WDG", "Winding temperature", "winding_temperature", "degC", -20, 180),
                SensorDef("CURRENT", "Phase current", "current", "A", 0, 200),
                SensorDef("SPEED", "Shaft speed", "speed", "rpm", 0, 3600),
            ),
            faults=("bearing_wear", "misalignment", "sensor_drift", "stuck_sensor"),
        ),
        EquipmentDef(
            "P-201", "Raw water pump 2", "pump", "pumping", "ps2", "B", rated_flow=250, rated_head_bar=4.0, rated_power_kw=45,
            sensors=_pump_sensors(), faults=("bearing_wear", "cavitation", "misalignment", "sensor_drift", "stuck_sensor"),
        ),
        EquipmentDef(
            "F-401", "Cooling tower fan", "fan", "utilities", "hvac", "B", rated_speed_rpm=980, rated_power_kw=22,
            sensors=(
                SensorDef("VIB", "Fan bearing vibration RMS", "vibration_rms", "mm/s", 0, 50),
                SensorDef("TEMP_BRG", "Fan bearing temperature", "bearing_temperature", "degC", -20, 150),
                SensorDef("CURRENT", "Motor current", "current", "A", 0, 100),
                SensorDef("SPEED", "Fan speed", "speed", "rpm", 0, 1500),
            ),
            faults=("bearing_wear", "misalignment", "sensor_drift", "stuck_sensor"),
        ),
        EquipmentDef(
            "CH-501", "Process chiller", "chiller", "utilities", "hvac", "A", rated_power_kw=180,
            sensors=(
                SensorDef("CHW_SUPPLY", "Chilled water supply temperature", "temperature", "degC", -5, 30, 10.0),
                SensorDef("CHW_RETURN", "Chilled water return temperature", "temperature", "degC", -5, 35, 10.0),
                SensorDef("COND_PRESS", "Condenser pressure", "pressure", "bar", 0, 25, 10.0),
                SensorDef("EVAP_PRESS", "Evaporator pressure", "pressure", "bar", 0, 10, 10.0),
                SensorDef("COMP_CURRENT", "Compressor current", "current", "A", 0, 500, 10.0),
                SensorDef("POWER", "Compressor power", "power", "kW", 0, 400, 10.0),
            ),
            faults=("condenser_fouling", "sensor_drift", "stuck_sensor"),
        ),
    ),
)


@dataclass(frozen=True)
class ScheduledFault:
    """A fault on one piece of equipment. ``sensor`` names the affected measure for sensor faults."""

    equipment: str
    kind: str
    start: datetime
    end: datetime
    severity: float = 1.0
    sensor: str | None = None
    ramp_s: float | None = None  # time to reach full severity; None: 60 % of the fault's duration

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; choose one of {', '.join(FAULT_KINDS)}")
        if self.end <= self.start:
            raise ValueError("fault end must be after its start")
        if not 0 < self.severity <= 3:
            raise ValueError("fault severity must be in (0, 3]")
        if self.ramp_s is not None and self.ramp_s <= 0:
            raise ValueError(f"fault ramp_s must be positive, got {self.ramp_s}")

    def profile(self, t_s: np.ndarray) -> np.ndarray:
        """Severity over epoch-second times: ramps in over ``ramp_s`` (default the first 60 % of
        the fault), holds, and is zero outside it (repair at the end)."""
        start, end = self.start.timestamp(), self.end.timestamp()
        ramp = max(self.ramp_s if self.ramp_s is not None else (end - start) * 0.6, 1.0)
        level = np.clip((t_s - start) / ramp, 0.0, 1.0) ** 1.5
        return np.where((t_s >= start) & (t_s < end), level * self.severity, 0.0)


def default_sensor_for(kind: str, equipment: EquipmentDef) -> str | None:
    if kind == "sensor_drift":
        return "TEMP_BRG" if any(s.measure == "TEMP_BRG" for s in equipment.sensors) else equipment.sensors[0].measure
    if kind == "stuck_sensor":
        return "FLOW" if any(s.measure == "FLOW" for s in equipment.sensors) else equipment.sensors[0].measure
    return None


@dataclass
class _EquipmentState:
    """Carried between chunks so signals are continuous."""

    temps: dict[str, float] = field(default_factory=dict)
    ar_state: dict[str, np.ndarray] = field(default_factory=dict)
    frozen: dict[str, float] = field(default_factory=dict)
    last_log: dict[str, float] = field(default_factory=dict)


class PlantSimulator:
    def __init__(self, plant: PlantDef = DEMO_PLANT, *, seed: int = 7, faults: Sequence[ScheduledFault] = ()) -> None:
        self.plant = plant
        self.seed = seed
        self.faults: list[ScheduledFault] = list(faults)
        self._states = {e.tag: _EquipmentState() for e in plant.equipment}
        for fault in self.faults:
            plant.get(fault.equipment)  # fail early on unknown equipment

    def set_faults(self, faults: Sequence[ScheduledFault]) -> None:
        for fault in faults:
            self.plant.get(fault.equipment)
        self.faults = list(faults)

    # --- public generation API -------------------------------------------------------------

    def generate(self, start: datetime, end: datetime) -> tuple[list[Reading], list[LogRecord]]:
        """All readings and log lines with timestamps in [start, end), chunk by chunk."""
        readings: list[Reading] = []
        logs: list[LogRecord] = []
        for chunk_readings, chunk_logs in self.iter_chunks(start, end):
            readings.extend(chunk_readings)
            logs.extend(chunk_logs)
        return readings, logs

    def iter_chunks(self, start: datetime, end: datetime, *, chunk_s: int = 300) -> Iterator[tuple[list[Reading], list[LogRecord]]]:
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be time-zone aware")
        cursor = start
        while cursor < end:
            chunk_end = min(cursor + timedelta(seconds=chunk_s), end)
            yield self._chunk(cursor, chunk_end)
            cursor = chunk_end

    def sample_frames(
        self, start: datetime, end: datetime, *, equipment: Sequence[str] | None = None, chunk_s: int = 300
    ) -> tuple[dict[str, pd.DataFrame], list[LogRecord]]:
        """[start, end) as one frame per equipment (UTC DatetimeIndex, one column per measure) plus
        the log lines: the same values as :meth:`generate` without building a ``Reading`` per value,
        which is what makes simulating hundreds of training incidents cheap. ``equipment`` limits
        the simulation to those tags."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be time-zone aware")
        tags = frozenset(equipment) if equipment is not None else None
        parts: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {}
        logs: list[LogRecord] = []
        cursor = start
        while cursor < end:
            chunk_end = min(cursor + timedelta(seconds=chunk_s), end)
            for unit, samples, chunk_logs in self._chunk_samples(cursor, chunk_end, tags):
                columns = parts.setdefault(unit.tag, {})
                for measure, sample in samples.items():
                    columns.setdefault(measure, []).append(sample)
                logs.extend(chunk_logs)
            cursor = chunk_end
        frames = {}
        for tag, columns in parts.items():
            series = {}
            for measure, pieces in columns.items():
                times = np.concatenate([t for t, _ in pieces]).astype(np.int64)
                values = np.round(np.concatenate([v for _, v in pieces]), 4)
                series[measure] = pd.Series(values, index=pd.to_datetime(times, unit="s", utc=True))
            frames[tag] = pd.DataFrame(series)
        return frames, logs

    def run(self, sink: Sink, start: datetime, end: datetime, *, chunk_s: int = 300) -> tuple[int, int]:
        """Push [start, end) to ``sink``; returns (readings accepted, logs accepted)."""
        accepted_readings = accepted_logs = 0
        for readings, logs in self.iter_chunks(start, end, chunk_s=chunk_s):
            accepted_readings += sink.write_readings(readings).accepted
            if logs:
                accepted_logs += sink.write_logs(logs).accepted
        return accepted_readings, accepted_logs

    # --- physics ---------------------------------------------------------------------------

    def _chunk(self, start: datetime, end: datetime) -> tuple[list[Reading], list[LogRecord]]:
        readings: list[Reading] = []
        logs: list[LogRecord] = []
        for equipment, samples, chunk_logs in self._chunk_samples(start, end):
            for measure, (times, values) in samples.items():
                tag = equipment.sensor_tag(measure)
                for ts, value in zip(times, values, strict=True):
                    readings.append(Reading(tag, datetime.fromtimestamp(ts, UTC), round(float(value), 4)))
            logs.extend(chunk_logs)
        return readings, logs

    def _chunk_samples(
        self, start: datetime, end: datetime, tags: frozenset[str] | None = None
    ) -> list[tuple[EquipmentDef, dict[str, tuple[np.ndarray, np.ndarray]], list[LogRecord]]]:
        """Per equipment: each measure's sample times (epoch s) and values, and the log lines.

        ``tags`` limits the work to some equipment; the others are skipped, which changes nothing
        for the ones kept (each unit has its own random stream and carried state).
        """
        t0 = math.ceil(start.timestamp())
        t1 = math.ceil(end.timestamp())
        if t1 <= t0:
            return []
        t_s = np.arange(t0, t1, dtype=np.float64)
        out = []
        for equipment in self.plant.equipment:
            if tags is not None and equipment.tag not in tags:
                continue
            signals = self._signals(equipment, t_s)
            self._apply_sensor_faults(equipment, t_s, signals)
            samples: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for sensor in equipment.sensors:
                period = max(int(round(sensor.sampling_period_s)), 1)
                mask = (t_s.astype(np.int64) % period) == 0
                values = np.clip(signals[sensor.measure][mask], sensor.range_low - 5, sensor.range_high + 5)
                samples[sensor.measure] = (t_s[mask], values)
            out.append((equipment, samples, self._logs(equipment, t_s, signals)))
        return out

    def _rng(self, equipment: EquipmentDef, t0: float) -> np.random.Generator:
        # Deterministic per (seed, equipment, chunk start) so backfill and stream agree.
        return np.random.default_rng([self.seed, sum(map(ord, equipment.tag)), int(t0)])

    def _ar(self, state: _EquipmentState, key: str, noise: np.ndarray, phi: float) -> np.ndarray:
        zi = state.ar_state.get(key, np.zeros(1))
        out, zf = lfilter([1.0], [1.0, -phi], noise, zi=zi * phi)
        state.ar_state[key] = np.array([out[-1]])
        return out

    def _lag(self, state: _EquipmentState, key: str, target: np.ndarray, tau_s: float) -> np.ndarray:
        """First-order thermal lag toward ``target`` with time constant ``tau_s`` (1 s steps)."""
        alpha = 1.0 / tau_s
        previous = state.temps.get(key, float(target[0]))
        out, _ = lfilter([alpha], [1.0, -(1.0 - alpha)], target, zi=np.array([(1.0 - alpha) * previous]))
        state.temps[key] = float(out[-1])
        return out

    def _fault_level(self, equipment: EquipmentDef, kind: str, t_s: np.ndarray) -> np.ndarray:
        level = np.zeros_like(t_s)
        for fault in self.faults:
            if fault.equipment == equipment.tag and fault.kind == kind:
                level = np.maximum(level, fault.profile(t_s))
        return level

    def _demand(self, t_s: np.ndarray) -> np.ndarray:
        """Daily demand cycle: low at night, peaks morning and evening (water utility pattern)."""
        hours = (t_s / 3600.0) % 24
        return 0.85 + 0.08 * np.sin(2 * np.pi * (hours - 6) / 24) + 0.05 * np.sin(4 * np.pi * (hours - 7) / 24)

    def _ambient(self, t_s: np.ndarray) -> np.ndarray:
        hours = (t_s / 3600.0) % 24
        return 18.0 + 6.0 * np.sin(2 * np.pi * (hours - 9) / 24)

    def _signals(self, equipment: EquipmentDef, t_s: np.ndarray) -> dict[str, np.ndarray]:
        if equipment.equipment_type == "chiller":
            return self._chiller(equipment, t_s)
        return self._rotating(equipment, t_s)

    def _rotating(self, equipment: EquipmentDef, t_s: np.ndarray) -> dict[str, np.ndarray]:
        rng = self._rng(equipment, t_s[0])
        state = self._states[equipment.tag]
        n = len(t_s)
        wear = self._fault_level(equipment, "bearing_wear", t_s)
        cav = self._fault_level(equipment, "cavitation", t_s)
        misalign = self._fault_level(equipment, "misalignment", t_s)

        demand = self._demand(t_s)
        speed_ratio = np.clip(demand + 0.01 * self._ar(state, "speed", rng.normal(0, 0.05, n), 0.995), 0.6, 1.05)
        speed = equipment.rated_speed_rpm * speed_ratio
        load = speed_ratio**3  # shaft power fraction (affinity law)
        power_kw = equipment.rated_power_kw * load * (1 + 0.03 * misalign + 0.015 * wear)
        current = power_kw * 1000 / (math.sqrt(3) * 400 * 0.86 * 0.93) + 0.25 * equipment.rated_power_kw / 5.5
        signals: dict[str, np.ndarray] = {"SPEED": speed + rng.normal(0, 1.5, n)}
        signals["CURRENT"] = current * (1 + 0.004 * rng.normal(size=n)) + 0.3 * self._ar(state, "cur", rng.normal(0, 0.1, n), 0.98)

        # Vibration: baseline grows with speed²; bearing wear adds impulsive bursts; cavitation
        # adds broadband noise; misalignment a steady rise.
        base_vib = 1.6 * speed_ratio**2 + 0.15 * self._ar(state, "vib", rng.normal(0, 0.2, n), 0.99)
        bursts = wear * np.abs(rng.standard_t(3, size=n)) * 1.2
        signals["VIB"] = base_vib + 5.5 * wear**1.3 + bursts + cav * np.abs(rng.normal(0, 1.6, n)) + 2.8 * misalign + rng.normal(0, 0.08, n)

        ambient = self._ambient(t_s)
        brg_target = ambient + 12 + 30 * load + 18 * wear + 8 * misalign + 1.5 * cav
        signals["TEMP_BRG"] = self._lag(state, "brg", brg_target, 900.0) + rng.normal(0, 0.15, n)
        if equipment.equipment_type == "motor":
            wdg_target = ambient + 45 * (current / current.mean()) ** 2 * load
            signals["TEMP_WDG"] = self._lag(state, "wdg", wdg_target, 1800.0) + rng.normal(0, 0.2, n)
        if equipment.equipment_type == "pump":
            suction = 1.3 + 0.05 * np.sin(2 * np.pi * t_s / 7200) + 0.02 * self._ar(state, "suc", rng.normal(0, 0.1, n), 0.99)
            suction = suction - 0.65 * cav
            oscillation = cav * (np.sin(2 * np.pi * t_s / rng.uniform(4, 9)) + 0.6 * rng.normal(size=n))
            flow = equipment.rated_flow * speed_ratio * (1 - 0.12 * cav) * (1 + 0.09 * oscillation) + rng.normal(0, 1.0, n)
            head = equipment.rated_head_bar * speed_ratio**2 * (1 - 0.1 * cav)
            signals["PRESS_SUC"] = suction + rng.normal(0, 0.01, n)
            signals["PRESS_DIS"] = suction + head + 0.35 * oscillation + rng.normal(0, 0.02, n)
            signals["FLOW"] = flow
        return signals

    def _chiller(self, equipment: EquipmentDef, t_s: np.ndarray) -> dict[str, np.ndarray]:
        rng = self._rng(equipment, t_s[0])
        state = self._states[equipment.tag]
        n = len(t_s)
        fouling = self._fault_level(equipment, "condenser_fouling", t_s)
        ambient = self._ambient(t_s)
        load = np.clip(0.55 + 0.25 * (ambient - 18) / 6 + 0.03 * self._ar(state, "load", rng.normal(0, 0.1, n), 0.995), 0.2, 1.0)
        supply = 7.0 + 0.1 * self._ar(state, "sup", rng.normal(0, 0.1, n), 0.99)
        delta_t = 5.0 * load
        cond_sat = ambient + 12 + 8 * fouling  # fouled condenser: higher saturation temperature
        cond_press = 0.25 * cond_sat + 2.0
        evap_press = 3.4 + 0.05 * (supply - 7) + rng.normal(0, 0.01, n)
        lift = cond_press - evap_press
        power = equipment.rated_power_kw * load * (lift / 7.5) * (1 + 0.05 * fouling)
        return {
            "CHW_SUPPLY": self._lag(state, "sup_t", supply, 120.0) + rng.normal(0, 0.03, n),
            "CHW_RETURN": self._lag(state, "ret_t", supply + delta_t, 300.0) + rng.normal(0, 0.03, n),
            "COND_PRESS": self._lag(state, "cond", cond_press, 300.0) + rng.normal(0, 0.02, n),
            "EVAP_PRESS": evap_press,
            "POWER": power + rng.normal(0, 0.5, n),
            "COMP_CURRENT": power * 1000 / (math.sqrt(3) * 400 * 0.9) + rng.normal(0, 0.8, n),
        }

    def _apply_sensor_faults(self, equipment: EquipmentDef, t_s: np.ndarray, signals: dict[str, np.ndarray]) -> None:
        state = self._states[equipment.tag]
        stuck_now: set[str] = set()
        for fault in self.faults:
            if fault.equipment != equipment.tag or fault.kind not in {"sensor_drift", "stuck_sensor"}:
                continue
            measure = fault.sensor or default_sensor_for(fault.kind, equipment)
            if measure not in signals:
                continue
            active = (t_s >= fault.start.timestamp()) & (t_s < fault.end.timestamp())
            if not active.any():
                continue
            if fault.kind == "sensor_drift":
                # Walks away linearly: ~3 units per hour at severity 1.
                hours_in = np.clip(t_s - fault.start.timestamp(), 0, None) / 3600.0
                signals[measure] = np.where(active, signals[measure] + 3.0 * fault.severity * hours_in, signals[measure])
            else:
                first = int(np.argmax(active))
                frozen = state.frozen.setdefault(measure, float(signals[measure][max(first - 1, 0)]))
                signals[measure] = np.where(active, frozen, signals[measure])
                stuck_now.add(measure)
        # A sensor unfreezes when no stuck fault holds it in this chunk. (Forgetting the value
        # whenever *some* stuck fault of that sensor was inactive made a stuck sensor with another,
        # later stuck fault scheduled jump to a new value every chunk.)
        for measure in [m for m in state.frozen if m not in stuck_now]:
            del state.frozen[measure]

    # --- controller logs -------------------------------------------------------------------

    def _logs(self, equipment: EquipmentDef, t_s: np.ndarray, signals: dict[str, np.ndarray]) -> list[LogRecord]:
        state = self._states[equipment.tag]
        logs: list[LogRecord] = []
        source = equipment.tag

        def emit(key: str, index: int, level: str, message: str, every_s: float) -> None:
            ts = float(t_s[index])
            if ts - state.last_log.get(key, -1e18) >= every_s:
                state.last_log[key] = ts
                logs.append(LogRecord(source, datetime.fromtimestamp(ts, UTC), level, message))

        minute_marks = np.flatnonzero(t_s.astype(np.int64) % 60 == 0)
        for index in minute_marks:  # controllers evaluate their limits once a minute
            if (int(t_s[index]) % 900) == 0:
                emit("heartbeat", index, "INFO", f"PLC heartbeat OK, scan time {8 + (index % 5)} ms", 900)
            if "SPEED" in signals and (int(t_s[index]) % 1800) == 0:
                emit("setpoint", index, "INFO", f"VFD {source} speed setpoint changed to {signals['SPEED'][index]:.0f} rpm", 1800)
            vib = signals.get("VIB")
            if vib is not None and vib[index] > 7.1:
                emit("vib_alarm", index, "ALARM", f"Vibration {vib[index]:.1f} mm/s above alarm limit 7.1 mm/s", 600)
            elif vib is not None and vib[index] > 4.5:
                emit("vib_warn", index, "WARN", f"Vibration {vib[index]:.1f} mm/s above warning limit 4.5 mm/s", 600)
            brg = signals.get("TEMP_BRG")
            if brg is not None and brg[index] > 75:
                emit("brg", index, "WARN", f"Bearing temperature {brg[index]:.1f} C above limit 75 C", 600)
            suc = signals.get("PRESS_SUC")
            if suc is not None and suc[index] < 0.9:
                emit("npsh", index, "WARN", f"Suction pressure {suc[index]:.2f} bar below NPSH margin 0.90 bar", 600)
            flow = signals.get("FLOW")
            if flow is not None and index >= 30:
                window = flow[index - 30 : index + 1]
                if window.std() > 0.05 * max(window.mean(), 1.0):
                    emit("flow", index, "WARN", f"Flow unstable: deviation {window.std():.1f} m3/h over 30 s", 600)
            cond = signals.get("COND_PRESS")
            if cond is not None and cond[index] > 10.5:
                emit("cond", index, "WARN", f"Condenser pressure {cond[index]:.2f} bar high, check condenser tubes", 600)
        return logs


# --- inspection images ---------------------------------------------------------------------------

#: What a thermal inspection image shows for each fault that has a visible sign. Sensor faults
#: (drift, stuck) change nothing on the machine, so their images look like a healthy unit's.
IMAGE_FINDINGS = {
    "bearing_wear": "bearing_hot_spot",
    "misalignment": "coupling_hot_band",
    "cavitation": "uneven_inlet_pattern",
    "condenser_fouling": "fouled_condenser_tubes",
}
NO_VISIBLE_FINDING = "no_visible_anomaly"


def image_finding(kind: str | None) -> str:
    """The visible finding of a fault kind (``no_visible_anomaly`` for none or a sensor fault)."""
    return IMAGE_FINDINGS.get(kind or "", NO_VISIBLE_FINDING)


def _blob(u: np.ndarray, v: np.ndarray, cu: float, cv: float, su: float, sv: float) -> np.ndarray:
    return np.exp(-0.5 * (((u - cu) / su) ** 2 + ((v - cv) / sv) ** 2))


def _box(u: np.ndarray, v: np.ndarray, u0: float, u1: float, v0: float, v1: float, soft: float = 0.01) -> np.ndarray:
    """A rectangle with soft edges (a thermal image blurs outlines)."""
    def edge(x: np.ndarray, a: float, b: float) -> np.ndarray:
        return 1 / (1 + np.exp(-(x - a) / soft)) * (1 / (1 + np.exp((x - b) / soft)))

    return edge(u, u0, u1) * edge(v, v0, v1)


def render_inspection_image(
    equipment: EquipmentDef,
    ts: datetime,
    faults: Sequence[ScheduledFault] = (),
    *,
    size: int = 64,
    seed: int = 0,
) -> np.ndarray:
    """A single-channel thermal inspection image (uint8 ``size``×``size``) of one unit at ``ts``.

    Temperatures are drawn in °C, then mapped to grey levels by an auto-ranging camera (1st..99th
    percentile, random margins), so absolute levels carry little information and a fault has to be
    seen as a local pattern:

    * rotating units: motor body with cooling fins, a coupling, the driven machine (pump casing with
      its suction inlet, fan hub) and a bearing housing; **bearing wear** heats a spot on the
      bearing housing, **misalignment** a band across the coupling, **cavitation** leaves an
      uneven cold/warm mottling around the pump inlet;
    * chillers: condenser shell with tube rows over a cold evaporator shell; **condenser fouling**
      makes some tube rows run hot and uneven.

    The fault's visibility follows its severity profile at ``ts``. Pose (shift, rotation, scale),
    emissivity, ambient, camera noise and a stray reflection (a hot spot anywhere, sometimes near
    a bearing) are random per ``seed`` so healthy and faulty images overlap at low severity.
    """
    rng = np.random.default_rng([seed, sum(map(ord, equipment.tag)), int(ts.timestamp()) % 2**31])
    t_s = np.array([ts.timestamp()])
    levels: dict[str, float] = {}
    for fault in faults:
        if fault.equipment == equipment.tag and fault.kind in IMAGE_FINDINGS:
            levels[fault.kind] = max(levels.get(fault.kind, 0.0), float(fault.profile(t_s)[0]))

    # Pose: inverse-map each pixel into the unit's canonical [0, 1]² frame.
    angle = np.deg2rad(rng.uniform(-10, 10))
    scale = rng.uniform(0.88, 1.12)
    shift = rng.uniform(-0.07, 0.07, size=2)
    y, x = np.mgrid[0:size, 0:size] / (size - 1) - 0.5
    u = (np.cos(angle) * x + np.sin(angle) * y) / scale + 0.5 + shift[0]
    v = (-np.sin(angle) * x + np.cos(angle) * y) / scale + 0.5 + shift[1]

    hours = (ts.timestamp() / 3600.0) % 24
    ambient = 18.0 + 6.0 * math.sin(2 * math.pi * (hours - 9) / 24) + rng.normal(0, 2)
    load = rng.uniform(0.6, 1.0)
    # Background: a wall/floor with a slow gradient.
    temp = ambient + rng.normal(0, 1.0) * (u - 0.5) + rng.normal(0, 1.0) * (v - 0.5)
    objects = np.zeros_like(temp)

    if equipment.equipment_type == "chiller":
        condenser = _box(u, v, 0.08, 0.92, 0.15, 0.45)
        evaporator = _box(u, v, 0.08, 0.92, 0.55, 0.85)
        rows = np.linspace(0.19, 0.41, 6)
        tube_heat = rng.uniform(0.8, 1.2, size=len(rows))
        fouling = levels.get("condenser_fouling", 0.0)
        if fouling > 0:  # blocked rows run hotter, the rest a little warmer than clean
            blocked = rng.random(len(rows)) < 0.5
            blocked[rng.integers(len(rows))] = True
            tube_heat = tube_heat + fouling * np.where(blocked, rng.uniform(2.0, 4.0, len(rows)), rng.uniform(0.2, 0.6, len(rows)))
        tubes = sum(h * _blob(u, v, 0.5, r, 10.0, 0.012) for h, r in zip(tube_heat, rows, strict=True))
        objects += condenser * (10 + 4 * load + 3 * tubes) + evaporator * (-10 - 2 * load)
    else:
        motor = _box(u, v, 0.06, 0.44, 0.33, 0.67)
        fins = 0.5 + 0.5 * np.cos(2 * np.pi * (v - 0.33) * 12)
        coupling = _box(u, v, 0.44, 0.52, 0.42, 0.58)
        bearing = _box(u, v, 0.52, 0.6, 0.38, 0.62)
        objects += motor * (12 + 14 * load - 2 * fins) + coupling * (6 + 4 * load) + bearing * (10 + 6 * load)
        if equipment.equipment_type == "pump":
            casing = np.clip(1 - ((u - 0.76) ** 2 + (v - 0.5) ** 2) / 0.18**2, 0, 1) ** 0.3
            inlet = _box(u, v, 0.9, 0.99, 0.43, 0.57)
            objects += casing * 4 + inlet * 2  # water-cooled: only a little above ambient
            cavitation = levels.get("cavitation", 0.0)
            if cavitation > 0:  # flashing and collapse: a mottled pattern around the suction eye
                mottle = rng.normal(0, 1, size=(8, 8))
                mu = np.clip(((u - 0.6) / 0.4 * 8).astype(int), 0, 7)
                mv = np.clip((v * 8).astype(int), 0, 7)
                around_inlet = np.clip(casing + inlet, 0, 1) * _blob(u, v, 0.88, 0.5, 0.14, 0.2)
                objects += cavitation * rng.uniform(3, 6) * mottle[mv, mu] * around_inlet
        elif equipment.equipment_type == "fan":
            hub = np.clip(1 - ((u - 0.78) ** 2 + (v - 0.5) ** 2) / 0.2**2, 0, 1) ** 0.5
            objects += hub * 3
        wear = levels.get("bearing_wear", 0.0)
        if wear > 0:
            objects += wear * rng.uniform(10, 22) * _blob(u, v, 0.56 + rng.normal(0, 0.01), 0.5 + rng.normal(0, 0.04), 0.03, 0.04)
        misalignment = levels.get("misalignment", 0.0)
        if misalignment > 0:
            objects += misalignment * rng.uniform(7, 15) * _blob(u, v, 0.48, 0.5, 0.025, 0.12)

    if rng.random() < 0.35:  # a stray reflection (sun, a lamp): hot spot anywhere on the image
        objects += rng.uniform(6, 18) * _blob(u, v, rng.uniform(0.05, 0.95), rng.uniform(0.1, 0.9), 0.03, 0.03)
    emissivity = rng.uniform(0.8, 0.97)  # painted vs bare metal: how much of the heat the camera sees
    apparent = temp + emissivity * objects + rng.normal(0, rng.uniform(0.3, 0.9), size=temp.shape)
    low = np.percentile(apparent, 1) - rng.uniform(0, 2)
    high = np.percentile(apparent, 99) + rng.uniform(0, 4)
    return np.clip((apparent - low) / (high - low) * 255, 0, 255).astype(np.uint8)
