"""A small run of ``python -m phm.cwru_product`` (one direction, a 1-epoch narrow InceptionTime):
the product path (upload API, training job, classification task, classifications API) matches the
harness on the same captures with the same settings. Skips without the shared CWRU data."""

from __future__ import annotations

import pytest

pytest.importorskip("models.classification")

from models.evaluate import shared_data_dir

CWRU_DIR = shared_data_dir() / "cwru"
SMALL = {"nf": 4, "epochs": 1}


@pytest.fixture
def eager():
    from phm.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.mark.skipif(not (CWRU_DIR / "1772rpm").is_dir(), reason="shared CWRU data not present")
@pytest.mark.django_db(transaction=True)
def test_small_cwru_product_run_matches_the_harness(eager):
    from phm.cwru_product import harness_row, product_row

    product = product_row("1797->1772", data=CWRU_DIR, params=SMALL)
    harness = harness_row("1797->1772", data=CWRU_DIR, params=SMALL)
    assert product["n_test"] == harness["n_test"] == 90
    assert abs(product["accuracy"] - harness["accuracy"]) <= 0.01, (product, harness)
    # Same captures, same settings, same seed: the same model, so the same probabilities.
    assert product["mean_true_probability"] == pytest.approx(harness["mean_true_probability"], abs=0.01)
    # A fault at or above the default alarm probability (0.9) raised the classifier's alarm, once.
    assert product["alarms"] == (1 if product["max_fault_probability"] >= 0.9 else 0), product
