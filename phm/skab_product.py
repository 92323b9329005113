"""SKAB through the product path: ``python -m phm.skab_product``.

In a fresh database (its own ``PHM_DATA_ROOT``):

1. a ``skab`` site with one valve per SKAB file (``SKAB-VALVE1-00`` ...), eight sensors each;
2. every file ingested through the historian-file connector (a ``FileIngestJob``: the same reader,
   quarantine and storage code as an upload);
3. detectors created and trained through the REST API as an engineer would: per unit (each valve on
   its own first 400 rows) and fleet (one pooled model over every valve's first 400 rows,
   calibrated per valve: ``scope = fleet``), the job run as a worker runs it;
4. a backtest (``phm.backtests.services``) of each detector over the rest of its file: the live
   scoring code and the live alarm rules (on/off delay, deadband);
5. the backtest's alarms scored point-wise against SKAB's labels with the harness's metric,
   printed next to the harness's own numbers for the same methods on the same files.

The alarm rules are set to the harness's post-processing: threshold = the detector's calibrated
limit (score 1.0), clear below 0.8 (deadband 0.2), on- and off-delay of ``min_duration - 1``
seconds (5 samples at 1 Hz). SKAB rows are 1 to 2 s apart (a few gaps of a minute), so a
time-based delay can confirm after fewer samples than the harness's count: reported as is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from phm.product_path import checked_json as _check, engineer_api_client

METHODS = {
    # label -> (method, params): the harness's variants at the harness's settings
    "pca": ("pca", {}),
    "no-llm": ("reprogram", {"llm": "none", "epochs": 3, "seq_len": 48, "horizon": 16, "train_stride": 1, "seed": 0,
                             "num_layers": 2, "domain": "Water pump test rig, 8 sensors at 1 Hz."}),
    "reprogram": ("reprogram", {"llm": "backbone", "epochs": 3, "seq_len": 48, "horizon": 16, "train_stride": 1, "seed": 0,
                                "num_layers": 2, "domain": "Water pump test rig, 8 sensors at 1 Hz."}),
}
SITE = "skab"
FLEET_GROUP = "skab-valve1"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def setup_django(data_root: Path) -> None:
    os.environ["PHM_DATA_ROOT"] = str(data_root)
    os.environ.pop("DATABASE_URL", None)  # a fresh SQLite file under the data root
    os.environ.pop("PHM_BROKER_URL", None)  # the filesystem broker there: queued tasks go nowhere, jobs run here
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "phm.settings")
    os.environ.setdefault("PHM_DIAGNOSIS_WARM_UP", "0")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def tag_for(index: int) -> str:
    return f"SKAB-VALVE1-{index:02d}"


def sensor_tag(equipment: str, column: str) -> str:
    return f"{equipment}.{column.replace(' ', '_')}"


@dataclass
class Unit:
    name: str  # SKAB file, e.g. valve1/3
    tag: str  # equipment tag
    path: Path
    times: list[datetime]  # every row's timestamp (UTC)
    labels: np.ndarray  # anomaly per row


def create_site(units: list[Unit]) -> None:
    """The skab site: one valve per file, the eight SKAB sensors with their names as measurement
    (the role a fleet detector matches channels by)."""
    from models.datasets.skab import SENSOR_COLUMNS
    from phm.assets.models import Area, Equipment, EquipmentType, Line, Sensor, Site

    site, _ = Site.objects.get_or_create(code=SITE, defaults={"name": "SKAB water pump test rig"})
    area, _ = Area.objects.get_or_create(site=site, code="rig", defaults={"name": "Test rig"})
    line, _ = Line.objects.get_or_create(area=area, code="valve1", defaults={"name": "valve1 experiments"})
    for unit in units:
        equipment, _ = Equipment.objects.get_or_create(
            tag=unit.tag, defaults={"line": line, "name": f"SKAB {unit.name}", "equipment_type": EquipmentType.VALVE}
        )
        for column in SENSOR_COLUMNS:
            Sensor.objects.get_or_create(
                tag=sensor_tag(unit.tag, column), defaults={"equipment": equipment, "name": column, "measurement": column, "sampling_period_s": 1.0}
            )


def ingest(unit: Unit) -> dict:
    """One SKAB CSV through the historian-file job (the upload connector's code path)."""
    from django.core.files import File

    from models.datasets.skab import SENSOR_COLUMNS
    from phm.telemetry.jobs import create_file_job, run_file_job

    spec = {
        "layout": "wide", "timestamp_column": "datetime", "separator": ";", "timezone": "UTC", "only_mapped": True,
        "column_map": {column: sensor_tag(unit.tag, column) for column in SENSOR_COLUMNS},
    }
    with unit.path.open("rb") as handle:
        job = create_file_job(uploaded_file=File(handle, name=f"{unit.tag}.csv"), spec=spec)
    job = run_file_job(job_id=job.pk)
    if job.status != "succeeded":
        raise RuntimeError(f"ingesting {unit.path} failed: {job.error}")
    return {"accepted": job.accepted, "rejected": job.rejected, "duplicate": job.duplicate}


def api_client():
    return engineer_api_client("skab-engineer")


def alarm_settings(params: dict) -> dict:
    """The detector's alarm rules equal to the harness's post-processing (see the module docstring)."""
    from models.detectors import DetectorParams

    p = DetectorParams.for_method("pca", **{k: v for k, v in params.items() if k in ("min_duration", "release_ratio")})
    return {"threshold_kind": "detector", "deadband": round(1 - p.release_ratio, 6), "on_delay_s": float(p.min_duration - 1),
            "off_delay_s": float(p.min_duration - 1)}


def create_detector(client, unit: Unit, *, name: str, method: str, params: dict, scope: str) -> dict:
    from models.datasets.skab import SENSOR_COLUMNS

    body = {
        "equipment": unit.tag, "name": name, "method": method, "params": params,
        "sensors": [sensor_tag(unit.tag, c) for c in SENSOR_COLUMNS], "stride_s": 1.0,
        # Context long enough to reach the file's first row: the forecaster's windows then start
        # where the harness's start (it scores the whole file).
        "window_s": 7200.0, "max_chunk_steps": 20000, "scope": scope, "fleet_group": f"{FLEET_GROUP}-{name}" if scope == "fleet" else "",
        **alarm_settings(params),
    }
    return _check(client.post("/api/v1/detectors/", body, format="json"), f"creating {name} on {unit.tag}")


def train_range(unit: Unit, train_rows: int) -> tuple[datetime, datetime]:
    # End half a second after the last training row: exclusive, and before the next row.
    return unit.times[0], unit.times[train_rows - 1] + timedelta(milliseconds=500)


def train(client, detector: dict, unit: Unit, train_rows: int, member_ranges: dict | None = None) -> None:
    from phm.analytics.training import run_training

    start, end = train_range(unit, train_rows)
    body = {"start": start.isoformat(), "end": end.isoformat(), "activate": True}
    if member_ranges:
        body["member_ranges"] = member_ranges
    job = _check(client.post(f"/api/v1/detectors/{detector['id']}/train", body, format="json"), f"training {detector['name']}")
    done = run_training(job_id=job["id"])  # what the cpu worker does with the queued job
    if done.status != "succeeded":
        raise RuntimeError(f"training {detector['name']} on {unit.tag} failed: {done.error}")


def backtest_alarms(unit: Unit, detector_id: int, train_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Backtest the detector's active version over the rows after training; return the point-wise
    alarm state and the replayed scores of those rows."""
    from phm.analytics.models import ModelVersion
    from phm.assets.models import Equipment
    from phm.backtests import services
    from phm.backtests.models import BacktestAlarm, BacktestSeries

    version = ModelVersion.objects.get(config_id=detector_id, is_active=True)
    equipment = Equipment.objects.get(tag=unit.tag)
    run = services.create_backtest(
        start=unit.times[train_rows - 1], end=unit.times[-1], equipment=[equipment], versions=[version], diagnose=False,
        name=f"skab {unit.name}", enqueue=False,
    )
    run = services.run_backtest(run_id=run.pk)
    if run.status != "succeeded":
        raise RuntimeError(f"backtest of {unit.tag} failed: {run.error}")
    times = np.array([t.timestamp() for t in unit.times[train_rows:]])
    predicted = np.zeros(len(times), dtype=bool)
    for alarm in BacktestAlarm.objects.filter(run=run):
        end = alarm.cleared_at.timestamp() if alarm.cleared_at else np.inf
        predicted |= (times >= alarm.raised_at.timestamp()) & (times < end)
    series = BacktestSeries.objects.get(run=run)
    scores = dict(zip(np.round(series.times, 3), series.scores))
    replayed = np.array([scores.get(round(t, 3), np.nan) for t in times])
    return predicted, replayed


def load_units(data: Path, files: list[str] | None) -> list[Unit]:
    from models.datasets.skab import load_skab

    experiments = load_skab(data, groups=("valve1",))
    units = []
    for experiment in experiments:
        if files and experiment.name not in files and experiment.name.split("/")[-1] not in files:
            continue
        stem = experiment.name.split("/")[-1]
        times = [t.to_pydatetime().replace(tzinfo=timezone.utc) for t in experiment.sensors.index]
        units.append(Unit(experiment.name, tag_for(int(stem)), data / "valve1" / f"{stem}.csv", times, experiment.anomaly.to_numpy()))
    return units


ANOMALY_FREE_TAG = "SKAB-ANOMALY-FREE"


def anomaly_free_unit(data: Path) -> Unit:
    """SKAB's anomaly-free recording (same rig, another day and operating point) as one more valve."""
    from models.datasets.skab import read_skab_csv

    path = data / "anomaly-free" / "anomaly-free.csv"
    sensors, anomaly = read_skab_csv(path)
    times = [t.to_pydatetime().replace(tzinfo=timezone.utc) for t in sensors.index]
    return Unit("anomaly-free", ANOMALY_FREE_TAG, path, times, anomaly.to_numpy())


def anomaly_free_rows(unit: Unit, label: str, *, params_override: dict, train_rows: int, suffix: str = "") -> list[dict]:
    """False alarms on the anomaly-free recording (first ``train_rows`` rows train): a per-unit
    detector through the product and the harness's per-file fit of the same method."""
    from models.datasets.skab import SkabExperiment, read_skab_csv
    from models.evaluate.skab import Variant, run_variant

    product, _ = product_rows([unit], label, scope="unit", params_override=params_override, train_rows=train_rows, suffix=f"{suffix}-af")
    sensors, anomaly = read_skab_csv(unit.path)
    method, params = METHODS[label]
    harness = run_variant(Variant(f"harness {label} anomaly-free", method, False, {**params, **params_override}),
                          [SkabExperiment("anomaly-free", sensors, anomaly)], _log)
    return [{**product, "path": "product"}, {**harness, "label": label, "scope": "unit", "path": "harness"}]


def product_rows(units: list[Unit], label: str, *, scope: str, params_override: dict, train_rows: int, suffix: str = "") -> tuple[dict, dict]:
    """Create, train and backtest one method on every unit through the product; score point-wise.
    Returns the row and the replayed scores per file (to compare with the harness's)."""
    from models.metrics.detection import DetectionCounts, confusion_counts, detection_scores

    method, params = METHODS[label]
    params = {**params, **params_override}
    client = api_client()
    name = f"{label.replace('_', '-')}-{scope}{suffix}"
    started = time.perf_counter()
    detectors = {unit.tag: create_detector(client, unit, name=name, method=method, params=params, scope=scope) for unit in units}
    if scope == "fleet":
        ranges = {u.tag: [t.isoformat() for t in train_range(u, train_rows)] for u in units}
        train(client, detectors[units[0].tag], units[0], train_rows, member_ranges=ranges)
    else:
        for unit in units:
            train(client, detectors[unit.tag], unit, train_rows)
    trained = time.perf_counter() - started
    total = DetectionCounts(0, 0, 0, 0)
    per_file, scores = {}, {}
    for unit in units:
        predicted, replayed = backtest_alarms(unit, detectors[unit.tag]["id"], train_rows)
        counts = confusion_counts(unit.labels[train_rows:], predicted)
        per_file[unit.name] = detection_scores(counts).f1
        scores[unit.name] = replayed
        total = total + counts
    result = {"label": label, "scope": scope, "params": params, **detection_scores(total).as_dict(), "per_file_f1": per_file,
              "train_s": trained, "total_s": time.perf_counter() - started}
    _log(f"  product {label} ({scope}): F1 {result['f1']:.3f} FAR {result['far_percent']:.1f}% ({result['total_s']:.0f} s)")
    return result, scores


def harness_row(units: list[Unit], label: str, *, pooled: bool, params_override: dict, data: Path) -> dict:
    """The harness (``models.evaluate.skab.run_variant``) on the same files."""
    from models.datasets.skab import load_skab
    from models.evaluate.skab import Variant, run_variant

    method, params = METHODS[label]
    params = {**params, **params_override}
    wanted = {u.name for u in units}
    experiments = [e for e in load_skab(data, groups=("valve1",)) if e.name in wanted]
    result = run_variant(Variant(f"harness {label}", method, pooled, params), experiments, _log)
    result["scope"] = "fleet" if pooled else "unit"
    return result


def fitted_for_choice(label: str, scope: str, experiments) -> dict:
    """The models the calibration is chosen with, fitted on the choosing files' training parts
    only: one pooled model recalibrated per file (fleet), or one model per file (unit)."""
    from models.detectors import AnomalyDetector
    from models.fleet import fit_fleet

    method, params = METHODS[label]
    if scope == "fleet":
        return fit_fleet(method, params, {e.name: e.train for e in experiments}).units
    return {e.name: AnomalyDetector(method, **params).fit(e.train) for e in experiments}


def halves(units: list[Unit]) -> tuple[list[Unit], list[Unit]]:
    """The first and the second half of the files in recording order (a stricter split than
    interleaving: the rig drifts over the day)."""
    middle = len(units) // 2
    return units[:middle], units[middle:]


def protocol_rows(units: list[Unit], *, methods: list[str], scopes: list[str], far_target: float, data: Path, train_rows: int) -> list[dict]:
    """Choose quantile and margin on one half (its labels), report through the product on the
    other half, then swap; the shipped defaults on the reporting half (harness) for reference."""
    from models.calibration_choice import Case, choose_calibration
    from models.datasets.skab import load_skab

    experiments = {e.name: e for e in load_skab(data, groups=("valve1",))}
    first, second = halves(units)
    rows = []
    for split, (choosing, reporting) in enumerate(((first, second), (second, first))):
        chosen_on = f"{choosing[0].name.split('/')[-1]}-{choosing[-1].name.split('/')[-1]}"
        reported_on = f"{reporting[0].name.split('/')[-1]}-{reporting[-1].name.split('/')[-1]}"
        cases = [Case(u.name, experiments[u.name].sensors, u.labels, train_rows) for u in choosing]
        for label in methods:
            for scope in scopes:
                clock = time.perf_counter()
                choice = choose_calibration(fitted_for_choice(label, scope, [experiments[u.name] for u in choosing]), cases, far_target=far_target)
                _log(f"  {label} ({scope}) chosen on {chosen_on}: quantile {choice.quantile} margin {choice.margin}"
                     f"{'' if choice.reached_target else ' (no candidate reached the FAR target)'} ({time.perf_counter() - clock:.0f} s)")
                common = {"label": label, "scope": scope, "chosen_on": chosen_on, "reported_on": reported_on, "choice": choice.params,
                          "reached_target": choice.reached_target}
                product, _ = product_rows(reporting, label, scope=scope, params_override=choice.params, train_rows=train_rows,
                                          suffix=f"-p{split}")
                rows.append({**product, **common, "path": "product"})
                harness = harness_row(reporting, label, pooled=scope == "fleet", params_override=choice.params, data=data)
                rows.append({**harness, **common, "path": "harness"})
                default = harness_row(reporting, label, pooled=scope == "fleet", params_override={}, data=data)
                rows.append({**default, **common, "choice": {}, "path": "defaults"})
    return rows


def format_protocol(rows: list[dict]) -> list[str]:
    lines = [f"{'method':<10} {'scope':<6} {'chosen on':<10} {'reported on':<12} {'quantile':>8} {'margin':>6} {'path':<9} "
             f"{'F1':>6} {'FAR %':>7} {'MAR %':>7}", "-" * 92]
    for row in rows:
        choice = row["choice"]
        q = f"{choice['quantile']:g}" if choice else "default"
        m = f"{choice['margin']:g}" if choice else ""
        lines.append(f"{row['label']:<10} {row['scope']:<6} {row['chosen_on']:<10} {row['reported_on']:<12} {q:>8} {m:>6} {row['path']:<9} "
                     f"{row['f1']:>6.3f} {row['far_percent']:>7.2f} {row['mar_percent']:>7.2f}")
    return lines


def format_rows(rows: list[dict]) -> list[str]:
    lines = [f"{'method':<12} {'scope':<6} {'path':<8} {'F1':>6} {'FAR %':>7} {'MAR %':>7} {'s':>6}", "-" * 58]
    for row in rows:
        lines.append(f"{row['label']:<12} {row['scope']:<6} {row['path']:<8} {row['f1']:>6.3f} {row['far_percent']:>7.2f} "
                     f"{row['mar_percent']:>7.2f} {row.get('total_s', 0):>6.0f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    from models.evaluate import shared_data_dir

    parser = argparse.ArgumentParser(prog="python -m phm.skab_product", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "skab", help="SKAB folder (with valve1/)")
    parser.add_argument("--methods", nargs="*", default=["pca", "no-llm"], choices=sorted(METHODS),
                        help="methods to run (default pca no-llm; 'reprogram' loads the language model: ~5 min of CPU per row)")
    parser.add_argument("--scopes", nargs="*", default=["unit", "fleet"], choices=["unit", "fleet"])
    parser.add_argument("--files", nargs="*", default=None, help="valve1 files to use (stems such as 0 3 12; default all)")
    parser.add_argument("--params", type=json.loads, default={}, help="JSON detector parameters overriding the defaults (e.g. quantile, margin)")
    parser.add_argument("--no-harness", action="store_true", help="skip the harness rows")
    parser.add_argument("--work-dir", type=Path, default=None, help="folder for the fresh database (default a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--anomaly-free", action="store_true",
                        help="also the anomaly-free recording (another operating point): false alarms of per-unit detectors")
    parser.add_argument("--protocol", action="store_true",
                        help="choose quantile and margin on one half of the files, report on the other half through the product, swap")
    parser.add_argument("--far-target", type=float, default=10.0, help="false-alarm rate (%%) the protocol's choice aims at (default 10)")
    args = parser.parse_args(argv)
    if not (args.data / "valve1").is_dir():
        print(f"skab_product: no SKAB valve1 folder under {args.data}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    setup_django(args.work_dir or Path(tempfile.mkdtemp(prefix="phm-skab-")))
    from models.datasets.skab import TRAIN_ROWS

    units = load_units(args.data, args.files)
    free = anomaly_free_unit(args.data) if args.anomaly_free else None
    create_site(units + ([free] if free else []))
    clock = time.perf_counter()
    ingested = [ingest(unit) for unit in units + ([free] if free else [])]
    _log(f"ingested {len(units)} files through the historian-file job: {sum(i['accepted'] for i in ingested)} readings, "
         f"{sum(i['rejected'] for i in ingested)} rejected ({time.perf_counter() - clock:.0f} s)")
    if args.protocol:
        rows = protocol_rows(units, methods=args.methods, scopes=args.scopes, far_target=args.far_target, data=args.data, train_rows=TRAIN_ROWS)
        print(f"SKAB valve1, chosen-on-half protocol: calibration chosen on one half of the files (FAR target {args.far_target:g} %), "
              "reported on the other half")
        for line in format_protocol(rows):
            print(line)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"files": [u.name for u in units], "protocol": rows}, indent=2, default=str))
        return 0
    rows = []
    for label in args.methods:
        for scope in args.scopes:
            product, _ = product_rows(units, label, scope=scope, params_override=args.params, train_rows=TRAIN_ROWS)
            rows.append({**product, "path": "product"})
            if not args.no_harness:
                # The harness's per-file fit is the unit scope, its pooled fit the fleet scope.
                harness = harness_row(units, label, pooled=scope == "fleet", params_override=args.params, data=args.data)
                rows.append({**harness, "label": label, "path": "harness"})
    print(f"SKAB valve1, {len(units)} files, first {TRAIN_ROWS} rows of each for training, the rest scored point-wise")
    for line in format_rows(rows):
        print(line)
    if free is not None:
        free_rows = [row for label in args.methods for row in anomaly_free_rows(free, label, params_override=args.params, train_rows=TRAIN_ROWS)]
        print(f"anomaly-free recording ({len(free.times) - TRAIN_ROWS} scored points, all normal): share of points in alarm")
        for row in free_rows:
            print(f"{row['label']:<12} {row['scope']:<6} {row['path']:<8} FAR {row['far_percent']:6.2f} %")
        rows += [{**row, "file": "anomaly-free"} for row in free_rows]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"files": [u.name for u in units], "rows": rows}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
