"""C-MAPSS reader, folds by unit, truncation like the official test set, PHM08 score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.datasets.cmapss import COLUMNS, load_fd001, read_cmapss, truncate_units, unit_folds
from models.evaluate import shared_data_dir
from models.metrics.regression import mae, phm08_score, regression_report, rmse

CMAPSS_DIR = shared_data_dir() / "cmapss"


def run_to_failure(lengths: dict[int, int]) -> pd.DataFrame:
    rows = [{"unit": u, "cycle": c, "sensor_2": float(c)} for u, n in lengths.items() for c in range(1, n + 1)]
    return pd.DataFrame(rows)


def test_read_cmapss_names_the_26_columns(tmp_path):
    path = tmp_path / "train_FD001.txt"
    path.write_text("1 1 " + " ".join(["0.5"] * 24) + " \n1 2 " + " ".join(["0.6"] * 24) + " \n")
    frame = read_cmapss(path)
    assert list(frame.columns) == COLUMNS and frame["cycle"].tolist() == [1, 2]


def test_read_cmapss_rejects_a_wrong_column_count(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("1 1 0.5 0.5\n")
    with pytest.raises(ValueError, match="expected 26 columns"):
        read_cmapss(path)


def test_unit_folds_partition_the_units():
    folds = unit_folds(np.arange(1, 23), n_folds=5, seed=3)
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(1, 23))
    for train, test in folds:
        assert not set(train) & set(test)


def test_truncation_keeps_at_least_31_cycles_and_leaves_some_life():
    frame = run_to_failure({1: 200, 2: 150, 3: 20})
    cut = truncate_units(frame, rng=np.random.default_rng(0))
    observed = cut.observed.groupby("unit")["cycle"].max()
    lengths = frame.groupby("unit")["cycle"].max()
    assert (cut.true_rul == lengths - observed).all()
    assert (cut.true_rul >= 1).all()
    assert observed.loc[1] >= 31 and observed.loc[2] >= 31
    assert observed.loc[3] >= 19  # a unit shorter than 31 cycles keeps all but its last


def test_truncation_is_seeded():
    frame = run_to_failure({1: 200, 2: 150})
    first = truncate_units(frame, rng=np.random.default_rng(7)).true_rul
    again = truncate_units(frame, rng=np.random.default_rng(7)).true_rul
    assert first.equals(again)


def test_phm08_penalises_late_more_than_early():
    assert phm08_score([50.0], [60.0]) == pytest.approx(np.e - 1)  # 10 late: exp(10/10) - 1
    assert phm08_score([50.0], [37.0]) == pytest.approx(np.e - 1)  # 13 early: exp(13/13) - 1
    assert phm08_score([50.0], [60.0]) > phm08_score([50.0], [40.0])


def test_rmse_and_mae():
    assert rmse([0.0, 0.0], [3.0, 4.0]) == pytest.approx(np.sqrt(12.5))
    assert mae([0.0, 0.0], [3.0, -4.0]) == pytest.approx(3.5)
    assert regression_report([1.0], [1.0]).phm08_score == 0.0


def test_regression_metrics_reject_mismatched_lengths():
    with pytest.raises(ValueError, match="y_true has 2 values but y_pred has 1"):
        rmse([1.0, 2.0], [1.0])


@pytest.mark.skipif(not (CMAPSS_DIR / "train_FD001.txt").is_file(), reason="shared C-MAPSS data not present")
def test_real_fd001_has_100_run_to_failure_units():
    frame = load_fd001(CMAPSS_DIR)
    assert frame["unit"].nunique() == 100 and len(frame) == 20_631
