"""Replay of one detector over stored history, in memory: the live scoring code
(:func:`phm.analytics.scoring.score_steps`, chunk by chunk with the same context window) and the
live alarm rules (:func:`phm.alarms.services.advance_condition`: on-delay, deadband, off-delay)
on a condition object that is not an ``AlarmPoint`` row, so nothing live is read or written.

Differences from live operation, on purpose: there is no operator, so every raise is a new alarm
(live, a re-activation before anyone acknowledged the return to normal reuses the open alarm and
is not diagnosed again); and there is no queue, so a diagnosis happens at the simulated instant.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from phm.alarms.services import AlarmPolicy, ConditionStep, Sample, advance_condition
from phm.analytics.models import DetectorConfig, ModelVersion
from phm.analytics.scoring import loaded_detector, score_steps

#: Points per detector kept for the plots (largest score per bucket).
PLOT_POINTS = 2000


@dataclass
class _Condition:
    """The fields of ``AlarmPoint`` that :func:`advance_condition` reads and writes."""

    condition_active: bool = False
    on_pending_since: datetime | None = None
    off_pending_since: datetime | None = None


@dataclass
class ReplayedAlarm:
    raised_at: datetime
    raise_score: float
    peak_score: float
    cleared_at: datetime | None = None


@dataclass
class ReplayResult:
    alarms: list[ReplayedAlarm]
    times: list[float]  # plot buckets, epoch seconds
    scores: list[float]
    steps: int
    seconds: float
    extra: dict = field(default_factory=dict)


def policy_for(*, config: DetectorConfig, version: ModelVersion) -> AlarmPolicy:
    """The policy live scoring uses for this version (``score_incremental``)."""
    return AlarmPolicy(threshold=version.threshold, deadband=config.deadband, on_delay_s=config.on_delay_s, off_delay_s=config.off_delay_s)


def alarms_from_samples(samples: Iterable[Sample], policy: AlarmPolicy, condition: _Condition | None = None,
                        open_alarms: list[ReplayedAlarm] | None = None) -> list[ReplayedAlarm]:
    """Run time-ordered samples through the live chattering filters; return the alarms raised.
    ``condition`` / ``open_alarms`` carry the state across chunks (pass the same objects)."""
    condition = condition if condition is not None else _Condition()
    alarms = open_alarms if open_alarms is not None else []
    current = alarms[-1] if alarms and alarms[-1].cleared_at is None and condition.condition_active else None
    for sample in samples:
        step = advance_condition(condition, sample, policy)
        if step == ConditionStep.RAISE:
            current = ReplayedAlarm(raised_at=sample.ts, raise_score=sample.score, peak_score=sample.score)
            alarms.append(current)
        elif step == ConditionStep.HOLD and current is not None:
            current.peak_score = max(current.peak_score, sample.score)
        elif step == ConditionStep.CLEAR and current is not None:
            current.cleared_at, current = sample.ts, None
    return alarms


def replay_detector(
    *, config: DetectorConfig, version: ModelVersion, start: datetime, end: datetime,
    on_chunk: Callable[[float], None] | None = None,
) -> ReplayResult:
    """Score the grid steps in (start, end] with ``version`` and run them through the alarm rules."""
    clock = time.process_time()
    detector = loaded_detector(version)
    sensors = list(config.sensors.order_by("tag"))
    policy = policy_for(config=config, version=version)
    step = timedelta(seconds=config.stride_s)
    chunk = step * config.max_chunk_steps
    condition, alarms = _Condition(), []
    times: list[np.ndarray] = []
    values: list[np.ndarray] = []
    cursor, steps = start, 0
    while cursor < end:
        until = min(end, cursor + chunk)
        samples = score_steps(config=config, detector=detector, sensors=sensors, after=cursor, until=until)
        alarms_from_samples(samples, policy, condition, alarms)
        if samples:
            times.append(np.array([s.ts.timestamp() for s in samples]))
            values.append(np.array([s.score for s in samples]))
        steps += len(samples)
        cursor = until
        if on_chunk is not None:
            on_chunk((cursor - start) / (end - start))
    bucket_times, bucket_scores = downsample_max(
        np.concatenate(times) if times else np.zeros(0), np.concatenate(values) if values else np.zeros(0), PLOT_POINTS
    )
    return ReplayResult(alarms=alarms, times=bucket_times, scores=bucket_scores, steps=steps, seconds=time.process_time() - clock)


def downsample_max(times: np.ndarray, scores: np.ndarray, points: int) -> tuple[list[float], list[float]]:
    """At most ``points`` buckets of equal length, each with its first time and largest score."""
    if len(times) <= points:
        return [float(t) for t in times], [float(s) for s in scores]
    edges = np.linspace(times[0], times[-1], points + 1)
    index = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, points - 1)
    starts = np.flatnonzero(np.r_[True, np.diff(index) > 0])
    peaks = np.maximum.reduceat(scores, starts)
    return [float(t) for t in times[starts]], [float(s) for s in peaks]


def quantiles(values: Sequence[float], qs: Sequence[float] = (0.5, 0.95)) -> list[float | None]:
    if not values:
        return [None for _ in qs]
    return [float(np.quantile(np.asarray(values, dtype=float), q)) for q in qs]
