"""Training incidents cut where the plant's detector actually raises, and later, as evidence grows.

:func:`models.diagnosis.simulate.simulate_incidents` raises every alarm 45-90 minutes into a fault;
operators see the alarm minutes in, when the detector first crosses its threshold, and the app
diagnoses again a few minutes later (:mod:`phm.analytics.rediagnosis`). Here each fault is
simulated with a random size and speed (weak faults, slow ramps, abrupt ones), the **configured
detector** (:class:`AlarmDetector`, by default the demo plant's PCA detector with its threshold
and on-delay) is run over it second by second, and the incident is cut at the raise and at later
moments (``offsets_min``: +5, +15 min, and one drawn up to an hour later). Every fault is also cut
at ``onset_cuts`` varied onsets (minutes into the fault, log-uniform over ``onset_min``, so the
first minutes are well covered) whether or not this detector raises: alarms also come from other
detectors, rules and operators (``phm_diagnose --inject`` raises at a chosen minute), and a stuck
sensor is nearly invisible to a PCA detector yet plain in the window's spread. Faults the detector
does not raise on within ``search_min`` are counted in :attr:`OnsetStats.undetected`. ``normal``
incidents are cut at random moments of healthy operation (the detector's rare false alarms look
the same).

No Django here: the app passes its detector settings (``phm.analytics.demo.DEMO_DETECTOR``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from connectors.simulator import DEMO_PLANT, PlantDef, PlantSimulator, ScheduledFault, default_sensor_for, render_inspection_image
from models.diagnosis.simulate import BASELINE, EPOCH, SENSOR_FAULTS, WINDOW, drop_modalities
from models.diagnosis.taxonomy import DEFAULT_TAXONOMY
from models.diagnosis.types import NORMAL, Incident
from models.logs import events_from_messages


@dataclass(frozen=True)
class AlarmDetector:
    """How the plant decides to raise: a detector of ``method`` fitted on ``train_hours`` of healthy
    operation per unit, scores on a ``stride_s`` grid, the alarm threshold at ``margin`` x the
    ``quantile`` of its training scores, raised once the score stays above it for ``on_delay_s``
    (``phm.alarms.services.AlarmPolicy``)."""

    method: str = "pca"
    params: dict = field(default_factory=lambda: {"smooth": 3})
    stride_s: float = 1.0
    quantile: float = 0.999
    margin: float = 2.0
    on_delay_s: float = 3.0
    train_hours: float = 24.0  # a whole day: the demand and ambient cycles are normal at every hour


@dataclass
class FittedDetector:
    detector: object  # models.detectors.AnomalyDetector
    threshold: float
    spec: AlarmDetector

    def grid(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The app's scoring grid (``phm.analytics.training.grid_frame``): means per ``stride_s``
        step, empty steps left out, a sensor missing from a step carries its last value."""
        grid = frame.resample(pd.Timedelta(seconds=self.spec.stride_s), origin="epoch", label="left", closed="left").mean()
        return grid.dropna(how="all").ffill().dropna()

    def first_raise(self, frame: pd.DataFrame, *, after: datetime) -> datetime | None:
        """When the alarm would be raised on ``frame`` at or after ``after``, or None."""
        grid = self.grid(frame)
        if grid.empty:
            return None
        scores = self.detector.score(grid[self.detector.columns])
        return first_raise(scores[scores.index >= pd.Timestamp(after)], self.threshold, self.spec.on_delay_s)

    def residuals(self, frame: pd.DataFrame) -> pd.DataFrame | None:
        """The detector's per-sensor drift residuals on ``frame``'s grid (``Incident.residuals``),
        or None when it has no drift check."""
        grid = self.grid(frame)
        return None if grid.empty else self.detector.drift_residuals(grid[self.detector.columns])


def first_raise(scores: pd.Series, threshold: float, on_delay_s: float) -> datetime | None:
    """The first sample at which the score has stayed at or above ``threshold`` for ``on_delay_s``
    (the alarm state machine's on-delay), or None."""
    above = scores.to_numpy() >= threshold
    pending = None
    for ts, hit in zip(scores.index, above, strict=True):
        if not hit:
            pending = None
            continue
        pending = pending if pending is not None else ts
        if (ts - pending).total_seconds() >= on_delay_s:
            return ts.to_pydatetime()
    return None


def fit_detectors(plant: PlantDef, tags: list[str], spec: AlarmDetector, *, seed: int) -> dict[str, FittedDetector]:
    """One detector per unit, fitted on ``spec.train_hours`` of its healthy simulated operation."""
    from models.detectors import AnomalyDetector

    start = EPOCH - timedelta(hours=spec.train_hours)
    frames, _ = PlantSimulator(plant, seed=seed).sample_frames(start, start + timedelta(hours=spec.train_hours), equipment=tags)
    fitted = {}
    for tag in tags:
        holder = FittedDetector(None, 0.0, spec)
        grid = holder.grid(frames[tag])
        detector = AnomalyDetector(method=spec.method, **spec.params).fit(grid)
        threshold = float(spec.margin * np.nanquantile(detector.score(grid).to_numpy(), spec.quantile))
        fitted[tag] = FittedDetector(detector, threshold, spec)
    return fitted


