"""HealthIndicator: healthy data scores 1, drift lowers it, failure calibration, persistence;
and on C-MAPSS FD001 (skips without the shared data) it falls over each engine's life."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.evaluate import shared_data_dir
from models.health import HealthIndicator


def drifting(n: int = 300, *, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    wear = np.linspace(0, 1, n) ** 2
    return pd.DataFrame({"a": 5 * wear + rng.normal(0, 0.2, n), "b": -3 * wear + rng.normal(0, 0.2, n),
                         "constant": 1.0}, index=pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"))


def test_healthy_rows_score_about_one_and_drift_lowers_health():
    frame = drifting()
    health = HealthIndicator().fit(frame.iloc[:60]).transform(frame)
    assert health.index.equals(frame.index)
    assert health.iloc[:60].mean() > 0.9
    assert health.iloc[-10:].max() < 0.3
    assert ((health >= 0) & (health <= 1)).all()


def test_failure_calibration_puts_zero_at_the_failure_distance():
    frame = drifting()
    indicator = HealthIndicator().fit(frame.iloc[:60])
    end = indicator.distance(frame).iloc[-1]
    indicator.calibrate_failure([end, end])
    assert indicator.transform(frame).iloc[-1] == pytest.approx(0.0, abs=1e-9)
    assert indicator.transform(frame.iloc[:60]).mean() > 0.9


def test_constant_columns_are_ignored_and_bad_input_is_named():
    indicator = HealthIndicator().fit(drifting().iloc[:60])
    assert indicator.columns_ == ["a", "b"]
    with pytest.raises(ValueError, match="lacks column"):
        indicator.transform(pd.DataFrame({"a": [1.0] * 20}))
    with pytest.raises(ValueError, match="at least"):
        HealthIndicator().fit(drifting().iloc[:5])


def test_save_and_load_give_the_same_indicator(tmp_path):
    frame = drifting()
    indicator = HealthIndicator(span=5).fit(frame.iloc[:60]).calibrate_failure([8.0])
    loaded = HealthIndicator.load(indicator.save(tmp_path / "hi"))
    np.testing.assert_allclose(loaded.transform(frame), indicator.transform(frame))


def test_health_falls_over_cmapss_engine_lives():
    data = shared_data_dir() / "cmapss"
    if not (data / "train_FD001.txt").is_file():
        pytest.skip("C-MAPSS FD001 not in the shared data")
    from models.datasets.cmapss import load_fd001

    frame = load_fd001(data)
    sensors = [c for c in frame.columns if c.startswith("sensor_")]
    correlations, starts, ends = [], [], []
    for _, unit in list(frame.groupby("unit"))[:20]:
        health = HealthIndicator().fit(unit[sensors].iloc[:30]).transform(unit[sensors])
        correlations.append(pd.Series(health.to_numpy()).corr(unit["cycle"].reset_index(drop=True), method="spearman"))
        starts.append(health.iloc[:30].mean())
        ends.append(health.iloc[-5:].mean())
    assert np.median(correlations) < -0.7
    assert np.mean(ends) < 0.5 < np.mean(starts)
