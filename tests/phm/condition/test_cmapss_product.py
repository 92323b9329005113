"""C-MAPSS FD001 through the product path (work orders, RUL training job through the API, estimates
through the app as of each held-out engine's cut time) gives the harness's numbers on the same
split. A small version: 20 engines, one of four folds. Needs ../shared/data/cmapss; skips without it."""

from __future__ import annotations

import pytest

from models.evaluate import shared_data_dir
from phm import cmapss_product

DATA = shared_data_dir() / "cmapss"

pytestmark = pytest.mark.skipif(not (DATA / "train_FD001.txt").is_file(), reason=f"C-MAPSS FD001 not present under {DATA}")


def test_product_path_matches_the_harness_on_the_same_split(db, settings, tmp_path):
    from models.datasets.cmapss import load_fd001
    from phm.condition.rul import DEFAULT_PARAMS

    settings.DATA_ROOT = tmp_path
    frame = load_fd001(DATA)
    frame = frame[frame["unit"] <= 20]
    assert cmapss_product.import_units(frame) == len(frame) * 24
    result = cmapss_product.run(frame, folds=4, max_folds=1, seed=0, params={**DEFAULT_PARAMS, "n_estimators": 200}, harness=True)
    product, harness = result["product"], result["harness"]
    assert product["units"] == harness["units"] == 5
    assert abs(product["rmse"] - harness["rmse"]) < 0.5
    assert abs(product["coverage"] - harness["coverage"]) <= 0.2
    assert all(row["histories"] == 15 for row in result["product_rows"])
    true = [min(row["true"], 125.0) for row in result["product_rows"]]
    constant = (sum((t - sum(true) / len(true)) ** 2 for t in true) / len(true)) ** 0.5
    assert product["rmse"] < constant  # better than the best constant guess: a model, not a mean
