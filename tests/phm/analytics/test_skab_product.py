"""SKAB through the product path (ingestion job, detector API, training job, backtest) reproduces
the harness on the same files. Needs ../shared/data/skab; skips without it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("models.detectors")

from models.datasets.skab import TRAIN_ROWS, load_skab
from models.evaluate import shared_data_dir
from phm import skab_product

DATA = shared_data_dir() / "skab"
FILES = ["0", "11"]

pytestmark = pytest.mark.skipif(not (DATA / "valve1").is_dir(), reason=f"SKAB data not present under {DATA}")


@pytest.fixture
def units(db):
    units = skab_product.load_units(DATA, FILES)
    skab_product.create_site(units)
    for unit in units:
        ingested = skab_product.ingest(unit)
        assert ingested["accepted"] == 8 * len(unit.times) and ingested["rejected"] == 0
    return units


def test_per_unit_pca_scores_and_alarms_match_the_harness(units):
    from models.detectors import AnomalyDetector

    product, replayed = skab_product.product_rows(units, "pca", scope="unit", params_override={}, train_rows=TRAIN_ROWS)
    harness = skab_product.harness_row(units, "pca", pooled=False, params_override={}, data=DATA)
    assert abs(product["f1"] - harness["f1"]) <= 0.01 and abs(product["far_percent"] - harness["far_percent"]) <= 1.0
    # The same scores, step for step: the stored readings, the grid and the context reproduce the file.
    experiment = next(e for e in load_skab(DATA, groups=("valve1",)) if e.name == units[0].name)
    expected = AnomalyDetector("pca").fit(experiment.train).score(experiment.sensors).to_numpy()[TRAIN_ROWS:]
    np.testing.assert_allclose(replayed[units[0].name], expected, rtol=1e-6, atol=1e-9)


def test_fleet_no_llm_matches_the_pooled_harness(units):
    product, _ = skab_product.product_rows(units, "no-llm", scope="fleet", params_override={"epochs": 1}, train_rows=TRAIN_ROWS)
    harness = skab_product.harness_row(units, "no-llm", pooled=True, params_override={"epochs": 1}, data=DATA)
    assert abs(product["f1"] - harness["f1"]) <= 0.01, (product, harness)