@dataclass
class OnsetStats:
    """What the simulation met: alarms raised per class, faults never raised on, minutes from fault
    start to the raise (per class)."""

    raised: dict[str, int] = field(default_factory=dict)
    undetected: dict[str, int] = field(default_factory=dict)
    delay_min: dict[str, list[float]] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "raised": dict(self.raised), "undetected": dict(self.undetected),
            "median_delay_min": {k: round(float(np.median(v)), 2) for k, v in self.delay_min.items() if v},
        }


def simulate_alarm_incidents(
    *,
    equipment_types: list[str] | None = None,
    per_class: int = 20,
    seed: int = 0,
    image_size: int = 64,
    missing_rate: float = 0.0,
    taxonomy: dict[str, list[str]] | None = None,
    plant: PlantDef = DEMO_PLANT,
    detector: AlarmDetector | None = None,
    severity: tuple[float, float] = (0.3, 1.5),
    duration_min: tuple[float, float] = (5.0, 480.0),
    offsets_min: tuple[float, ...] = (0.0, 5.0, 15.0),
    late_offset_max_min: float = 60.0,
    onset_cuts: int = 2,
    onset_min: tuple[float, float] = (2.0, 90.0),
    search_min: float = 120.0,
    default_sensor_share: float = 0.3,
    image_share: float = 0.5,
    residual_share: float = 0.75,
    max_tries: int = 4,
    stats: OnsetStats | None = None,
) -> list[Incident]:
    """About ``per_class`` incidents for every class of every equipment type, cut at the detector's
    raise and ``offsets_min`` / one random offset (up to ``late_offset_max_min``) after it.

    Each simulated fault gives up to ``len(offsets_min) + 1 + onset_cuts`` incidents (a cut past
    the simulated span is dropped), so ``per_class`` counts incidents, not faults. Fault size is drawn from
    ``severity``, its ramp from ``duration_min`` (log-uniform: the simulator ramps over 60 % of a
    fault), so slow, weak faults that alarm late are in. ``default_sensor_share`` of the sensor
    faults hit the unit's usual sensor for that fault, the rest a random one. ``image_share`` of
    the incidents carry an inspection image taken at the cut; the rest have none, as most alarms
    in a plant do (nobody photographs the unit at the moment it alarms, and the live simulator
    uploads no images), so the model must answer from sensors and logs alone. ``residual_share``
    of the incidents carry the detector's per-sensor residuals (``Incident.residuals``); the rest
    none, as under a detector without a drift check. ``stats`` collects what was met.
    """
    if not 0.0 <= image_share <= 1.0:
        raise ValueError(f"image_share must be in [0, 1], got {image_share}")
    taxonomy = taxonomy or DEFAULT_TAXONOMY
    types = equipment_types or list(taxonomy)
    detector = detector or AlarmDetector()
    rng = np.random.default_rng(seed)
    stats = stats if stats is not None else OnsetStats()
    units_of = {t: [e for e in plant.equipment if e.equipment_type == t] for t in types}
    for equipment_type, units in units_of.items():
        if not units:
            raise ValueError(f"plant {plant.site_code} has no equipment of type {equipment_type!r}")
    fitted = fit_detectors(plant, [u.tag for us in units_of.values() for u in us], detector, seed=int(rng.integers(2**31)))
    incidents: list[Incident] = []
    for equipment_type in types:
        units = units_of[equipment_type]
        for label in taxonomy[equipment_type]:
            made, budget = 0, max_tries * per_class
            while made < per_class and budget > 0:
                budget -= 1
                unit = units[int(rng.integers(len(units)))]
                cuts = simulate_onset_incident(
                    plant, unit.tag, label, seed=int(rng.integers(2**31)), detector=fitted[unit.tag], image_size=image_size,
                    severity=severity, duration_min=duration_min, offsets_min=offsets_min, late_offset_max_min=late_offset_max_min,
                    onset_cuts=onset_cuts, onset_min=onset_min, search_min=search_min, default_sensor_share=default_sensor_share,
                    image_share=image_share, residual_share=residual_share, stats=stats,
                )
                cuts = cuts[: per_class - made]
                if missing_rate > 0:
                    cuts = [drop_modalities(c, missing_rate, rng) for c in cuts]
                incidents.extend(cuts)
                made += len(cuts)
    return incidents


