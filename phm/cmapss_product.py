"""C-MAPSS FD001 through the product path: ``python -m phm.cmapss_product``.

In a fresh database (its own ``PHM_DATA_ROOT``):

1. a ``cmapss`` site with one equipment per FD001 engine (``FD001-001`` ..., type ``turbine``) and
   one sensor per column (3 settings, 21 sensors; the column name is the sensor's measurement);
2. every engine's readings written through the readings store (``get_store().write``): **cycle c
   is the timestamp 2000-01-01 + c days**, so one model step (``step_s`` = 86400 s) is one cycle
   and RUL in days is RUL in cycles;
3. the harness's split (``models.evaluate.cmapss``: 5 folds by engine, seed 0, each held-out engine
   cut at a random cycle drawn by the same generator in the same order). For each fold: a failure
   work order (``ends_run``, ``failed_at`` = the end of the engine's last cycle) for every
   training engine, entered through ``/api/v1/work-orders/`` as an engineer would; a RUL model
   trained through ``POST /api/v1/rul-models/train`` (the job run as the worker runs it); every
   held-out engine estimated through the app (``phm.condition.rul.estimate_rul``) **as of its cut
   time**: the app reads only the readings before that moment, as it would in service, and the
   stored estimate is read back from ``GET /api/v1/equipment/<tag>/rul``;
4. RMSE (true RUL capped at 125, as the harness) and the share of held-out engines whose true RUL
   lies inside the 80 % interval, next to the harness's own numbers on the same split.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from argparse import Namespace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from phm.product_path import checked_json as _check, engineer_api_client

T0 = datetime(2000, 1, 1, tzinfo=timezone.utc)
DAY = timedelta(days=1)
SITE = "cmapss"
EQUIPMENT_TYPE = "turbine"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def tag_for(unit: int) -> str:
    return f"FD001-{unit:03d}"


def cycle_time(cycle: int) -> datetime:
    """The timestamp of a cycle's reading (the start of its one-day step)."""
    return T0 + cycle * DAY


def import_units(frame: pd.DataFrame) -> int:
    """The engines as equipment with one sensor per column, their readings through the store."""
    from phm.assets.models import Area, Equipment, Line, Sensor, Site
    from phm.telemetry.fields import datetime_to_us
    from phm.telemetry.store import get_store

    site, _ = Site.objects.get_or_create(code=SITE, defaults={"name": "NASA C-MAPSS FD001 (simulated turbofans)"})
    area, _ = Area.objects.get_or_create(site=site, code="fleet", defaults={"name": "Engine fleet"})
    line, _ = Line.objects.get_or_create(area=area, code="fd001", defaults={"name": "FD001"})
    columns = [c for c in frame.columns if c not in ("unit", "cycle")]
    store = get_store()
    written = 0
    for unit, rows in frame.groupby("unit", sort=True):
        equipment = Equipment.objects.create(line=line, tag=tag_for(int(unit)), name=f"FD001 engine {unit}", equipment_type=EQUIPMENT_TYPE)
        sensors = [Sensor.objects.create(equipment=equipment, tag=f"{equipment.tag}.{c}", name=c, measurement=c, sampling_period_s=86400.0)
                   for c in columns]
        times = [datetime_to_us(cycle_time(int(c))) for c in rows["cycle"]]
        batch = [(sensor.pk, ts, float(v), 192) for sensor, column in zip(sensors, columns) for ts, v in zip(times, rows[column].to_numpy())]
        written += store.write(batch)
    return written


def api_client():
    return engineer_api_client("cmapss-engineer")


def enter_failures(client, lengths: dict[int, int], units: list[int]) -> None:
    """Failure work orders of the training engines (the previous fold's are removed first)."""
    from phm.assets.models import WorkOrder

    WorkOrder.objects.filter(equipment__line__area__site__code=SITE).delete()
    for unit in units:  # in engine order: the model's units then sort like the harness's
        failed = cycle_time(lengths[unit]) + DAY  # the end of the last cycle's step
        _check(client.post("/api/v1/work-orders/", {
            "equipment": tag_for(unit), "number": f"WO-FD001-{unit:03d}", "kind": "corrective", "opened_at": failed.isoformat(),
            "failed_at": failed.isoformat(), "closed_at": failed.isoformat(), "ends_run": True, "source": "import",
        }, format="json"), f"work order of engine {unit}")


def train(client, params: dict) -> dict:
    from phm.condition.rul import run_rul_training

    job = _check(client.post("/api/v1/rul-models/train", {"equipment_type": EQUIPMENT_TYPE, "method": "lightgbm", "params": params,
                                                          "step_s": 86400.0}, format="json"), "training")
    done = run_rul_training(job_id=job["id"])  # what the cpu worker does with the queued job
    if done.status != "succeeded":
        raise RuntimeError(f"RUL training failed: {done.error}")
    return _check(client.get(f"/api/v1/rul-models/{done.result_id}"), "the new version")


def estimate(client, unit: int, observed_cycles: int) -> dict:
    """The app's estimate of an engine as of the end of its last observed cycle."""
    from phm.assets.models import Equipment
    from phm.condition.rul import estimate_rul

    equipment = Equipment.objects.get(tag=tag_for(unit))
    outcome = estimate_rul(equipment=equipment, now=cycle_time(observed_cycles) + DAY)
    if outcome.estimate is None:
        raise RuntimeError(f"no estimate for engine {unit}: {outcome.message}")
    body = _check(client.get(f"/api/v1/equipment/{equipment.tag}/rul"), f"RUL of {equipment.tag}")
    if body["estimate"]["as_of"] != outcome.estimate.as_of.isoformat().replace("+00:00", "Z"):
        raise RuntimeError(f"the API's estimate of {equipment.tag} is not the one just stored: {body['estimate']}")
    return body["estimate"]


