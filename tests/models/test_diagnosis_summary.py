"""The diagnoser's sensor-window summary: statistics that see *that* one measure went flat or walked
away, whichever measure it is (models.diagnosis.features.cross_measure_summary)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models.backbone import tiny_random_backbone
from models.diagnosis import FaultDiagnoser, simulate_incidents
from models.diagnosis.features import N_CROSS_SUMMARY, cross_measure_summary

torch.set_num_threads(1)


def window(measures: int = 6, length: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.5, (measures, 3, length))


def test_a_stuck_sensor_reads_the_same_whichever_sensor_it_is():
    present = np.ones(6, dtype=bool)
    base = window()
    first, fourth = base.copy(), base.copy()
    first[0, 2, -4:] = -8.0  # spread at the floor for the last bins: stuck
    fourth[3, 2, -4:] = -8.0
    a, b = cross_measure_summary(first, present), cross_measure_summary(fourth, present)
    assert a.shape == (N_CROSS_SUMMARY,)
    # the smallest tail spread is the stuck one's in both, wherever it sits
    assert a[3 + 2] == b[3 + 2] == -8.0
    healthy = cross_measure_summary(base, present)
    assert healthy[3 + 2] > -3.0


def test_one_sensor_walking_away_differs_from_several_moving_together():
    present = np.ones(6, dtype=bool)
    alone, together = window(seed=1), window(seed=1)
    alone[2, 1, -8:] = 5.0  # one measure's change channel
    together[[1, 2, 4], 1, -8:] = 5.0
    a, b = cross_measure_summary(alone, present), cross_measure_summary(together, present)
    largest, second = slice(12, 15), slice(15, 18)
    assert a[largest][1] == b[largest][1] == 5.0
    assert a[second][1] < 2.0 and b[second][1] == 5.0


def test_absent_measures_are_left_out_and_an_empty_window_is_zeros():
    z = window()
    z[5] = 0.0
    present = np.array([True] * 5 + [False])
    z[:5, 0, :] = 3.0  # every present measure's level is high: the absent one's zeros must not be the minimum
    assert cross_measure_summary(z, present)[3] == 3.0
    assert not cross_measure_summary(z, np.zeros(6, dtype=bool)).any()


@pytest.mark.parametrize("option", ["cross_summary", "residual_summary", "trend_summary", "dynamics_summary"])
def test_a_diagnoser_saved_before_a_summary_option_still_loads(tmp_path, option):
    """cross_summary, residual_summary (the detector's residuals, tests/models/test_diagnosis_residuals.py)
    trend_summary (tests/models/test_diagnosis_trend.py), whose normal statistics had no trend scale,
    and dynamics_summary (tests/models/test_diagnosis_dynamics.py), whose had no dynamics model."""
    backbone = tiny_random_backbone(hidden_size=32, num_layers=2)
    incidents = simulate_incidents(equipment_types=["chiller"], per_class=2, seed=0)
    old = FaultDiagnoser(backbone=backbone, epochs=1, image_epochs=1, **{option: False}).fit(incidents)
    folder = old.save(tmp_path / "old")
    document = json.loads((folder / "config.json").read_text())
    del document["config"][option]  # as written before the option existed
    if option == "trend_summary":  # nor did its normal statistics have a trend scale
        for stats in document["stats"].values():
            del stats["trend_scale"]
    if option == "dynamics_summary":
        for stats in document["stats"].values():
            assert "dynamics" not in stats and "dynamics_scale" not in stats
    (folder / "config.json").write_text(json.dumps(document))
    loaded = FaultDiagnoser.load(folder, backbone=backbone)
    assert getattr(loaded.config, option) is False
    assert loaded.predict_proba(incidents[:1])[0] == old.predict_proba(incidents[:1])[0]
    assert loaded.predict(incidents[:2]) == old.predict(incidents[:2])
    new = FaultDiagnoser(backbone=backbone, epochs=1, image_epochs=1).fit(incidents)
    assert getattr(new.config, option) is True
    reloaded = FaultDiagnoser.load(new.save(tmp_path / "new"), backbone=backbone)
    assert getattr(reloaded.config, option) is True
    assert reloaded.predict_proba(incidents[:1])[0] == new.predict_proba(incidents[:1])[0]
