"""BGL harness: reader, split, line-level metrics on a hand-checkable file, and the real data if present."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from models.evaluate import shared_data_dir
from models.evaluate.bgl import STRUCTURED_FILE, best_f1_threshold, main, read_bgl, split_point

HOUR = 3600
T0 = 1_117_838_570  # BGL's first timestamp (2005-06-03)

# (hours after T0, Level, Content, Label): 8 fitting lines, 4 scored (fit fraction 2/3).
HAND_CASE = [
    *[(h, "INFO", f"heartbeat ok seq {h}", "-") for h in range(7)],
    (6.5, "FATAL", "kernel panic on node 7", "KERNPAN"),
    # scored part; comments give the level rule and the novelty rule (60-minute window vs the fitting part)
    (1000.0, "FATAL", "disk failure on node 3", "KERNDISK"),  # level TP; new template -> TP
    (1000.5, "INFO", "heartbeat ok seq 8", "KERNHB"),  # level FN; heartbeat 7x in the baseline -> FN
    (1001.0, "FATAL", "disk failure on node 4", "-"),  # level FP; the 1000 h line left the window, still new -> FP
    (2000.0, "INFO", "fan speed 3000 rpm", "-"),  # level TN; new template -> FP
]


def write_bgl_like(folder, rows) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / STRUCTURED_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["LineId", "Label", "Timestamp", "Level", "Content", "EventId", "EventTemplate"])
        for index, (hours, level, content, label) in enumerate(rows, start=1):
            writer.writerow([index, label, T0 + int(hours * HOUR), level, content, f"E{index}", content])


@pytest.fixture()
def hand_case(tmp_path):
    folder = tmp_path / "BGL"
    write_bgl_like(folder, HAND_CASE)
    return folder


def test_reader_keeps_time_order_and_labels(hand_case):
    lines = read_bgl(hand_case)
    assert len(lines) == 12 and lines.ts == sorted(lines.ts)
    assert lines.anomaly.tolist() == [False] * 7 + [True, True, True, False, False]
    assert split_point(len(lines), 2 / 3) == 8


def test_best_f1_threshold_is_chosen_between_scores():
    # >= 0.35 gives TP 2, FP 1 (F1 0.8), the best; the cut lies halfway to the next lower score.
    assert best_f1_threshold(np.array([0, 0, 1, 1], bool), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.225)


def test_harness_metrics_on_hand_checkable_case(hand_case, tmp_path, capsys):
    out = tmp_path / "bgl.json"
    argv = ["--data", str(hand_case), "--fit-fraction", str(2 / 3), "--backbone", "tiny-random", "--layers", "2",
            "--json", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    rows = {row["label"]: row for row in result["results"]}
    level = rows["level FATAL/FAILURE/SEVERE (trivial)"]
    assert (level["precision"], level["recall"], level["f1"], level["flagged"]) == (0.5, 0.5, 0.5, 2)
    novelty = rows["novelty vs fitting part"]
    assert novelty["flagged"] == 3
    assert novelty["precision"] == pytest.approx(1 / 3) and novelty["recall"] == 0.5
    assert novelty["f1"] == pytest.approx(0.4)
    assert (result["split"]["fit"]["lines"], result["split"]["fit"]["anomalies"]) == (8, 1)
    assert result["split"]["scored"]["anomalies"] == 2 and result["split"]["scored"]["anomaly_ratio"] == 0.5
    head = rows["LLM head: template (2 layers)"]
    assert head["trainable_parameters"] == 32 + 1  # tiny backbone width + bias
    # One anomalous template in the fitting part: nothing to cross-validate, the defaults hold.
    assert {run["C"] for run in head["details"]["per_seed"]} == {1.0}
    assert "level FATAL/FAILURE/SEVERE (trivial)" in capsys.readouterr().out


real_bgl = shared_data_dir() / "loghub" / "BGL"
needs_bgl = pytest.mark.skipif(not (real_bgl / STRUCTURED_FILE).is_file(), reason="Loghub BGL data not present")


@needs_bgl
def test_real_bgl_split_and_untrained_rows(tmp_path):
    out = tmp_path / "bgl.json"
    assert main(["--data", str(real_bgl), "--only", "level", "novelty", "tfidf", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    split = result["split"]
    assert (split["fit"]["lines"], split["fit"]["anomalies"]) == (1000, 96)
    assert (split["scored"]["lines"], split["scored"]["anomalies"]) == (1000, 47)
    level = next(r for r in result["results"] if r["method"] == "level")
    # Every scored anomaly is FATAL; 88 normal FATAL/SEVERE lines are flagged with them.
    assert level["recall"] == 1.0 and level["flagged"] == 135 and level["precision"] == pytest.approx(47 / 135)
    assert {r["method"] for r in result["results"]} == {"level", "novelty", "tfidf"}


@pytest.mark.slow
@needs_bgl
def test_real_bgl_language_model_head(tmp_path):
    out = tmp_path / "bgl.json"
    assert main(["--data", str(real_bgl), "--only", "LLM head: template (2 layers)", "--layers", "2",
                 "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["trainable_parameters"] == 576 + 1  # SmolLM2-135M width + bias
    assert row["backbone"]["num_layers"] == 2 and row["average_precision"] > 0.047  # above the anomaly ratio
