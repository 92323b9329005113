"""Trend breaks: each measure's last minutes against the line through its own recent past
(models.diagnosis.features.trend_breaks / trend_summary). A transmitter that starts to walk away is
a fraction of a unit off five minutes in, inside the fleet's normal level and the window's daily
change, yet plainly off its own smooth line."""

from __future__ import annotations

import numpy as np

from models.diagnosis.features import (
    TREND_TAILS, BinnedWindow, NormalStats, bin_window, fit_normal_stats, trend_breaks, trend_summary, trend_summary_size,
)
from tests.models.simulated_windows import simulated_window


def test_a_straight_or_curving_signal_has_no_break_and_a_bend_in_one_measure_does():
    bins = np.arange(32, dtype=np.float64)
    level = np.stack([2.0 + 0.1 * bins, 5.0 - 0.03 * bins, 1.0 + 0.1 * bins])
    level[2, -6:] += 0.4 * np.arange(1, 7)  # the third measure walks away over the last six bins
    breaks = trend_breaks(level)
    assert breaks.shape == (3, len(TREND_TAILS))
    assert np.allclose(breaks[:2], 0.0)
    assert (breaks[2] > 1.0).all()


def test_an_absent_measure_gives_nan_breaks_and_zeros_in_the_summary():
    level = np.vstack([np.linspace(0, 1, 32), np.full(32, np.nan)])
    assert np.isnan(trend_breaks(level)[1]).all()
    window = BinnedWindow(level, np.zeros_like(level), np.array([True, False]))
    stats = NormalStats(np.zeros((2, 3)), np.ones((2, 3)), np.ones(2), np.ones((2, len(TREND_TAILS))))
    summary = trend_summary(window, stats)
    assert summary.shape == (trend_summary_size(2),)
    assert np.isfinite(summary).all()


def test_statistics_saved_without_a_trend_scale_give_a_zero_summary_and_round_trip():
    level = np.linspace(0, 1, 32)[None, :]
    window = BinnedWindow(level, np.zeros_like(level), np.array([True]))
    old = NormalStats.from_dict({"centre": [[0, 0, 0]], "scale": [[1, 1, 1]], "typical_deviation": [1]})
    assert old.trend_scale is None and "trend_scale" not in old.to_dict()
    assert not trend_summary(window, old).any()
    new = NormalStats(np.zeros((1, 3)), np.ones((1, 3)), np.ones(1), np.full((1, len(TREND_TAILS)), 0.5))
    assert np.array_equal(NormalStats.from_dict(new.to_dict()).trend_scale, new.trend_scale)


def test_a_thermocouple_drifting_five_minutes_stands_out_of_normal_windows():
    measures = ["VIB", "TEMP_BRG", "CURRENT", "PRESS_DIS", "PRESS_SUC", "FLOW", "SPEED"]
    normal = [bin_window(simulated_window("normal", 100 + s), measures, 32) for s in range(40)]
    stats = fit_normal_stats(normal)
    assert stats.trend_scale is not None and stats.trend_scale.shape == (len(measures), len(TREND_TAILS))
    brg = measures.index("TEMP_BRG")
    drifting = [trend_summary(bin_window(simulated_window("sensor_drift", 200 + s), measures, 32), stats) for s in range(12)]
    healthy = [trend_summary(bin_window(simulated_window("normal", 300 + s), measures, 32), stats) for s in range(12)]
    short_tail = 0  # the summary's first block: per measure, the break of the shortest tail
    drift_breaks = np.array([d[brg * len(TREND_TAILS) + short_tail] for d in drifting])
    normal_breaks = np.array([h[brg * len(TREND_TAILS) + short_tail] for h in healthy])
    # compressed log1p(z): 0.9 is 1.5 normal scales off the line, 0.6 is 0.8. The thermocouple
    # wanders with the load behind its 15-minute thermal lag, so five minutes of drift is a weak
    # (not a certain) sign on its own; the model weighs it with the other measures staying on line.
    assert np.median(drift_breaks) > 0.9, drift_breaks
    assert np.median(np.abs(normal_breaks)) < 0.6, normal_breaks
    # and it ranks above a healthy window's break (either sign) in most pairs
    assert np.mean(drift_breaks[:, None] > np.abs(normal_breaks)[None, :]) > 0.75