def score(rows: pd.DataFrame, cap: float) -> dict:
    true = rows["true"].clip(upper=cap)
    inside = (rows["lower"] <= true) & (true <= rows["upper"])
    return {"rmse": float(np.sqrt(np.mean((rows["rul"] - true) ** 2))), "coverage": float(inside.mean()),
            "width": float((rows["upper"] - rows["lower"]).mean()), "units": len(rows)}


def run(frame: pd.DataFrame, *, folds: int, max_folds: int | None, seed: int, params: dict, harness: bool) -> dict:
    from models.datasets.cmapss import truncate_units, unit_folds
    from models.evaluate.cmapss import evaluate_fold

    cap = float(params.get("rul_cap", 125.0))
    lengths = frame.groupby("unit")["cycle"].max().astype(int).to_dict()
    client = api_client()
    rng = np.random.default_rng(seed)
    product_rows, harness_rows, per_fold = [], [], []
    for index, (train_units, test_units) in enumerate(unit_folds(frame["unit"].unique(), n_folds=folds, seed=seed)[:max_folds], start=1):
        held_out = truncate_units(frame[frame["unit"].isin(test_units)], rng=rng)  # the harness's draw, in the harness's order
        observed = held_out.observed.groupby("unit")["cycle"].max().astype(int).to_dict()
        clock = time.perf_counter()
        enter_failures(client, lengths, sorted(int(u) for u in train_units))
        version = train(client, {**params, "seed": seed})
        fold_rows = []
        for unit in sorted(observed):
            body = estimate(client, unit, observed[unit])
            fold_rows.append({"unit": unit, "rul": body["rul_days"], "lower": body["lower_days"], "upper": body["upper_days"],
                              "true": float(held_out.true_rul[unit]), "histories": body["histories"]})
        product_rows += fold_rows
        fold = {"fold": index, "histories": version["histories"], "product": score(pd.DataFrame(fold_rows), cap), "product_s": time.perf_counter() - clock}
        if harness:
            args = Namespace(cap=cap, seed=seed, time_budget=840.0, normalisation="unit", epochs=None, train_stride=None, verbose=False,
                             params={k: v for k, v in params.items() if k != "rul_cap"})
            outcome = evaluate_fold("lightgbm", frame[frame["unit"].isin(train_units)], held_out.observed, held_out.true_rul, args)
            bounds = outcome["intervals"]
            rows = [{"unit": int(u), "rul": float(bounds.loc[u, "rul"]), "lower": float(bounds.loc[u, "lower"]), "upper": float(bounds.loc[u, "upper"]),
                     "true": float(held_out.true_rul[u])} for u in bounds.index]
            harness_rows += rows
            fold["harness"] = score(pd.DataFrame(rows), cap)
        per_fold.append(fold)
        _log(f"  fold {index}: product RMSE {fold['product']['rmse']:.2f} cover {fold['product']['coverage']:.2f}"
             + (f" | harness RMSE {fold['harness']['rmse']:.2f} cover {fold['harness']['coverage']:.2f}" if harness else "")
             + f" ({fold['product_s']:.0f} s through the app, {version['histories']} histories)")
    result = {"folds": per_fold, "product": score(pd.DataFrame(product_rows), cap), "product_rows": product_rows}
    if harness:
        result["harness"] = score(pd.DataFrame(harness_rows), cap)
        result["harness_rows"] = harness_rows
    return result


def format_result(result: dict, *, units: int, folds: int) -> list[str]:
    lines = [f"C-MAPSS FD001, {units} engines, {folds}-fold split by engine (seed 0), held-out engines cut at a random cycle; "
             "true RUL capped at 125; 80 % interval",
             f"{'path':<9} {'RMSE':>6} {'cover80':>8} {'width':>6} {'units':>6}", "-" * 40]
    for path in ("product", "harness"):
        if path in result:
            row = result[path]
            lines.append(f"{path:<9} {row['rmse']:>6.2f} {row['coverage']:>8.2f} {row['width']:>6.1f} {row['units']:>6}")
    return lines


def setup_django(data_root: Path) -> None:
    from phm.skab_product import setup_django as setup

    setup(data_root)


def main(argv: list[str] | None = None) -> int:
    from models.datasets.cmapss import load_fd001
    from models.evaluate import shared_data_dir

    parser = argparse.ArgumentParser(prog="python -m phm.cmapss_product", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "cmapss", help="folder holding train_FD001.txt")
    parser.add_argument("--units", type=int, default=None, help="only the first N engines (quick checks)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--max-folds", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--params", type=json.loads, default={}, help="JSON RULEstimator parameters (both paths)")
    parser.add_argument("--no-harness", action="store_true")
    parser.add_argument("--work-dir", type=Path, default=None, help="folder for the fresh database (default a temporary folder)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not (args.data / "train_FD001.txt").is_file():
        print(f"cmapss_product: no train_FD001.txt under {args.data}", file=sys.stderr)
        return 2
    setup_django(args.work_dir or Path(tempfile.mkdtemp(prefix="phm-cmapss-")))
    from phm.condition.rul import DEFAULT_PARAMS

    frame = load_fd001(args.data)
    if args.units:
        frame = frame[frame["unit"] <= args.units]
    clock = time.perf_counter()
    written = import_units(frame)
    _log(f"imported {frame['unit'].nunique()} engines: {written} readings through the readings store ({time.perf_counter() - clock:.0f} s)")
    params = {**DEFAULT_PARAMS, **args.params}
    result = run(frame, folds=args.folds, max_folds=args.max_folds, seed=args.seed, params=params, harness=not args.no_harness)
    for line in format_result(result, units=frame["unit"].nunique(), folds=args.folds):
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
