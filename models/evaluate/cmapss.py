"""C-MAPSS FD001 remaining-useful-life harness: ``python -m models.evaluate cmapss --data DIR``.

Protocol: 5-fold cross-validation *by engine unit* on ``train_FD001.txt`` (100 run-to-failure
engines; a unit's rows are never split between training and test). Each held-out unit is cut
at a random cycle, seeded, the way the official test file was made (``truncate_units``: observed
length uniform in [31, L-1] cycles, 31 being the shortest official FD001 test history); the
model predicts the RUL at that last observed cycle. Scores compare with the true RUL capped at
125, as in the published FD001 numbers (README of the shared data): RMSE and the PHM08 score
(summed over units, late predictions cost more). Published FD001 test-set RMSE: CNN 18.45,
deep LSTM 16.14, MS-DCNN 11.44.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.datasets.cmapss import load_fd001, truncate_units, unit_folds
from models.evaluate import shared_data_dir
from models.metrics.regression import phm08_score, regression_report
from models.rul import RULEstimator

PUBLISHED_RMSE = {"CNN": 18.45, "deep LSTM": 16.14, "MS-DCNN": 11.44}

REPROGRAM: dict[str, Any] = {
    "backbone_mode": "pretrained", "num_layers": 2, "patch_len": 6, "epochs": 10, "batch_size": 64,
    "train_stride": 5, "max_steps_per_epoch": 25, "learning_rate": 2e-3,
}
METHOD_SETTINGS: dict[str, dict[str, Any]] = {
    "inceptiontime": {"method": "inceptiontime", "epochs": 8, "batch_size": 128, "train_stride": 3},
    # Rolling statistics + gradient boosting: every cycle's window (seconds of CPU).
    "lightgbm": {"method": "lightgbm", "train_stride": 1},
    # 2 of SmolLM2's 30 layers and capped steps per epoch: see the CWRU harness for the CPU cost.
    "reprogram": {"method": "reprogram", **REPROGRAM},
    "reprogram_no_llm": {"method": "reprogram", **REPROGRAM, "backbone_mode": "none"},
    "reprogram_random_backbone": {"method": "reprogram", **REPROGRAM, "backbone_mode": "random"},
}


def evaluate_fold(name: str, train: pd.DataFrame, observed: pd.DataFrame, true_rul: pd.Series, args: argparse.Namespace) -> dict[str, Any]:
    settings = {**METHOD_SETTINGS[name], **(getattr(args, "params", None) or {})}
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    if args.train_stride is not None:
        settings["train_stride"] = args.train_stride
    progress = None
    if args.verbose:
        def progress(record: dict[str, float]) -> None:
            print(f"      epoch {record['epoch']:.0f}/{record['epochs']:.0f} loss {record['loss']:.4f} "
                  f"val {record['validation_loss']:.4f} {record['elapsed_s']:.0f}s", flush=True)
    estimator = RULEstimator(rul_cap=args.cap, seed=args.seed, time_budget_s=args.time_budget,
                             normalisation=args.normalisation, progress=progress, **settings)
    started = time.perf_counter()
    estimator.fit(train)
    fit_seconds = time.perf_counter() - started
    intervals = estimator.predict_interval(observed)
    predicted = intervals["rul"].rename("rul")
    trainable, total = estimator.parameter_counts()
    return {
        "predicted": predicted,
        "intervals": intervals,
        "true": true_rul.loc[predicted.index].clip(upper=args.cap),
        "fit_s": fit_seconds,
        "epochs_run": estimator.training_log.epochs_run,
        "trainable_parameters": trainable,
        "total_parameters": total,
    }


def run_method(name: str, frame: pd.DataFrame, args: argparse.Namespace) -> dict[str, Any]:
    folds = unit_folds(frame["unit"].unique(), n_folds=args.folds, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    predicted, true, fold_rmse, fit_seconds, intervals = [], [], [], [], []
    outcome: dict[str, Any] = {}
    for index, (train_units, test_units) in enumerate(folds[: args.max_folds], start=1):
        held_out = truncate_units(frame[frame["unit"].isin(test_units)], rng=rng)
        outcome = evaluate_fold(name, frame[frame["unit"].isin(train_units)], held_out.observed, held_out.true_rul, args)
        predicted.append(outcome["predicted"])
        true.append(outcome["true"])
        intervals.append(outcome["intervals"])
        fold_rmse.append(regression_report(outcome["true"], outcome["predicted"]).rmse)
        fit_seconds.append(outcome["fit_s"])
        print(f"    fold {index}: RMSE {fold_rmse[-1]:.2f}  fit {outcome['fit_s']:.0f}s  epochs {outcome['epochs_run']}", flush=True)
    all_predicted, all_true = pd.concat(predicted), pd.concat(true)
    report = regression_report(all_true.to_numpy(), all_predicted.to_numpy())
    bounds = pd.concat(intervals)
    return {
        **interval_report(bounds, all_true),
        "method": name,
        "folds": len(fold_rmse),
        **report.as_dict(),
        "phm08_score_per_fold_mean": float(np.mean([phm08_score(t, p) for t, p in zip(true, predicted)])),
        "rmse_fold_std": float(np.std(fold_rmse)),
        "fit_s_mean": float(np.mean(fit_seconds)),
        "fit_s_max": float(np.max(fit_seconds)),
        "trainable_parameters": outcome["trainable_parameters"],
        "total_parameters": outcome["total_parameters"],
    }


def interval_report(bounds: pd.DataFrame, true: pd.Series) -> dict[str, float]:
    """Coverage of the prediction interval (share of units whose capped true RUL lies inside) and
    its mean width, in cycles."""
    true = true.loc[bounds.index]
    inside = (bounds["lower"] <= true) & (true <= bounds["upper"])
    return {"interval_coverage": float(inside.mean()), "interval_width_mean": float((bounds["upper"] - bounds["lower"]).mean())}


def format_table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'method':<27} {'RMSE':>6} {'±fold':>6} {'MAE':>6} {'PHM08':>9} {'folds':>5} {'units':>5} {'fit s':>7} "
        f"{'trainable':>11} {'share':>8} {'cover80':>7} {'width':>6}"
    )
    lines = ["C-MAPSS FD001, 5-fold CV by unit, last cycle of randomly truncated held-out units (RUL cap 125); "
             "cover80: share of units whose true RUL is inside the 80 % interval, width: its mean width in cycles", header, "-" * len(header)]
    for row in rows:
        if "error" in row:
            lines.append(f"{row['method']:<27} failed: {row['error']}")
            continue
        share = row["trainable_parameters"] / row["total_parameters"] if row["total_parameters"] else 0.0
        lines.append(
            f"{row['method']:<27} {row['rmse']:>6.2f} {row['rmse_fold_std']:>6.2f} {row['mae']:>6.2f} {row['phm08_score']:>9.1f} "
            f"{row['folds']:>5} {row['n_samples']:>5} {row['fit_s_mean']:>7.0f} {row['trainable_parameters']:>11,} {share:>8.2%} "
            f"{row['interval_coverage']:>7.2f} {row['interval_width_mean']:>6.1f}"
        )
    for name, value in PUBLISHED_RMSE.items():
        lines.append(f"{'published ' + name:<27} {value:>6.2f}   (official test set, not this CV)")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models.evaluate cmapss", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "cmapss", help="folder holding train_FD001.txt")
    parser.add_argument("--methods", nargs="+", default=list(METHOD_SETTINGS), choices=list(METHOD_SETTINGS))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--max-folds", type=int, default=None, help="run only the first N folds (quick checks)")
    parser.add_argument("--cap", type=float, default=125.0)
    parser.add_argument("--normalisation", choices=["unit", "global", "both"], default="unit")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--train-stride", type=int, default=None, help="train on every k-th cycle's window (CPU time / k)")
    parser.add_argument("--time-budget", type=float, default=840.0, help="seconds of training per model before stopping at an epoch end")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--params", type=json.loads, default={}, help="JSON RULEstimator parameters over the method's settings")
    parser.add_argument("--output", type=Path, default=None, help="write all rows as JSON here")
    parser.add_argument("--table-output", type=Path, default=None, help="write the printed table here too")
    parser.add_argument("--verbose", action="store_true", help="print per-epoch progress")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not (args.data / "train_FD001.txt").is_file():
        print(f"no train_FD001.txt in {args.data} (pass --data or set PHM_DATA_DIR)", file=sys.stderr)
        return 2
    frame = load_fd001(args.data)
    print(f"FD001: {frame['unit'].nunique()} units, {len(frame)} cycles; {args.folds}-fold CV by unit", flush=True)
    rows = []
    for name in args.methods:
        print(f"  {name} ...", flush=True)
        try:
            row = run_method(name, frame, args)
        except ImportError as error:  # the reprogramming trunk is optional in a partial checkout
            row = {"method": name, "error": f"{type(error).__name__}: {error}"}
        rows.append(row)
        print("   ", json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    table = format_table(rows)
    print()
    print(table)
    if args.table_output:
        args.table_output.parent.mkdir(parents=True, exist_ok=True)
        args.table_output.write_text(table + "\n")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": rows}, indent=2))
    return 0
