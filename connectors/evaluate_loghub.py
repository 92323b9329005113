"""Grouping accuracy of the log template miner on Loghub 2k (corrected ground truth).

    python -m connectors.evaluate_loghub [--data DIR] [--json PATH]

For each system in ``<data>/loghub/<System>/<System>_2k.log_structured_corrected.csv`` the
``Content`` column is mined line by line and the predicted groups are scored against
``EventId`` with the grouping accuracy of Zhu et al. (ICSE-SEIP 2019, the loghub benchmark): a
line counts as correct when the set of lines in its predicted group equals the set of lines in
its true group. Two configurations are run:

* ``benchmark``: the per-system preprocessing regexes, similarity threshold and depth of the
  published Drain benchmark (logpai/logparser ``Drain_benchmark.py``), through Drain3 and our
  masking code, to compare with the published figures;
* ``connector``: the connector's one default configuration (``MinerSettings()``), which is what
  the log-file connector runs on every plant log without per-system tuning.

The published Drain figures (from ``../shared/data/README.md``) are printed next to them.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from connectors.logs import MinerSettings, TemplateTagger, make_template_miner

PUBLISHED_DRAIN = {
    "HDFS": 0.998,
    "BGL": 0.963,
    "Apache": 1.0,
    "Zookeeper": 0.967,
    "Hadoop": 0.948,
    "Spark": 0.92,
    "Linux": 0.69,
    "HealthApp": 0.78,
}

# Drain_benchmark.py settings: (regexes masked to <*>, similarity threshold, depth).
BENCHMARK_SETTINGS: dict[str, tuple[list[str], float, int]] = {
    "HDFS": ([r"blk_-?\d+", r"(\d+\.){3}\d+(:\d+)?"], 0.5, 4),
    "Hadoop": ([r"(\d+\.){3}\d+"], 0.5, 4),
    "Spark": ([r"(\d+\.){3}\d+", r"\b[KGTM]?B\b", r"([\w-]+\.){2,}[\w-]+"], 0.5, 4),
    "Zookeeper": ([r"(/|)(\d+\.){3}\d+(:\d+)?"], 0.5, 4),
    "BGL": ([r"core\.\d+"], 0.5, 4),
    "HealthApp": ([], 0.2, 4),
    "Apache": ([r"(\d+\.){3}\d+"], 0.5, 4),
    "Linux": ([r"(\d+\.){3}\d+", r"\d{2}:\d{2}:\d{2}"], 0.39, 6),
}


def grouping_accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Share of lines whose predicted group has exactly the lines of their true group."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} predictions")
    if not truth:
        return 0.0
    true_sizes = Counter(truth)
    members: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(predicted):
        members[group].append(index)
    correct = 0
    for indices in members.values():
        true_groups = {truth[i] for i in indices}
        if len(true_groups) == 1 and true_sizes[next(iter(true_groups))] == len(indices):
            correct += len(indices)
    return correct / len(truth)


def load_system(directory: Path, system: str) -> tuple[list[str], list[str]]:
    path = directory / system / f"{system}_2k.log_structured_corrected.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "Content" not in rows[0] or "EventId" not in rows[0]:
        raise ValueError(f"{path}: expected columns Content and EventId")
    return [row["Content"] for row in rows], [row["EventId"] for row in rows]


def mine(contents: Sequence[str], settings: MinerSettings) -> list[str]:
    tagger = TemplateTagger(make_template_miner(settings))
    return [str(tagger.miner.add_log_message(content)["cluster_id"]) for content in contents]


def benchmark_settings(system: str) -> MinerSettings:
    regexes, sim_th, depth = BENCHMARK_SETTINGS[system]
    return MinerSettings(sim_th=sim_th, depth=depth, masks=tuple((regex, "*") for regex in regexes))


def evaluate(loghub_dir: Path) -> list[dict]:
    results = []
    for system in PUBLISHED_DRAIN:
        if not (loghub_dir / system).is_dir():
            continue
        contents, truth = load_system(loghub_dir, system)
        started = time.perf_counter()
        bench_acc = grouping_accuracy(truth, mine(contents, benchmark_settings(system)))
        conn_acc = grouping_accuracy(truth, mine(contents, MinerSettings()))
        results.append(
            {
                "system": system,
                "lines": len(contents),
                "true_templates": len(set(truth)),
                "benchmark_settings": round(bench_acc, 4),
                "connector_defaults": round(conn_acc, 4),
                "published_drain": PUBLISHED_DRAIN[system],
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    from models.evaluate import shared_data_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="shared data folder (default: models.evaluate.shared_data_dir())")
    parser.add_argument("--json", type=Path, default=Path("bench/results/connectors_loghub.json"))
    args = parser.parse_args(argv)
    loghub_dir = (args.data or shared_data_dir()) / "loghub"
    if not loghub_dir.is_dir():
        print(f"no loghub data at {loghub_dir}", file=sys.stderr)
        return 2
    results = evaluate(loghub_dir)
    print(f"{'system':<10} {'lines':>5} {'templates':>9} {'ours(bench cfg)':>15} {'ours(default)':>13} {'Drain paper':>11}")
    for row in results:
        print(
            f"{row['system']:<10} {row['lines']:>5} {row['true_templates']:>9} {row['benchmark_settings']:>15.3f} "
            f"{row['connector_defaults']:>13.3f} {row['published_drain']:>11.3f}"
        )
    for key in ("benchmark_settings", "connector_defaults", "published_drain"):
        mean = sum(row[key] for row in results) / max(len(results), 1)
        print(f"mean {key}: {mean:.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"loghub_grouping_accuracy": results}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
