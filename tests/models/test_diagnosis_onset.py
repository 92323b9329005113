"""Training incidents cut where the configured detector raises (models.diagnosis.onset), the alarm's
"no known fault" reading of the normal class, and temperature scaling of the diagnoser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import torch

from models.backbone import tiny_random_backbone
from models.diagnosis import NO_KNOWN_FAULT, NORMAL, FaultDiagnoser, simulate_incidents
from models.diagnosis.onset import AlarmDetector, OnsetStats, first_raise, simulate_alarm_incidents

torch.set_num_threads(1)
QUICK = AlarmDetector(train_hours=2.0)


def series(values: list[float]) -> pd.Series:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return pd.Series(values, index=pd.DatetimeIndex([start + timedelta(seconds=i) for i in range(len(values))]))


def test_first_raise_waits_out_the_on_delay():
    scores = series([0, 2, 2, 0, 2, 2, 2, 2, 0])
    assert first_raise(scores, 1.0, 3.0) == scores.index[7].to_pydatetime()  # 4..7: above for 3 s
    assert first_raise(scores, 1.0, 0.0) == scores.index[1].to_pydatetime()
    assert first_raise(scores, 5.0, 0.0) is None


def test_fault_incidents_are_cut_at_the_detectors_raise_and_after_it():
    stats = OnsetStats()
    incidents = simulate_alarm_incidents(equipment_types=["chiller"], per_class=4, seed=1, detector=QUICK, stats=stats)
    labels = [i.label for i in incidents]
    assert {label: labels.count(label) for label in set(labels)} == {"normal": 4, "condenser_fouling": 4, "sensor_drift": 4, "stuck_sensor": 4}
    assert stats.raised["condenser_fouling"] >= 1
    assert all(0 <= d <= 120 for delays in stats.delay_min.values() for d in delays)
    first = next(i for i in incidents if i.label == "condenser_fouling")
    span = first.sensors.index.max() - first.sensors.index.min()
    assert timedelta(minutes=29) <= span <= timedelta(minutes=30)
    assert first.modalities() == ("sensors", "logs", "image") or first.modalities() == ("sensors", "image")


def test_a_fault_the_detector_never_raises_on_gives_only_its_varied_onsets():
    blind = AlarmDetector(train_hours=2.0, margin=1e6)  # a threshold nothing reaches
    stats = OnsetStats()
    only_raised = simulate_alarm_incidents(equipment_types=["chiller"], per_class=2, seed=2, detector=blind, stats=stats, max_tries=2,
                                           onset_cuts=0)
    assert {i.label for i in only_raised} == {NORMAL}
    assert stats.undetected["condenser_fouling"] == 4 and "condenser_fouling" not in stats.raised
    onsets = simulate_alarm_incidents(equipment_types=["chiller"], per_class=2, seed=2, detector=blind, onset_cuts=2, onset_min=(2.0, 5.0))
    fouling = [i for i in onsets if i.label == "condenser_fouling"]
    assert len(fouling) == 2  # one fault, cut 2-5 minutes in


@pytest.fixture(scope="module")
def diagnoser():
    backbone = tiny_random_backbone(hidden_size=32, num_layers=2)
    incidents = simulate_incidents(equipment_types=["chiller"], per_class=4, seed=0)
    return FaultDiagnoser(backbone=backbone, epochs=2, image_epochs=2).fit(incidents)


def test_an_alarm_is_never_diagnosed_normal(diagnoser):
    incident = simulate_incidents(equipment_types=["chiller"], per_class=1, seed=5)[0]
    result = diagnoser.diagnose(incident, explain=False, alarm=True)
    assert NORMAL not in result.probabilities and NO_KNOWN_FAULT in result.probabilities
    assert result.fault != NORMAL
    plain = diagnoser.diagnose(incident, explain=False)
    assert plain.probabilities[NORMAL] == pytest.approx(result.probabilities[NO_KNOWN_FAULT])


def test_temperature_scaling_is_fitted_on_held_out_incidents_and_saved(diagnoser, tmp_path):
    held_out = simulate_incidents(equipment_types=["chiller"], per_class=3, seed=9)
    before = diagnoser.predict_proba(held_out[:2])
    report = diagnoser.calibrate(held_out)
    assert report["incidents"] == len(held_out) and report["temperature"] > 0
    assert report["nll_after"] <= report["nll_before"] + 1e-9  # the temperature minimises held-out NLL
    after = diagnoser.predict_proba(held_out[:2])
    assert all(abs(sum(p.values()) - 1) < 1e-5 for p in after)
    if abs(report["temperature"] - 1) > 1e-3:
        assert not np.allclose(list(before[0].values()), list(after[0].values()))
    loaded = FaultDiagnoser.load(diagnoser.save(tmp_path / "d"), backbone=diagnoser.backbone)
    assert loaded.temperature == pytest.approx(diagnoser.temperature)
    assert loaded.predict_proba(held_out[:1])[0] == pytest.approx(after[0], abs=1e-5)


def test_an_explainer_adapter_in_the_folder_is_part_of_the_saved_diagnoser(diagnoser, tmp_path):
    from models.diagnosis.explainer_tuning import ADAPTER_DIR, make_pairs, tune_explainer
    from tests.phm.assistant.helpers import tiny_language_model

    folder = diagnoser.save(tmp_path / "v1")
    incident = simulate_incidents(equipment_types=["chiller"], per_class=1, seed=5)[1]
    pairs = make_pairs([(diagnoser.diagnose(incident, explain=False, alarm=True), incident.equipment)],
                       other_faults=["condenser_fouling", "sensor_drift", "stuck_sensor"], all_sensors=diagnoser.measures)
    tune_explainer(pairs, folder, epochs=0, lm=tiny_language_model())
    loaded = FaultDiagnoser.load(folder, backbone=diagnoser.backbone)
    assert loaded.explainer_adapter == folder / ADAPTER_DIR
    copy = loaded.save(tmp_path / "v2")  # registering a version copies the adapter with the weights
    assert (copy / ADAPTER_DIR / "adapter_config.json").exists()
    plain = diagnoser.save(tmp_path / "plain")  # the fixture's diagnoser has no adapter
    assert FaultDiagnoser.load(plain, backbone=diagnoser.backbone).explainer_adapter is None


def test_image_share_sets_how_many_incidents_carry_an_inspection_image():
    # Most plant alarms come with no photograph of the unit: the trial's and the live simulator's
    # never do. Training only on incidents with a fresh image taught the model to lean on it.
    none = simulate_alarm_incidents(equipment_types=["chiller"], per_class=3, seed=4, detector=QUICK, image_share=0.0)
    assert none and all(i.image is None and i.image_ref is None and "image" not in i.modalities() for i in none)
    every = simulate_alarm_incidents(equipment_types=["chiller"], per_class=3, seed=4, detector=QUICK, image_share=1.0)
    assert all(i.image is not None for i in every)
    mixed = simulate_alarm_incidents(equipment_types=["chiller"], per_class=6, seed=4, detector=QUICK, image_share=0.5)
    assert 0 < sum(i.image is not None for i in mixed) < len(mixed)
    with pytest.raises(ValueError, match="image_share"):
        simulate_alarm_incidents(equipment_types=["chiller"], per_class=1, seed=4, detector=QUICK, image_share=1.5)


def test_sensor_faults_can_hit_any_sensor_of_the_unit_the_speed_pickup_too():
    from connectors.simulator import DEMO_PLANT
    from models.diagnosis.onset import fit_detectors, simulate_onset_incident

    fitted = fit_detectors(DEMO_PLANT, ["M-101"], QUICK, seed=0)["M-101"]
    hit = set()
    for seed in range(40):
        incidents = simulate_onset_incident(DEMO_PLANT, "M-101", "stuck_sensor", seed=seed, detector=fitted, onset_cuts=1,
                                            offsets_min=(), late_offset_max_min=0.0, search_min=1.0, default_sensor_share=0.0,
                                            onset_min=(20.0, 30.0))
        # the stuck measure is the one whose last ten minutes do not move
        tail = incidents[-1].sensors.iloc[-600:]
        hit |= {m for m in tail.columns if tail[m].std() == 0}
    assert "SPEED" in hit
