"""Sensor windows as model input, and the per-sensor residual evidence.

A window of any sampling rate (1 s pumps, 10 s chillers, gaps) is cut into ``seq_len`` equal time
bins; each measure gives three channels per bin:

* ``level``: the bin mean, standardised with the equipment type's normal statistics (a level shift
  such as a hot bearing);
* ``change``: the bin mean minus the mean of the window's first quarter, standardised (a drift or
  ramp that stays inside the normal range of the fleet);
* ``spread``: log of the within-bin standard deviation, standardised (bursts and oscillation
  raise it, a stuck sensor sends it to the floor).

Normal statistics (median and a robust scale per equipment type and measure) come from the
training incidents labelled ``normal`` (all incidents of the type when it has none). A measure the
window lacks is zero in all three channels: the model sees "no deviation", the evidence leaves it out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.diagnosis.types import SensorEvidence

CHANNELS_PER_MEASURE = 3
SPREAD_FLOOR = 1e-4  # log floor of the within-bin standard deviation: a stuck sensor's spread
Z_CLIP = 8.0  # standardised values beyond this carry no more information and upset training


@dataclass
class BinnedWindow:
    level: np.ndarray  # [M, L] bin means (raw units), NaN where the measure is absent
    spread: np.ndarray  # [M, L] log10 within-bin std
    present: np.ndarray  # [M] bool


def bin_window(frame: pd.DataFrame, measures: Sequence[str], seq_len: int) -> BinnedWindow:
    """Bin means and log spreads of each measure over ``seq_len`` equal time bins of the window."""
    n_measures = len(measures)
    level = np.full((n_measures, seq_len), np.nan)
    spread = np.full((n_measures, seq_len), np.nan)
    present = np.zeros(n_measures, dtype=bool)
    if frame is None or frame.empty:
        return BinnedWindow(level, spread, present)
    index = pd.DatetimeIndex(frame.index)
    seconds = (index.asi8 - index.asi8.min()) / 1e9 if index.asi8.dtype.kind == "i" else np.zeros(len(index))
    span = max(float(seconds.max()), 1e-9)
    bins = np.minimum((seconds / span * seq_len).astype(int), seq_len - 1)
    for m, measure in enumerate(measures):
        if measure not in frame.columns:
            continue
        values = pd.to_numeric(frame[measure], errors="coerce").to_numpy(dtype=np.float64)
        ok = np.isfinite(values)
        if ok.sum() < 2:
            continue
        counts = np.bincount(bins[ok], minlength=seq_len).astype(np.float64)
        sums = np.bincount(bins[ok], weights=values[ok], minlength=seq_len)
        squares = np.bincount(bins[ok], weights=values[ok] ** 2, minlength=seq_len)
        filled = counts > 0
        means = np.where(filled, sums / np.maximum(counts, 1), np.nan)
        variances = np.where(counts > 1, squares / np.maximum(counts, 1) - means**2, np.nan)
        stds = np.sqrt(np.clip(variances, 0, None))
        level[m] = _fill_gaps(means)
        spread[m] = np.log10(_fill_gaps(stds) + SPREAD_FLOOR) if np.isfinite(stds).any() else np.log10(SPREAD_FLOOR)
        present[m] = True
    return BinnedWindow(level, spread, present)


def _fill_gaps(values: np.ndarray) -> np.ndarray:
    """Empty bins take the value of the nearest filled bin (linear between them)."""
    ok = np.isfinite(values)
    if ok.all() or not ok.any():
        return values
    positions = np.arange(len(values))
    return np.interp(positions, positions[ok], values[ok])


def change_of(level: np.ndarray) -> np.ndarray:
    quarter = max(level.shape[-1] // 4, 1)
    return level - level[..., :quarter].mean(axis=-1, keepdims=True)


@dataclass
class NormalStats:
    """Per measure: centre and scale of the three channels on normal windows of one equipment type."""

    centre: np.ndarray  # [M, 3]
    scale: np.ndarray  # [M, 3]
    typical_deviation: np.ndarray  # [M] 90th percentile of a normal window's deviation score
    #: [M, len(TREND_TAILS)] robust scale of a normal window's trend breaks (raw units); None in
    #: statistics saved before trend breaks existed.
    trend_scale: np.ndarray | None = None
    #: :mod:`models.diagnosis.dynamics`: [M, 2 M + 2] ARX coefficients and [M, H] robust scale of
    #: the free-run errors on normal windows; None in statistics saved before it.
    dynamics: np.ndarray | None = None
    dynamics_scale: np.ndarray | None = None

    def to_dict(self) -> dict[str, list]:
        data = {"centre": self.centre.tolist(), "scale": self.scale.tolist(),
                "typical_deviation": self.typical_deviation.tolist()}
        for key in ("trend_scale", "dynamics", "dynamics_scale"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key).tolist()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, list]) -> "NormalStats":
        def optional(key: str) -> np.ndarray | None:
            return None if data.get(key) is None else np.asarray(data[key], dtype=np.float64)

        return cls(np.asarray(data["centre"], dtype=np.float64), np.asarray(data["scale"], dtype=np.float64),
                   np.asarray(data["typical_deviation"], dtype=np.float64), optional("trend_scale"),
                   optional("dynamics"), optional("dynamics_scale"))


def _robust_centre_scale(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    centre = float(np.median(finite))
    q25, q75 = np.percentile(finite, [25, 75])
    scale = max(float(q75 - q25) / 1.349, float(np.std(finite)) * 0.1, 1e-6)  # IQR of a Gaussian -> sigma
    return centre, scale


def fit_normal_stats(windows: Sequence[BinnedWindow]) -> NormalStats:
    n_measures = windows[0].level.shape[0]
    centre = np.zeros((n_measures, CHANNELS_PER_MEASURE))
    scale = np.ones((n_measures, CHANNELS_PER_MEASURE))
    for m in range(n_measures):
        rows = [w for w in windows if w.present[m]]
        if not rows:
            continue
        channels = (np.concatenate([w.level[m] for w in rows]), np.concatenate([change_of(w.level[m]) for w in rows]),
                    np.concatenate([w.spread[m] for w in rows]))
        for c, values in enumerate(channels):
            centre[m, c], scale[m, c] = _robust_centre_scale(values)
        centre[m, 1] = 0.0  # a change is measured from zero: the window's own start
    stats = NormalStats(centre, scale, np.ones(n_measures), fit_trend_scale(windows))
    scores = np.stack([deviation_scores(standardise(w, stats), w.present) for w in windows])
    stats.typical_deviation = np.percentile(scores, 90, axis=0)
    return stats


def standardise(window: BinnedWindow, stats: NormalStats) -> np.ndarray:
    """``[M, 3, L]`` standardised channels (zeros for absent measures), clipped to ±Z_CLIP."""
    raw = np.stack([window.level, change_of(window.level), window.spread], axis=1)  # [M, 3, L]
    z = (raw - stats.centre[:, :, None]) / stats.scale[:, :, None]
    z[~window.present] = 0.0
    return np.clip(np.nan_to_num(z, nan=0.0), -Z_CLIP, Z_CLIP)


def deviation_scores(z: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per measure: root mean square of the three channels over the second half of the window."""
    half = z[:, :, z.shape[-1] // 2 :]
    scores = np.sqrt((half**2).mean(axis=(1, 2)))
    return np.where(present, scores, 0.0)


def direction(z: np.ndarray) -> str:
    """How one measure's window deviates from normal: its ``[3, L]`` standardised channels."""
    half = z[:, z.shape[-1] // 2 :]
    level, change, spread = half[0].mean(), half[1].mean(), half[2].mean()
    if spread < -2.5:
        return "flat"
    shift = level if abs(level) >= abs(change) else change
    if abs(shift) >= 1.5:
        return "high" if shift > 0 else "low"
    return "mixed"


#: Share of the evidence that goes to the detector's residuals when some sensor is past its limit.
RESIDUAL_EVIDENCE_WEIGHT = 0.5


def sensor_evidence(z: np.ndarray, present: np.ndarray, measures: Sequence[str], stats: NormalStats,
                    residual_tail: np.ndarray | None = None) -> list[SensorEvidence]:
    """Residual share of each present measure, largest first; shares sum to 1.

    The share is the measure's deviation score in excess of what a normal window typically shows
    (so a noisy sensor that is always a little off does not take the credit); when nothing exceeds
    normal, the raw scores are shared out instead.

    With ``residual_tail`` (:func:`residual_tails`: the raising detector's per-sensor residual in
    units of its limit) and some sensor past its limit, ``RESIDUAL_EVIDENCE_WEIGHT`` of the shares
    goes to those sensors by the size of their residuals, and a sensor whose window reads "mixed"
    takes its residual's sign. Live check, 6 December: a bearing thermocouple 0.85 °C into a drift,
    twice its limit against the others' prediction, was diagnosed a sensor drift while the evidence
    named the suction and discharge pressures (the window's daily wander) and put the thermocouple
    last, "mixed": the operator would have checked the wrong transmitter.
    """
    scores = deviation_scores(z, present)
    excess = np.where(present, np.clip(scores - stats.typical_deviation, 0, None), 0.0)
    weights = excess if excess.sum() > 1e-9 else np.where(present, scores + 1e-6, 0.0)
    if weights.sum() <= 0:
        return []
    shares = weights / weights.sum()
    past = np.zeros(len(shares))
    if residual_tail is not None:
        finite = np.nan_to_num(np.asarray(residual_tail, dtype=np.float64), nan=0.0)
        past = np.where(present & (np.abs(finite) >= 1.0), np.abs(finite), 0.0)
        if past.sum() > 0:
            shares = RESIDUAL_EVIDENCE_WEIGHT * past / past.sum() + (1 - RESIDUAL_EVIDENCE_WEIGHT) * shares

    def how(m: int) -> str:
        seen = direction(z[m])
        if seen == "mixed" and past[m] > 0:
            return "high" if residual_tail[m] > 0 else "low"
        return seen

    order = [m for m in np.argsort(-shares, kind="stable") if present[m]]
    evidence = [SensorEvidence(sensor=measures[m], share=float(shares[m]), direction=how(m)) for m in order]
    total = sum(e.share for e in evidence)  # float rounding: make the shares sum to exactly 1
    if evidence and total != 1.0:
        first = evidence[0]
        evidence[0] = SensorEvidence(first.sensor, first.share + (1.0 - total), first.direction)
    return evidence


def window_summary(z: np.ndarray, tail_bins: int = 0) -> np.ndarray:
    """Per channel: mean of the first half, mean and standard deviation of the second half
    (``[M * 3 * 3]``): where each measure started, where it went and how much it moved; with
    ``tail_bins``, also the mean of the last ``tail_bins`` bins (``[M * 3 * 4]``): where it is now.
    An alarm raised minutes into a fault has the fault in the last few bins of a 30-minute window
    only, which the half-window means dilute."""
    half = z.shape[-1] // 2
    parts = [z[..., :half].mean(-1), z[..., half:].mean(-1), z[..., half:].std(-1)]
    if tail_bins > 0:
        parts.append(z[..., -tail_bins:].mean(-1))
    return np.concatenate(parts, axis=-1).ravel()


#: Length of :func:`cross_measure_summary`.
N_CROSS_SUMMARY = 6 * CHANNELS_PER_MEASURE


def cross_measure_summary(z: np.ndarray, present: np.ndarray, tail_bins: int = 3) -> np.ndarray:
    """Statistics over the present measures that do not depend on *which* measure moved
    (``[6 * 3]``): per channel, the largest and smallest mean of the last ``tail_bins`` bins and of
    the second half, and the largest and second-largest absolute tail mean.

    The per-measure summary ties a pattern to a channel: a stuck or drifting transmitter is learnt
    per sensor, and a pump has seven, so the model saw few faults of each (the plant trial's stuck
    discharge-pressure and chilled-water-return sensors read as "no known fault"). "One measure
    flat or walking away while the others stay normal" is the sensor-fault signature on any sensor;
    "several move together" is a process fault's. These statistics carry it whichever sensor it is.
    """
    if not present.any():
        return np.zeros(N_CROSS_SUMMARY)
    mine = z[present]  # [P, 3, L]
    tail = mine[..., -max(tail_bins, 1):].mean(-1)  # [P, 3]
    half = mine[..., mine.shape[-1] // 2 :].mean(-1)
    ranked = -np.sort(-np.abs(tail), axis=0)  # per channel, largest first
    second = ranked[1] if len(ranked) > 1 else np.zeros(CHANNELS_PER_MEASURE)
    return np.concatenate([tail.max(0), tail.min(0), half.max(0), half.min(0), ranked[0], second])


#: Per measure in :func:`residual_summary`: the mean of the last bins and of the second half.
RESIDUALS_PER_MEASURE = 2
#: Statistics over the measures in :func:`residual_summary`, the presence flag included.
N_RESIDUAL_CROSS = 7


def residual_summary_size(n_measures: int) -> int:
    return RESIDUALS_PER_MEASURE * n_measures + N_RESIDUAL_CROSS


def _residual_window(residuals: pd.DataFrame | None, measures: Sequence[str], seq_len: int) -> BinnedWindow | None:
    """``Incident.residuals`` in the window's bins; None without residuals."""
    if residuals is None or residuals.empty:
        return None
    return bin_window(residuals.dropna(how="all"), measures, seq_len)


def _one_against_several(values: np.ndarray, limit: float) -> tuple[float, float, float]:
    """Over the present measures' ``values``: the largest absolute one with its sign, the second
    largest absolute one ("one measure alone" against "several together"), and the share past ``limit``."""
    order = np.argsort(-np.abs(values), kind="stable")
    second = abs(float(values[order[1]])) if len(values) > 1 else 0.0
    return float(values[order[0]]), second, float(np.mean(np.abs(values) > limit))


def residual_tails(residuals: pd.DataFrame | None, measures: Sequence[str], seq_len: int, tail_bins: int = 3) -> np.ndarray | None:
    """``[M]`` each measure's residual (``Incident.residuals``, units of its limit) over the last
    ``tail_bins`` of ``seq_len`` bins; NaN for a measure without one; None without residuals."""
    window = _residual_window(residuals, measures, seq_len)
    if window is None:
        return None
    tails = np.full(len(measures), np.nan)
    tails[window.present] = window.level[window.present, -max(tail_bins, 1):].mean(-1)
    return tails


def residual_summary(residuals: pd.DataFrame | None, measures: Sequence[str], seq_len: int, tail_bins: int = 3) -> np.ndarray:
    """The plant detector's per-sensor residuals over the window (``Incident.residuals``, in units
    of their training limit) as ``[2 M + 7]`` statistics; zeros, the presence flag included, when
    the incident has none (a detector without a drift check).

    The window's own statistics are relative to a fleet's normal spread: a bearing thermocouple
    0.7 °C off, or the first millimetre of a slow misalignment, sits inside the daily swing of
    ambient and load, which is why the detector's drift check (each sensor predicted from the unit's
    others) raises on it minutes before the window shows it. Per measure: the mean of the last
    ``tail_bins`` bins and of the second half; over the measures: largest and smallest tail mean,
    the largest absolute one with its sign, the second largest absolute one ("one sensor alone"
    against "several together"), the share of measures past their limit, and the flag. Values are
    compressed as ``sign(x) log(1 + |x|)``: small residuals carry the distinction, large ones only
    say "far".
    """
    out = np.zeros(residual_summary_size(len(measures)))
    window = _residual_window(residuals, measures, seq_len)
    if window is None or not window.present.any():
        return out
    level = np.sign(window.level) * np.log1p(np.abs(window.level))
    tail = np.nan_to_num(level[:, -max(tail_bins, 1):].mean(-1))
    half = np.nan_to_num(level[:, seq_len // 2 :].mean(-1))
    per_measure = np.where(window.present[:, None], np.stack([tail, half], axis=1), 0.0)
    mine = tail[window.present]
    largest, second, over_limit = _one_against_several(mine, np.log1p(1.0))
    cross = [float(mine.max()), float(mine.min()), abs(largest), largest, second, over_limit, 1.0]
    out[: per_measure.size] = per_measure.ravel()
    out[per_measure.size :] = cross
    return out


#: Trend breaks: the mean of the last ``r`` bins of each measure against the straight line through
#: the ``TREND_FIT_BINS`` bins before them, for each ``r`` here.
TREND_TAILS = (3, 6)
TREND_FIT_BINS = 12
#: Statistics over the measures in :func:`trend_summary`, per tail.
N_TREND_CROSS = 3


def trend_summary_size(n_measures: int) -> int:
    return len(TREND_TAILS) * (n_measures + N_TREND_CROSS)


def trend_breaks(level: np.ndarray) -> np.ndarray:
    """``[M, len(TREND_TAILS)]``: how far each measure's last ``r`` bins sit off the line through the
    ``TREND_FIT_BINS`` bins before them (raw units; NaN where the measure is absent).

    A transmitter that starts to walk away bends its own trend while every other measure keeps
    theirs: a bearing thermocouple drifting 3 °C an hour is 0.25 °C off five minutes in, inside the
    fleet's normal level and the window's daily change, but several times the few hundredths of a
    degree that a smooth thermal signal leaves around its own recent line."""
    n_bins = level.shape[-1]
    out = np.full((level.shape[0], len(TREND_TAILS)), np.nan)
    for t, tail in enumerate(TREND_TAILS):
        begin, end = max(0, n_bins - tail - TREND_FIT_BINS), n_bins - tail
        if end - begin < 2:
            continue
        x = np.arange(begin, end, dtype=np.float64)
        y = level[:, begin:end]
        slope = ((x - x.mean()) * (y - y.mean(-1, keepdims=True))).sum(-1) / ((x - x.mean()) ** 2).sum()
        at_tail = y.mean(-1) + slope * (np.arange(end, n_bins).mean() - x.mean())
        out[:, t] = level[:, end:].mean(-1) - at_tail
    return out


def fit_trend_scale(windows: Sequence[BinnedWindow]) -> np.ndarray:
    """Robust scale of the trend breaks of normal windows, per measure and tail."""
    breaks = np.stack([trend_breaks(w.level) for w in windows])  # [N, M, T]
    scale = np.ones(breaks.shape[1:])
    for m in range(breaks.shape[1]):
        for t in range(breaks.shape[2]):
            scale[m, t] = _robust_centre_scale(breaks[:, m, t])[1]
    return scale


def trend_summary(window: BinnedWindow, stats: NormalStats) -> np.ndarray:
    """The window's :func:`trend_breaks` over their normal scale as ``[T (M + 3)]`` statistics:
    per measure and tail the break; per tail the largest absolute break with its sign, the second
    largest absolute one ("one measure alone" against "several together") and the share of
    measures past three normal scales. Compressed as ``sign(x) log(1 + |x|)``; zeros for absent
    measures and for statistics without a trend scale."""
    if stats.trend_scale is None or not window.present.any():
        return np.zeros(trend_summary_size(window.level.shape[0]))
    return scaled_breaks_summary(trend_breaks(window.level) / stats.trend_scale, window.present)


def scaled_breaks_summary(z: np.ndarray, present: np.ndarray) -> np.ndarray:
    """``[T (M + 3)]`` from ``[M, T]`` breaks in normal scales (NaN where unknown): per measure and
    column the break; per column the largest absolute break with its sign, the second largest and
    the share of present measures past three scales; ``sign(x) log(1 + |x|)``, absent measures zero."""
    z = np.nan_to_num(z, nan=0.0)
    z[~present] = 0.0
    compressed = np.sign(z) * np.log1p(np.abs(z))
    cross = []
    for t in range(z.shape[1]):
        cross += _one_against_several(compressed[present, t], np.log1p(3.0))
    return np.concatenate([compressed.ravel(), cross])
