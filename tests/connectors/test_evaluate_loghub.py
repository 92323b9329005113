from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors.evaluate_loghub import benchmark_settings, grouping_accuracy, load_system, mine


def test_grouping_accuracy_counts_only_exactly_matching_groups():
    truth = ["A", "A", "B", "B", "C"]
    assert grouping_accuracy(truth, ["x", "x", "y", "y", "z"]) == 1.0
    # B split in two: both B lines wrong; A and C right.
    assert grouping_accuracy(truth, ["x", "x", "y", "w", "z"]) == 3 / 5
    # A and C merged: all three wrong.
    assert grouping_accuracy(truth, ["x", "x", "y", "y", "x"]) == 2 / 5


LOGHUB = Path(os.environ.get("PHM_DATA_DIR", Path(__file__).resolve().parents[3] / "shared" / "data")) / "loghub"


@pytest.mark.skipif(not (LOGHUB / "HDFS").is_dir(), reason="shared loghub data not present")
def test_hdfs_matches_the_published_drain_accuracy():
    contents, truth = load_system(LOGHUB, "HDFS")
    assert grouping_accuracy(truth, mine(contents, benchmark_settings("HDFS"))) >= 0.99