def simulate_onset_incident(
    plant: PlantDef,
    tag: str,
    label: str,
    *,
    seed: int,
    detector: FittedDetector,
    image_size: int = 64,
    severity: tuple[float, float] = (0.3, 1.5),
    duration_min: tuple[float, float] = (5.0, 480.0),
    offsets_min: tuple[float, ...] = (0.0, 5.0, 15.0),
    late_offset_max_min: float = 60.0,
    onset_cuts: int = 2,
    onset_min: tuple[float, float] = (2.0, 90.0),
    search_min: float = 120.0,
    default_sensor_share: float = 0.3,
    image_share: float = 1.0,
    residual_share: float = 1.0,
    stats: OnsetStats | None = None,
) -> list[Incident]:
    """The incidents of one simulated fault (or healthy stretch): one per cut after the raise."""
    rng = np.random.default_rng(seed)
    unit = plant.get(tag)
    start = EPOCH + timedelta(days=int(rng.integers(60)), seconds=int(rng.integers(86_400)))
    fault_start = start + BASELINE + timedelta(seconds=int(rng.integers(0, 600)))
    offsets = [float(o) for o in offsets_min] + [float(rng.uniform(0, late_offset_max_min))]
    onsets = [float(np.exp(rng.uniform(np.log(onset_min[0]), np.log(onset_min[1])))) for _ in range(onset_cuts)]
    faults: list[ScheduledFault] = []
    if label != NORMAL:
        low, high = np.log(duration_min[0]), np.log(duration_min[1])
        duration = timedelta(minutes=float(np.exp(rng.uniform(low, high))))
        # Any transmitter can drift or stick, the speed pickup too (the plant trial draws its
        # sensor faults from every sensor of the unit; leaving SPEED out left those alarms unseen).
        measures = [s.measure for s in unit.sensors]
        # ``default_sensor_share`` of the sensor faults hit the unit's usual suspect (the simulator's
        # default sensor for the fault: the bearing thermocouple drifts, the flow meter sticks), the
        # rest any sensor: at one half, a pump's six other transmitters shared ~6 faults per class,
        # and the trial's stuck chilled-water return or drifting vibration pickup went unseen.
        usual = default_sensor_for(label, unit) if label in SENSOR_FAULTS else None
        sensor = (usual if usual is not None and rng.random() < default_sensor_share else str(rng.choice(measures))) if label in SENSOR_FAULTS else None
        # The fault lasts past every cut (the simulator repairs a fault at its end).
        end = fault_start + max(duration, timedelta(minutes=search_min + late_offset_max_min + 1))
        # The ramp follows the drawn duration, not the extended end.
        faults = [RampedFault(tag, label, fault_start, end, float(rng.uniform(*severity)), sensor, ramp_s=duration.total_seconds() * 0.6)]
    simulator = PlantSimulator(plant, seed=int(rng.integers(2**31)), faults=faults)
    horizon = fault_start + timedelta(minutes=max(search_min + max(offsets), max(onsets, default=0.0)))
    frames, records = simulator.sample_frames(start, horizon, equipment=[tag])
    frame = frames[tag]
    if label == NORMAL:
        raise_at = fault_start + timedelta(seconds=float(rng.uniform(0, search_min * 60)))
    else:
        raise_at = detector.first_raise(frame[frame.index < pd.Timestamp(fault_start + timedelta(minutes=search_min))], after=fault_start)
    stats = stats if stats is not None else OnsetStats()
    cuts = [fault_start + timedelta(minutes=m) for m in onsets]
    if raise_at is None:
        stats.undetected[label] = stats.undetected.get(label, 0) + 1
    else:
        stats.raised[label] = stats.raised.get(label, 0) + 1
        if label != NORMAL:
            stats.delay_min.setdefault(label, []).append((raise_at - fault_start).total_seconds() / 60)
        cuts = [raise_at + timedelta(minutes=offset) for offset in offsets] + cuts
    residuals = detector.residuals(frame)
    ordered = sorted(records, key=lambda r: r.ts)
    events = events_from_messages([(r.ts, r.level, r.message) for r in ordered])
    incidents = []
    for cut in cuts:
        if cut > horizon:
            continue
        window_start = cut - WINDOW
        sensors = _window(frame, window_start, cut)
        image_seed = int(rng.integers(2**31))
        image = render_inspection_image(unit, cut, faults, size=image_size, seed=image_seed) if rng.random() < image_share else None
        with_residuals = residuals is not None and rng.random() < residual_share
        incidents.append(Incident(
            equipment_type=unit.equipment_type, sensors=sensors, logs=[e for e in events if window_start <= e.ts <= cut],
            # The app's baseline: the hour before the window (phm.analytics.diagnosis.build_incident).
            baseline_logs=[e for e in events if window_start - BASELINE <= e.ts < window_start], image=image,
            image_ref=f"sim:{tag}:{cut:%Y%m%dT%H%M%S}" if image is not None else None, label=label, equipment=tag, description=unit.name,
            residuals=_window(residuals, window_start, cut) if with_residuals else None,
        ))
    return incidents


def _window(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    return frame[(frame.index >= pd.Timestamp(start)) & (frame.index <= pd.Timestamp(end))]


@dataclass(frozen=True)
class RampedFault(ScheduledFault):
    """A fault whose severity ramps in over ``ramp_s`` (as a fault of ``ramp_s / 0.6`` would in the
    simulator), then holds until its end: a long-lasting fault that developed at the drawn speed."""

    ramp_s: float = 60.0

    def profile(self, t_s: np.ndarray) -> np.ndarray:
        start, end = self.start.timestamp(), self.end.timestamp()
        level = np.clip((t_s - start) / max(self.ramp_s, 1.0), 0.0, 1.0) ** 1.5
        return np.where((t_s >= start) & (t_s < end), level * self.severity, 0.0)
