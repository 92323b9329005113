"""Incremental scoring: score only the grid steps after the detector's cursor, store the scores,
and run them through the alarm state machine, chunk by chunk in time order, so a backlog after
downtime catches up in order.

Each chunk commits the cursor advance (a conditional update on the old cursor: a second worker
scoring the same detector finds the cursor moved and stops), its scores and its alarm
transitions together. Detectors load once per worker process, on first use (after the fork).
"""

from __future__ import annotations

import pandas as pd

import logging
from pathlib import Path
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from phm.alarms.services import AlarmPolicy, Sample, evaluate_scores
from phm.analytics.models import AnomalyScore, DetectorConfig, ModelVersion
from phm.analytics.training import active_version, artifacts_root, grid_frame
from phm.telemetry.fields import EPOCH, us_to_datetime
from phm.telemetry.selectors import latest_values

log = logging.getLogger(__name__)

_LOADED: dict[tuple[str, float], object] = {}  # (artifact folder, created_at) -> AnomalyDetector, per process
_MAX_LOADED = 32


def loaded_detector(version: ModelVersion):
    """The version's detector, loaded from its artifact the first time this process needs it.
    Keyed by folder and creation time, not the row id alone: a recreated database (or a backtest
    on another one) may reuse ids for other models."""
    key = (str(artifacts_root() / version.artifact), version.created_at.timestamp())
    detector = _LOADED.get(key)
    if detector is None:
        from models.detectors import AnomalyDetector

        if len(_LOADED) >= _MAX_LOADED:
            _LOADED.pop(next(iter(_LOADED)))
        detector = AnomalyDetector.load(Path(key[0]), backbone=shared_backbone(version.method, version.params))
        _LOADED[key] = detector
    return detector


_BACKBONES: dict[tuple, object] = {}  # backbone settings -> loaded frozen language model, per process


def shared_backbone(method: str, params: dict):
    """One loaded language model per backbone setting for every ``reprogram`` detector of this
    process (a fleet of 16 members would otherwise hold 16 copies); it is frozen, so sharing it
    changes no score. None for other methods (the detector loads what it needs)."""
    if method != "reprogram":
        return None
    from models.detectors import DetectorParams

    p = DetectorParams.for_method(method, **params)
    if p.llm == "none":
        return None
    key = (p.backbone_source, p.num_layers, p.device, p.quantization, p.llm, p.seed if p.llm == "random" else None)
    if key not in _BACKBONES:
        from models.backbone import load_backbone

        _BACKBONES[key] = load_backbone(p.backbone_source, device=p.device, num_layers=p.num_layers, random_init=p.llm == "random",
                                        seed=p.seed, quantization=p.quantization)
    return _BACKBONES[key]


@dataclass(slots=True)
class ScoringResult:
    steps: int = 0
    chunks: int = 0
    transitions: int = 0
    scored_until: datetime | None = None
    stopped: str = ""  # why it stopped early, if it did


def _floor_to_grid(value: datetime, step: timedelta) -> datetime:
    return EPOCH + step * math.floor((value - EPOCH) / step)


def complete_until(*, config: DetectorConfig, sensors) -> datetime | None:
    """The last grid step whose readings have all arrived: every sensor has a reading at or after
    the step's last expected sample (step start + stride - that sensor's sampling period)."""
    step = timedelta(seconds=config.stride_s)
    latest = latest_values(sensors=sensors)
    if len(latest) < len(sensors):
        return None  # some sensor never reported
    newest_common = us_to_datetime(min(value.ts_us for value in latest.values()))
    slack = timedelta(seconds=min(s.sampling_period_s for s in sensors))
    return _floor_to_grid(newest_common - step + min(slack, step), step)


def score_steps(*, config: DetectorConfig, detector, sensors, after: datetime, until: datetime) -> list[Sample]:
    """Scores of the grid steps in (after, until], with ``window_s`` of history before them as the
    detector's context: what one chunk of live scoring computes, and what a backtest replays."""
    step = timedelta(seconds=config.stride_s)
    frame = grid_frame(config=config, start=after + step - timedelta(seconds=config.window_s), end=until + step, sensors=sensors)
    if frame.empty:
        return []
    scores = scores_by_segment(detector=detector, frame=frame, max_gap_s=config.window_s)
    if scores.empty:
        return []
    judged = judged_steps(config=config, sensors=sensors, index=frame.index).reindex(scores.index, fill_value=False)
    fresh = scores[(scores.index > after) & (scores.index <= until) & judged]
    return [Sample(ts.to_pydatetime(), float(value)) for ts, value in fresh.items() if math.isfinite(value)]


