"""SKAB outlier-detection harness: ``python -m models.evaluate skab --data ../shared/data/skab``.

Protocol (SKAB leaderboard): in every file the first 400 rows are the training part, the rest is
scored; F1, FAR and MAR are computed over the scored points of all files together.

* Per-file baselines (``zscore``, ``pca``, ``isolation_forest``) are fitted on each file's training part.
* Forecasting methods (``reprogram`` and its ablations, ``patchtst``) train ONE forecaster on the
  training parts of all files (every file is the same test rig; nothing after row 400 is used), then
  each file gets its own standardisation and threshold from its own training part (``recalibrate``).
  Thresholds never see test labels or test scores.

Prints one table (methods, ablations, published leaderboard rows) and writes JSON to
``bench/results/skab.json`` (override with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from models.datasets.skab import TRAIN_ROWS, SkabExperiment, load_skab
from models.evaluate import REPO_ROOT, shared_data_dir
from models.metrics.detection import DetectionCounts, confusion_counts, detection_scores

SKAB_DOMAIN = "Water pump test rig, 8 sensors at 1 Hz."
# Published SKAB leaderboard rows (F1, FAR %, MAR %) as listed in ../shared/data/README.md.
PUBLISHED = {
    "Conv-AE": (0.78, 13.55, 28.02),
    "MSET": (0.78, 39.73, 14.13),
    "T²+Q (PCA)": (0.76, 26.62, 24.92),
    "LSTM-AE": (0.74, 29.96, 25.92),
    "Isolation Forest": (0.29, None, None),
}


@dataclass(frozen=True)
class Variant:
    label: str
    method: str
    pooled: bool
    params: dict[str, object]
    note: str = ""


def build_variants(args: argparse.Namespace) -> list[Variant]:
    forecaster = {
        "epochs": args.epochs, "max_steps_per_epoch": args.max_steps or None, "seq_len": args.seq_len,
        "horizon": args.horizon, "seed": args.seed, "train_stride": args.train_stride,
    }
    reprogram = {**forecaster, "domain": SKAB_DOMAIN, "num_layers": args.layers}
    variants = [
        Variant("|z| > 3 (trivial)", "zscore", False, {}, "per-channel |z|, no smoothing"),
        Variant("pca T²+Q", "pca", False, {}),
        Variant("isolation_forest", "isolation_forest", False, {"seed": args.seed}),
        Variant("patchtst (tsai)", "patchtst", True, dict(forecaster)),
        Variant(f"reprogram ({args.layers} layers)", "reprogram", True, {**reprogram, "llm": "backbone"}),
        Variant("ablation: no LLM", "reprogram", True, {**reprogram, "llm": "none"}),
        Variant(f"ablation: random LLM ({args.layers} layers)", "reprogram", True, {**reprogram, "llm": "random"}),
    ]
    for layers in args.layer_study:
        variants.append(
            Variant(f"reprogram ({layers} layers)", "reprogram", True, {**reprogram, "num_layers": layers, "llm": "backbone"})
        )
    if args.only:
        wanted = set(args.only)
        variants = [v for v in variants if v.method in wanted or v.label in wanted]
    return variants


def run_variant(variant: Variant, experiments: list[SkabExperiment], log: Callable[[str], None]) -> dict[str, object]:
    from models.detectors import AnomalyDetector

    started = time.perf_counter()
    total = DetectionCounts(0, 0, 0, 0)
    fit_seconds = score_seconds = 0.0
    trainable = 0
    fleet = None
    if variant.pooled:
        from models.fleet import fit_fleet

        # One model on every file's training part, recalibrated per file: a fleet detector
        # (the product trains fleet-scope detectors through this same function).
        t0 = time.perf_counter()
        fleet = fit_fleet(
            variant.method, variant.params, {e.name: e.train for e in experiments},
            on_epoch=lambda p: log(
                f"  {variant.label}: epoch {p.epoch}/{p.epochs} loss {p.loss:.4f} "
                f"elapsed {p.elapsed_s:.0f}s eta {p.eta_s:.0f}s"
            ),
        )
        fit_seconds += time.perf_counter() - t0
        trainable = fleet.shared.trainable_parameters()
    shared = fleet.shared if fleet is not None else None
    per_file = {}
    for experiment in experiments:
        t0 = time.perf_counter()
        detector = (
            fleet.units[experiment.name] if fleet is not None
            else AnomalyDetector(variant.method, **variant.params).fit(experiment.train)
        )
        t1 = time.perf_counter()
        predicted = detector.predict(experiment.sensors).to_numpy()[TRAIN_ROWS:]
        score_seconds += time.perf_counter() - t1
        fit_seconds += t1 - t0
        counts = confusion_counts(experiment.anomaly.to_numpy()[TRAIN_ROWS:], predicted)
        per_file[experiment.name] = detection_scores(counts).f1
        total = total + counts
    scores = detection_scores(total)
    backbone_params = shared.backbone.num_parameters() if shared is not None and shared.backbone is not None else None
    result = {
        "label": variant.label, "method": variant.method, "params": variant.params, "note": variant.note,
        **scores.as_dict(), "fit_s": fit_seconds, "score_s": score_seconds,
        "total_s": time.perf_counter() - started, "trainable_parameters": trainable,
        "backbone_parameters": backbone_params, "per_file_f1": per_file,
    }
    log(f"  {variant.label}: F1 {scores.f1:.3f} FAR {scores.far_percent:.1f}% MAR {scores.mar_percent:.1f}% "
        f"({result['total_s']:.0f}s)")
    return result


def format_table(results: list[dict[str, object]]) -> str:
    lines = [
        f"{'method':<34} {'F1':>6} {'FAR %':>7} {'MAR %':>7} {'fit s':>7} {'score s':>8} {'trainable':>10} {'of LLM':>7}",
        "-" * 94,
    ]
    for r in results:
        backbone = r.get("backbone_parameters")
        share = f"{100 * r['trainable_parameters'] / backbone:>6.2f}%" if backbone else f"{'-':>7}"
        lines.append(
            f"{r['label']:<34} {r['f1']:>6.3f} {r['far_percent']:>7.2f} {r['mar_percent']:>7.2f} "
            f"{r['fit_s']:>7.1f} {r['score_s']:>8.1f} {r['trainable_parameters']:>10,} {share}"
        )
    lines.append("-" * 94)
    for name, (f1, far, mar) in PUBLISHED.items():
        far_text = f"{far:>7.2f}" if far is not None else f"{'-':>7}"
        mar_text = f"{mar:>7.2f}" if mar is not None else f"{'-':>7}"
        lines.append(f"{'published: ' + name:<34} {f1:>6.2f} {far_text} {mar_text}")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models.evaluate skab", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "skab", help="SKAB folder")
    parser.add_argument("--groups", nargs="*", default=None, help="sub-folders to use (default: all labelled)")
    parser.add_argument("--files", type=int, default=None, help="use only the first N files (layer studies)")
    parser.add_argument("--only", nargs="*", default=None, help="methods or labels to run (default: all)")
    parser.add_argument("--layers", type=int, default=2, help="backbone layers kept for reprogram (default 2 of 30; --layer-study adds rows with other counts)")
    parser.add_argument("--layer-study", type=int, nargs="*", default=[], help="extra reprogram rows with these layer counts")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=0, help="cap on optimiser steps per epoch (batches of 32); 0 = no cap (the default: every training window once per epoch)")
    parser.add_argument("--train-stride", type=int, default=1, help="steps between training windows (default 1: every window)")
    parser.add_argument("--seq-len", type=int, default=48)
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads; 1 is fastest on a loaded shared CPU (OpenMP spin-waits)")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "bench" / "results" / "skab.json")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        experiments = load_skab(args.data, groups=tuple(args.groups) if args.groups else None)
    except FileNotFoundError as error:
        print(f"skab: {error}", file=sys.stderr)
        return 2
    if args.files is not None:
        experiments = experiments[: args.files]
    started = time.perf_counter()
    load = os.getloadavg()[0]
    log(f"SKAB: {len(experiments)} files from {args.data}; load average {load:.1f} on {os.cpu_count()} cores")
    results = []
    for variant in build_variants(args):
        log(f"- {variant.label}")
        results.append(run_variant(variant, experiments, log))
    elapsed = time.perf_counter() - started
    print(format_table(results))
    n_scored = results[0]["n_points"] if results else 0
    print(f"{len(experiments)} files, {n_scored} scored points; harness {elapsed:.0f} s "
          f"(load average at start {load:.1f}, end {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores shared)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(
        {"files": [e.name for e in experiments], "results": results, "published": PUBLISHED,
         "seconds": elapsed, "load_average_start": load}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
