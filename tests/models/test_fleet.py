"""models.fleet: one model pooled over units, calibrated per unit, each copy reading its own columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.fleet import fit_fleet, rename_columns


def unit_frame(tags: list[str], seed: int, offset: float, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    load = np.sin(np.arange(n) / 20.0) + 0.1 * rng.standard_normal(n)
    values = np.stack([offset + load, 2 * offset - load + 0.05 * rng.standard_normal(n), load**2 + 0.05 * rng.standard_normal(n)], axis=1)
    index = pd.date_range("2026-03-01", periods=n, freq="s", tz="UTC")
    return pd.DataFrame(values, index=index, columns=tags)


def test_fleet_copies_share_the_model_and_read_their_own_columns():
    frames = {"P-1": unit_frame(["P-1.a", "P-1.b", "P-1.c"], 0, 10.0), "P-2": unit_frame(["P-2.a", "P-2.b", "P-2.c"], 1, 50.0)}
    fit = fit_fleet("pca", {"smooth": 3}, frames, roles=["a", "b", "c"],
                    columns={unit: list(frame.columns) for unit, frame in frames.items()})
    assert fit.shared.columns == ["a", "b", "c"]
    for unit, frame in frames.items():
        detector = fit.units[unit]
        assert detector.columns == list(frame.columns) and detector.model is fit.shared.model
        # calibrated on its own training part: its own offsets are normal, its threshold is its own
        assert np.allclose(detector.standardizer.mean, frame.mean().to_numpy())
        assert detector.predict(frame).mean() < 0.05
    assert fit.units["P-1"].calibration.threshold != fit.units["P-2"].calibration.threshold
    # a unit's copy flags the other unit's operating point (offsets differ by 40)
    other = frames["P-2"].copy()
    other.columns = frames["P-1"].columns
    assert fit.units["P-1"].predict(other).mean() > 0.9


def test_fleet_needs_matching_channel_counts_and_names_the_unit():
    frames = {"P-1": unit_frame(["x", "y", "z"], 0, 1.0), "P-2": unit_frame(["x", "y", "z"], 1, 1.0)[["x", "y"]]}
    with pytest.raises(ValueError, match="P-2"):
        fit_fleet("pca", {}, frames, roles=["a", "b", "c"], columns={"P-1": ["x", "y", "z"], "P-2": ["x", "y"]})


def test_renamed_detector_round_trips_through_save_and_load(tmp_path):
    from models.detectors import AnomalyDetector

    frame = unit_frame(["a", "b", "c"], 2, 3.0)
    detector = AnomalyDetector("pca", smooth=3).fit(frame)
    renamed = rename_columns(detector, {"a": "U.a", "b": "U.b", "c": "U.c"})
    loaded = AnomalyDetector.load(renamed.save(tmp_path / "d"))
    own = frame.rename(columns={"a": "U.a", "b": "U.b", "c": "U.c"})
    assert loaded.columns == ["U.a", "U.b", "U.c"]
    np.testing.assert_allclose(loaded.score(own).to_numpy(), detector.score(frame).to_numpy())
