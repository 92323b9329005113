"""The diagnosis of a raised alarm weighs "no known fault" by how often alarms have none behind them
(``DiagnoserConfig.alarm_false_share``), not by the share of healthy incidents in the training set."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from models.backbone import tiny_random_backbone
from models.diagnosis import FaultDiagnoser, simulate_incidents
from models.diagnosis.types import NO_KNOWN_FAULT, NORMAL

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def backbone():
    return tiny_random_backbone(hidden_size=32, num_layers=2)


@pytest.fixture(scope="module")
def incidents():
    return simulate_incidents(equipment_types=["chiller"], per_class=4, seed=0)


@pytest.fixture(scope="module")
def diagnoser(backbone, incidents):
    return FaultDiagnoser(backbone=backbone, epochs=2, image_epochs=1).fit(incidents)


def _odds(p: dict, a: str, b: str) -> float:
    return p[a] / p[b]


def test_an_alarm_moves_the_odds_of_no_known_fault_from_the_training_share_to_the_alarm_share(diagnoser, incidents):
    assert diagnoser.config.alarm_false_share == 0.05
    assert diagnoser.class_shares["chiller"][NORMAL] == pytest.approx(0.25)  # 4 of each of the chiller's 4 classes
    ratio = (0.05 / 0.95) / (0.25 / 0.75)
    for incident in incidents[:4]:
        plain = diagnoser.diagnose(incident, explain=False).probabilities
        alarm = diagnoser.diagnose(incident, explain=False, alarm=True).probabilities
        assert sum(alarm.values()) == pytest.approx(1.0)
        assert _odds(alarm, NO_KNOWN_FAULT, "stuck_sensor") == pytest.approx(_odds(plain, NORMAL, "stuck_sensor") * ratio, rel=1e-5)
        assert _odds(alarm, "condenser_fouling", "stuck_sensor") == pytest.approx(_odds(plain, "condenser_fouling", "stuck_sensor"), rel=1e-5)


def test_without_an_alarm_share_or_training_shares_the_probabilities_stay(diagnoser, incidents, backbone, tmp_path):
    incident = incidents[0]
    plain = diagnoser.diagnose(incident, explain=False).probabilities
    off = FaultDiagnoser.load(diagnoser.save(tmp_path / "off"), backbone=backbone)
    assert off.class_shares == diagnoser.class_shares  # saved with the diagnoser
    off.config = replace(off.config, alarm_false_share=None)
    assert off.diagnose(incident, explain=False, alarm=True).probabilities[NO_KNOWN_FAULT] == pytest.approx(plain[NORMAL])
    old = tmp_path / "old"
    diagnoser.save(old)
    document = json.loads((old / "config.json").read_text())
    del document["class_shares"]  # saved before the correction existed
    (old / "config.json").write_text(json.dumps(document))
    before = FaultDiagnoser.load(old, backbone=backbone)
    assert before.class_shares is None
    assert before.diagnose(incident, explain=False, alarm=True).probabilities[NO_KNOWN_FAULT] == pytest.approx(plain[NORMAL])


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.1])
def test_an_alarm_share_outside_zero_to_one_is_refused_by_name(backbone, bad):
    with pytest.raises(ValueError, match="alarm_false_share"):
        FaultDiagnoser(backbone=backbone, alarm_false_share=bad)