def scores_by_segment(*, detector, frame: pd.DataFrame, max_gap_s: float) -> pd.Series:
    """The detector's scores, each stretch between gaps longer than ``max_gap_s`` scored on its own:
    the detector's smoothing and hold checks count rows, and must not carry a value from before an
    outage (or an hour earlier, in sparse history) into the rows after it."""
    starts = frame.index.to_series().diff() > pd.Timedelta(seconds=max_gap_s)
    parts = [part for _, part in frame.groupby(starts.cumsum().to_numpy()) if len(part) >= 2]
    return pd.concat([detector.score(part) for part in parts]) if parts else pd.Series(dtype=float)


#: Share of a step's context window that must hold grid rows for the step to be judged.
MIN_WINDOW_COVERAGE = 0.05


def judged_steps(*, config: DetectorConfig, sensors, index: pd.DatetimeIndex) -> pd.Series:
    """Per grid row: whether its ``window_s`` of context holds enough rows to judge it (at least
    two, and ``MIN_WINDOW_COVERAGE`` of what the sensors' sampling gives). Sparse stretches (hourly
    history under a 1 Hz detector, the first seconds after an outage) are left unscored rather than
    read as a frozen or jumping signal."""
    period = max(config.stride_s, min((s.sampling_period_s for s in sensors), default=config.stride_s))
    expected = config.window_s / period
    counts = pd.Series(1.0, index=index).rolling(pd.Timedelta(seconds=config.window_s)).sum()
    return counts >= max(2.0, MIN_WINDOW_COVERAGE * expected)


def score_incremental(*, config: DetectorConfig, max_chunks: int | None = None) -> ScoringResult:
    """Score every complete grid step after the cursor, oldest first."""
    result = ScoringResult(scored_until=config.scored_until)
    version = active_version(config=config)
    if version is None:
        result.stopped = "no active model version"
        return result
    sensors = list(config.sensors.order_by("tag"))
    horizon = complete_until(config=config, sensors=sensors)
    step = timedelta(seconds=config.stride_s)
    # train_end is exclusive: the first step to score is the one holding it (or right after it).
    cursor = config.scored_until or _floor_to_grid(version.train_end - timedelta(microseconds=1), step)
    if horizon is None or horizon <= cursor:
        result.stopped = "up to date"
        return result
    detector = loaded_detector(version)
    policy = AlarmPolicy(threshold=version.threshold, deadband=config.deadband, on_delay_s=config.on_delay_s, off_delay_s=config.off_delay_s)
    while cursor < horizon and (max_chunks is None or result.chunks < max_chunks):
        chunk_end = min(horizon, cursor + step * config.max_chunk_steps)
        samples = score_steps(config=config, detector=detector, sensors=sensors, after=cursor, until=chunk_end)
        with transaction.atomic():
            moved = DetectorConfig.objects.filter(pk=config.pk).filter(
                Q(scored_until=config.scored_until) if config.scored_until is not None else Q(scored_until__isnull=True)
            ).update(scored_until=chunk_end)
            if not moved:
                result.stopped = "another worker scored these steps"
                return result
            AnomalyScore.objects.bulk_create(
                [AnomalyScore(config=config, ts=s.ts, score=s.score, threshold=version.threshold, version=version) for s in samples],
                batch_size=2000, ignore_conflicts=True,
            )
            transitions = evaluate_scores(
                equipment=config.equipment, source=config.alarm_source, samples=samples, policy=policy,
                label=f"{config.name} ({config.method} v{version.version})",
            ) if samples else []
        config.scored_until = cursor = chunk_end
        result.steps += len(samples)
        result.chunks += 1
        result.transitions += len(transitions)
        result.scored_until = chunk_end
    if cursor < horizon:
        result.stopped = "chunk limit reached"
    return result


def due_configs(*, now: datetime | None = None) -> list[int]:
    """Claim the detectors whose scoring interval has passed (conditional update per detector, so
    two beat ticks or schedulers never queue the same run twice); return their ids."""
    now = now or timezone.now()
    due = Q(next_scoring_at__isnull=True) | Q(next_scoring_at__lte=now)
    claimed: list[int] = []
    candidates = DetectorConfig.objects.filter(due, enabled=True, versions__is_active=True).values_list("pk", "scoring_interval_s")
    for pk, interval in candidates:
        if DetectorConfig.objects.filter(due, pk=pk).update(next_scoring_at=now + timedelta(seconds=interval)):
            claimed.append(pk)
    return claimed


def warm_up() -> int:
    """Load every active detector into this worker process (called after the fork, when the worker
    starts), so the first scoring run does not pay for imports and weights; return how many."""
    versions = ModelVersion.objects.filter(is_active=True, config__enabled=True)
    loaded = 0
    for version in versions:
        try:
            loaded_detector(version)
            loaded += 1
        except Exception:  # a broken artifact must not stop the worker; scoring reports it later
            log.exception("could not load detector version %s", version.pk)
    return loaded
