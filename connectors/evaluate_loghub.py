"""Grouping accuracy of the log template miner on Loghub 2k (corrected ground truth).

    python -m connectors.evaluate_loghub [--data DIR] [--json PATH]

For each system in ``<data>/loghub/<System>/<System>_2k.log_structured_corrected.csv`` the
``Content`` column is mined line by line, in file order, through one fresh miner with the
connector's **one default configuration** (``MinerSettings()``, what the log-file connector runs
on every plant log), and the predicted groups are scored with the grouping accuracy of Zhu et al.
(ICSE-SEIP 2019): a line counts as correct when the set of lines in its predicted group equals
the set of lines in its true group. A line's group is the template its id belongs to after the
file (an id merged into another counts with the one it was merged into: that is what the
dashboard shows).

The true groups are the corrected ``EventTemplate`` texts (as the Loghub-2.0 evaluator groups
them). The corrected file still carries three ``EventId`` values (Linux E17/E18/E19) for one
template text, split by the user name in the line; the ``by EventId`` column scores against the
ids instead, so that split shows.

Leave-one-system-out, two views: ``leave-1-out (k)`` chooses the miner's one number,
``word_values`` (how many different words at one position make it a variable), on the other seven
systems and scores the held-out one with it; ``strict`` also switches off every rule that came
from the held-out system (``connectors.logtemplates.RULE_SOURCES``) and chooses ``word_values`` on
the other seven with those rules off. Drain's published figures (tuned per system: its own
regexes, threshold and depth) are printed beside them.
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

from connectors.logtemplates import RULE_SOURCES, MinerSettings, TemplateMiner

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
WORD_VALUES_CHOICES = (2, 3, 4, 5)


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


def load_system(directory: Path, system: str) -> tuple[list[str], list[str], list[str]]:
    """(contents, true template texts, true event ids) of one system."""
    path = directory / system / f"{system}_2k.log_structured_corrected.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"Content", "EventId", "EventTemplate"} <= set(rows[0]):
        raise ValueError(f"{path}: expected columns Content, EventId and EventTemplate")
    return [row["Content"] for row in rows], [row["EventTemplate"] for row in rows], [row["EventId"] for row in rows]


def mine(contents: Sequence[str], settings: MinerSettings = MinerSettings()) -> list[str]:
    """Each line's group: its template id resolved through merges, after the whole file."""
    miner = TemplateMiner(settings)
    ids = [miner.add(content).template_id for content in contents]
    return [str(miner.resolve(template_id)) for template_id in ids]


def rules_from(system: str) -> frozenset[str]:
    """The miner rules that came from ``system``'s lines."""
    return frozenset(rule for rule, systems in RULE_SOURCES.items() if system in systems)


def evaluate(loghub_dir: Path) -> dict:
    systems = [system for system in PUBLISHED_DRAIN if (loghub_dir / system).is_dir()]
    data = {system: load_system(loghub_dir, system) for system in systems}
    default = MinerSettings()
    cache: dict[tuple[frozenset, int, str], float] = {}

    def score(system: str, word_values: int, disabled: frozenset = frozenset()) -> float:
        key = (disabled, word_values, system)
        if key not in cache:
            settings = MinerSettings(word_values=word_values, disabled_rules=disabled)
            cache[key] = grouping_accuracy(data[system][1], mine(data[system][0], settings))
        return cache[key]

    def chosen_k(held_out: str, disabled: frozenset = frozenset()) -> int:
        others = [s for s in systems if s != held_out]
        return max(WORD_VALUES_CHOICES, key=lambda c: (sum(score(s, c, disabled) for s in others), -abs(c - default.word_values)))

    rows = []
    for system in systems:
        contents, templates, event_ids = data[system]
        started = time.perf_counter()
        predicted = mine(contents, default)
        seconds = time.perf_counter() - started
        k = chosen_k(system)
        off = rules_from(system)
        strict_k = chosen_k(system, off)
        rows.append(
            {
                "system": system,
                "lines": len(contents),
                "true_templates": len(set(templates)),
                "default": round(grouping_accuracy(templates, predicted), 4),
                "default_by_event_id": round(grouping_accuracy(event_ids, predicted), 4),
                "leave_one_out_word_values": k,
                "leave_one_out": round(score(system, k), 4),
                "strict_rules_off": sorted(off),
                "strict_word_values": strict_k,
                "strict_leave_one_out": round(score(system, strict_k, off), 4),
                "published_drain": PUBLISHED_DRAIN[system],
                "lines_per_s": round(len(contents) / seconds),
            }
        )
    keys = ("default", "default_by_event_id", "leave_one_out", "strict_leave_one_out", "published_drain")
    means = {key: round(sum(r[key] for r in rows) / max(len(rows), 1), 4) for key in keys}
    return {
        "settings": {"word_values": default.word_values, "max_templates": default.max_templates},
        "rule_sources": {rule: list(sources) for rule, sources in RULE_SOURCES.items()},
        "systems": rows,
        "mean": means,
        "min_default": min((r["default"] for r in rows), default=0.0),
        "word_values_sweep": {str(c): {s: round(score(s, c), 4) for s in systems} for c in WORD_VALUES_CHOICES},
    }


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
    result = evaluate(loghub_dir)
    print(f"default configuration: word_values={result['settings']['word_values']} (no per-system setting)")
    print(f"{'system':<10} {'lines':>5} {'templates':>9} {'default':>8} {'by EventId':>10} {'leave-1-out (k)':>15} {'strict (k)':>10} {'Drain (tuned)':>13}")
    for row in result["systems"]:
        print(
            f"{row['system']:<10} {row['lines']:>5} {row['true_templates']:>9} {row['default']:>8.3f} {row['default_by_event_id']:>10.3f} "
            f"{row['leave_one_out']:>11.3f} ({row['leave_one_out_word_values']}) {row['strict_leave_one_out']:>6.3f} ({row['strict_word_values']}) "
            f"{row['published_drain']:>13.3f}"
        )
    mean = result["mean"]
    print(
        f"{'mean':<10} {'':>5} {'':>9} {mean['default']:>8.3f} {mean['default_by_event_id']:>10.3f} {mean['leave_one_out']:>11.3f}     "
        f"{mean['strict_leave_one_out']:>6.3f}     {mean['published_drain']:>13.3f}"
    )
    print(f"lowest system (default): {result['min_default']:.3f}")
    print("strict: rules switched off when scoring each system (they came from its lines):")
    for row in result["systems"]:
        print(f"  {row['system']:<10} {', '.join(row['strict_rules_off']) or '-'}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"loghub_grouping_accuracy": result}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
