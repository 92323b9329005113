"""The summary booster (models.diagnosis.boosting): LightGBM on the diagnoser's window statistics,
combined with the fusion network's answer, saved as text inside the diagnoser folder."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from models.backbone import tiny_random_backbone
from models.diagnosis import FaultDiagnoser, simulate_incidents
from models.diagnosis.boosting import SummaryBooster
from models.diagnosis.model import BOOSTER_FILE

torch.set_num_threads(1)


def test_the_trees_answer_over_the_incidents_own_type_only_and_survive_a_round_trip():
    rng = np.random.default_rng(0)
    summaries = rng.normal(size=(120, 4))
    types = ["pump" if i % 2 else "chiller" for i in range(120)]
    # rows 0-1 are the chiller's classes, 2-4 the pump's; the class follows the first statistic
    rows = [(0 if x[0] < 0 else 1) if t == "chiller" else (2 if x[0] < -0.5 else 3 if x[0] < 0.5 else 4) for x, t in zip(summaries, types, strict=True)]
    booster = SummaryBooster(["chiller", "pump"], 5).fit(summaries, types, rows)
    masks = np.array([[t == "chiller"] * 2 + [t == "pump"] * 3 for t in types])
    log_p = booster.log_probabilities(summaries, types, masks)
    assert np.isneginf(log_p[~masks]).all()
    assert np.allclose(np.exp(np.where(masks, log_p, -np.inf)).sum(axis=1), 1.0)
    assert np.mean(np.argmax(log_p, axis=1) == np.array(rows)) > 0.9
    again = SummaryBooster.from_string(booster.to_string(), ["chiller", "pump"], 5)
    assert np.array_equal(again.log_probabilities(summaries, types, masks), log_p)
    with pytest.raises(ValueError, match="5 classes, the diagnoser 6"):
        SummaryBooster.from_string(booster.to_string(), ["chiller", "pump"], 6)
    with pytest.raises(ValueError, match="not a LightGBM model"):
        SummaryBooster.from_string("import os; os.system('touch /tmp/owned')", ["chiller", "pump"], 5)


@pytest.fixture(scope="module")
def backbone():
    return tiny_random_backbone(hidden_size=32, num_layers=2)


@pytest.fixture(scope="module")
def incidents():
    return simulate_incidents(equipment_types=["chiller"], per_class=4, seed=0)


@pytest.fixture(scope="module")
def diagnoser(backbone, incidents):
    return FaultDiagnoser(backbone=backbone, epochs=2, image_epochs=1).fit(incidents)


def test_the_answer_mixes_network_and_trees_where_there_is_a_sensor_window(diagnoser, incidents, backbone, tmp_path):
    assert diagnoser.booster is not None and diagnoser.config.booster_weight == 0.5
    network_only = FaultDiagnoser.load(diagnoser.save(tmp_path / "mixed"), backbone=backbone)
    network_only.config = replace(network_only.config, booster_weight=0.0)
    incident = incidents[5]
    assert diagnoser.predict_proba([incident])[0] != network_only.predict_proba([incident])[0]
    blind = replace(incident, sensors=None)  # the trees read the window's statistics, nothing else
    assert diagnoser.predict_proba([blind])[0] == pytest.approx(network_only.predict_proba([blind])[0])


def test_a_saved_diagnoser_keeps_its_trees_and_a_broken_tree_file_is_refused(diagnoser, incidents, backbone, tmp_path):
    folder = diagnoser.save(tmp_path / "saved")
    assert (folder / BOOSTER_FILE).read_text().startswith("tree")
    loaded = FaultDiagnoser.load(folder, backbone=backbone)
    assert loaded.model_version == diagnoser.model_version
    assert loaded.predict_proba(incidents[:3]) == diagnoser.predict_proba(incidents[:3])
    (folder / BOOSTER_FILE).write_text("not a model")
    with pytest.raises(ValueError, match=BOOSTER_FILE):
        FaultDiagnoser.load(folder, backbone=backbone)


def test_a_diagnoser_saved_before_the_booster_answers_with_its_network(diagnoser, incidents, backbone, tmp_path):
    folder = diagnoser.save(tmp_path / "old")
    document = json.loads((folder / "config.json").read_text())
    del document["config"]["booster_weight"]
    (folder / "config.json").write_text(json.dumps(document))
    (folder / BOOSTER_FILE).unlink()
    old = FaultDiagnoser.load(folder, backbone=backbone)
    assert old.config.booster_weight == 0.0 and old.booster is None
    assert sum(old.predict_proba(incidents[:1])[0].values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="booster_weight"):
        FaultDiagnoser(backbone=backbone, booster_weight=1.5)


def test_an_update_refits_the_trees_on_what_it_learns_from_or_leaves_the_answer_to_the_network(diagnoser, incidents, backbone, tmp_path):
    updated = FaultDiagnoser.load(diagnoser.save(tmp_path / "base"), backbone=backbone)
    before = updated.booster.to_string()
    corrected = [replace(i, label="stuck_sensor") for i in incidents[:2]]
    updated.update(corrected, replay=incidents, epochs=1)
    assert updated.booster is not None and updated.booster.to_string() != before  # every class in replay: refitted
    novel = [replace(incidents[0], label="refrigerant_leak")]  # a new class, one incident: too few for trees
    updated.update(novel, replay=incidents, epochs=1)
    assert updated.booster is None
    assert "refrigerant_leak" in updated.predict_proba(incidents[:1])[0]
    assert not (updated.save(tmp_path / "base") / BOOSTER_FILE).exists()


def test_trees_that_never_saw_a_type_leave_its_answer_to_the_network(diagnoser, backbone):
    """The fixture's diagnoser learnt from chillers only; a pump's classes get equal tree scores."""
    pump = simulate_incidents(equipment_types=["pump"], per_class=1, seed=3)[:2]
    prepared, _ = diagnoser._scores(pump)
    masks = diagnoser._class_mask([i.equipment_type for i in pump]).numpy()
    log_p = diagnoser.booster.log_probabilities(diagnoser._summaries(prepared), [i.equipment_type for i in pump], masks)
    for row, mask in zip(log_p, masks, strict=True):
        assert np.allclose(row[mask], row[mask][0])


def test_the_trees_also_learn_from_incidents_given_to_them_alone(diagnoser, incidents, backbone, monkeypatch):
    """``booster_incidents``: more labelled incidents for the trees only (they fit in seconds, the
    network takes minutes), read lazily (a generator of simulated incidents is not held in memory)."""
    seen: list[int] = []
    fit = SummaryBooster.fit

    def counting(self, summaries, types, rows, *, seed=0):
        seen.append(len(rows))
        return fit(self, summaries, types, rows, seed=seed)

    monkeypatch.setattr(SummaryBooster, "fit", counting)
    extra = simulate_incidents(equipment_types=["chiller"], per_class=3, seed=5)
    taken: list[int] = []

    def lazily():
        for number, incident in enumerate(extra):
            taken.append(number)
            yield incident

    more = FaultDiagnoser(backbone=backbone, epochs=1, image_epochs=1).fit(incidents, booster_incidents=lazily())
    assert seen == [len(incidents) + len(extra)] and len(taken) == len(extra)
    assert more.booster.to_string() != diagnoser.booster.to_string()
    # the network learnt from the incidents alone: same normal statistics as without the extra ones
    assert more.stats["chiller"].to_dict() == diagnoser.stats["chiller"].to_dict()
    with pytest.raises(ValueError, match="refrigerant_leak"):
        FaultDiagnoser(backbone=backbone, epochs=1, image_epochs=1).fit(
            incidents, booster_incidents=[replace(extra[0], label="refrigerant_leak")])
    without_trees = FaultDiagnoser(backbone=backbone, epochs=1, image_epochs=1, booster_weight=0.0)
    assert without_trees.fit(incidents, booster_incidents=lazily()).booster is None
