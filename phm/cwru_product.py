"""CWRU through the product path: ``python -m phm.cwru_product``.

In a fresh database (its own ``PHM_DATA_ROOT``, SQLite, Celery eager), per direction
(``1797->1772``: train at 1797 rpm, hold out 1772 rpm; ``1772->1797`` the other way):

1. one equipment (``CWRU-<train rpm>``, a motor) with the drive-end measurement point ``DE`` and
   the 6205-2RS JEM SKF geometry;
2. every training-speed ``.npz`` uploaded through ``POST /api/v1/labelled-captures`` as an engineer
   would: cut into 1 s captures (12,000 samples), labelled with the file's class (``IR_007`` ...),
   each with the file's shaft speed;
3. ``POST /api/v1/classifiers/`` with no parameters (the shared ``VIBRATION_DEFAULTS``), the
   training job run by the Celery task (eager);
4. the held-out speed's recordings cut into the same 1 s captures and stored *unlabelled* as
   ingestion stores them (``WaveformCapture`` rows), each sent by the post_save hook
   (``phm.condition.classification_signals``) to the ``classify_new_capture`` task, stored with
   probabilities, fault alarms through the alarm services;
5. accuracy per capture from ``GET /api/v1/capture-classifications/``, next to the harness
   (``models.evaluate.cwru``, same defaults, same captures) run in the same command.

Normal exists at 1797 rpm only: in 1772->1797 the classifier never saw it, so the 1797 Normal
captures are classified and stored but left out of accuracy; what they were called is printed.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from phm.skab_product import setup_django
from phm.product_path import checked_json as _check, engineer_api_client

CAPTURE_SECONDS = 1.0
DIRECTIONS = {"1797->1772": (1797, 1772), "1772->1797": (1772, 1797)}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def create_equipment(tag: str):
    from phm.assets.models import Area, Equipment, EquipmentType, Line, MeasurementPoint, Site

    site, _ = Site.objects.get_or_create(code="cwru", defaults={"name": "CWRU bearing test rig"})
    area, _ = Area.objects.get_or_create(site=site, code="rig", defaults={"name": "Test rig"})
    line, _ = Line.objects.get_or_create(area=area, code="motor", defaults={"name": "2 hp motor"})
    equipment, _ = Equipment.objects.get_or_create(tag=tag, defaults={"line": line, "name": "CWRU 2 hp motor", "equipment_type": EquipmentType.MOTOR})
    point, _ = MeasurementPoint.objects.get_or_create(
        equipment=equipment, name="DE",
        defaults={"description": "drive-end accelerometer", "bearing_designation": "6205-2RS JEM SKF", "pitch_diameter_mm": 39.04,
                  "ball_diameter_mm": 7.94, "rolling_elements": 9},
    )
    return equipment, point


def api_client():
    return engineer_api_client("cwru-engineer")


def upload_labelled(client, equipment, recordings) -> int:
    """Each recording's file through the labelled-recording upload, in label order (the harness's order)."""
    count = 0
    for index, recording in enumerate(recordings):
        upload = io.BytesIO(recording.path.read_bytes())
        upload.name = recording.path.name
        body = _check(client.post("/api/v1/labelled-captures", {
            "file": upload, "equipment": equipment.tag, "point": "DE", "channel": "DE", "label": recording.label,
            "sample_rate_hz": 12_000, "speed_rpm": recording.rpm, "capture_seconds": CAPTURE_SECONDS,
            "start": (T0 + timedelta(hours=index)).isoformat(),
        }, format="multipart"), f"upload {recording.path.name}")
        count += len(body["captures"])
    return count


def train(client, equipment, name: str, params: dict) -> dict:
    body = _check(client.post("/api/v1/classifiers/", {"name": name, "equipment": [equipment.tag], "params": params}, format="json"), "create classifier")
    job = _check(client.get(f"/api/v1/classifier-jobs/{body['job']['id']}/"), "training job")
    if job["status"] != "succeeded":
        raise RuntimeError(f"training job {job['id']} is {job['status']}: {job['error']}")
    return job


def ingest_held_out(point, recordings) -> dict[int, str]:
    """Held-out captures stored unlabelled (as ingestion stores them) and classified by the task;
    returns capture id -> true label."""
    from django.db import transaction

    from phm.condition.models import CaptureSource, WaveformCapture

    length = int(CAPTURE_SECONDS * 12_000)
    truth: dict[int, str] = {}
    start = T0 + timedelta(days=30)
    for index, recording in enumerate(recordings):
        count = recording.signal.size // length
        with transaction.atomic():  # each capture's classification task is sent when this commits (post_save hook)
            captures = [
                WaveformCapture.objects.create(
                    equipment=point.equipment, point=point, captured_at=start + timedelta(hours=index, seconds=i), sample_rate_hz=12_000,
                    n_samples=length, samples=WaveformCapture.pack(recording.signal[i * length:(i + 1) * length]), speed_rpm=recording.rpm,
                    source=CaptureSource.API, origin=recording.path.name,
                )
                for i in range(count)
            ]
        truth.update({c.pk: recording.label for c in captures})
    return truth


def read_classifications(client, tag: str) -> dict[int, dict]:
    rows, page = {}, f"/api/v1/capture-classifications/?equipment={tag}"
    while page:
        body = _check(client.get(page), "classifications")
        rows.update({row["capture"]: row for row in body["results"]})
        page = body.get("next")
    return rows


def product_row(direction: str, *, data: Path, params: dict) -> dict:
    from models.datasets.cwru import load_recordings
    from phm.alarms.models import Alarm, AlarmTransition

    train_rpm, test_rpm = DIRECTIONS[direction]
    client = api_client()
    equipment, point = create_equipment(f"CWRU-{train_rpm}")
    train_recordings = load_recordings(data, train_rpm)
    clock = time.perf_counter()
    n_train = upload_labelled(client, equipment, train_recordings)
    _log(f"[{direction}] uploaded {n_train} labelled captures ({time.perf_counter() - clock:.0f} s)")
    clock = time.perf_counter()
    job = train(client, equipment, f"cwru-{train_rpm}", params)
    fit_s = time.perf_counter() - clock
    _log(f"[{direction}] trained v{job['version']} in {fit_s:.0f} s ({len(job['progress'])} progress rows)")
    known = {r.label for r in train_recordings}
    test_recordings = load_recordings(data, test_rpm)
    clock = time.perf_counter()
    truth = ingest_held_out(point, test_recordings)
    classify_s = time.perf_counter() - clock
    rows = read_classifications(client, equipment.tag)
    missing = sorted(set(truth) - set(rows))
    if missing:
        raise RuntimeError(f"{len(missing)} held-out captures were not classified (first {missing[:5]})")
    scored = [(truth[c], rows[c]["label"]) for c in truth if truth[c] in known]
    true_probability = [rows[c]["probabilities"][truth[c]] for c in truth if truth[c] in known]
    unseen = Counter(rows[c]["label"] for c in truth if truth[c] not in known)
    source = f"classifier:cwru-{train_rpm}"
    return {
        "direction": direction, "path": "product", "accuracy": float(np.mean([t == p for t, p in scored])), "n_test": len(scored),
        "mean_true_probability": float(np.mean(true_probability)),
        "unseen": dict(unseen), "fit_s": fit_s, "classify_s_per_capture": classify_s / len(truth),
        "max_fault_probability": max(rows[c]["fault_probability"] for c in truth),
        "alarms": Alarm.objects.filter(source=source).count(), "alarm_transitions": AlarmTransition.objects.filter(alarm__source=source).count(),
    }


def harness_row(direction: str, *, data: Path, params: dict) -> dict:
    from models.datasets.cwru import load_recordings
    from models.evaluate.cwru import cross_direction_split, parse_args, run_method

    train_rpm, test_rpm = DIRECTIONS[direction]
    split = cross_direction_split(load_recordings(data, train_rpm), load_recordings(data, test_rpm),
                                  capture_length=int(CAPTURE_SECONDS * 12_000), train_rpm=train_rpm, test_rpm=test_rpm)
    row = run_method("inceptiontime", split, parse_args([]), overrides=params)
    truth = np.searchsorted(row["_classes"], split.test_y)
    return {"direction": direction, "path": "harness", "accuracy": row["accuracy"], "n_test": row["n_test"],
            "mean_true_probability": float(row["_probabilities"][np.arange(len(truth)), truth].mean()),
            "unseen": (row.get("unseen") or {}).get("called", {}), "fit_s": row["fit_s"]}


def format_rows(rows: list[dict]) -> list[str]:
    lines = [f"{'direction':<12} {'path':<8} {'accuracy':>9} {'P(true)':>8} {'n test':>7} {'fit s':>6}  unseen-class captures called"]
    for row in rows:
        lines.append(f"{row['direction']:<12} {row['path']:<8} {row['accuracy']:>9.4f} {row['mean_true_probability']:>8.4f} {row['n_test']:>7} "
                     f"{row['fit_s']:>6.0f}  {row['unseen'] or '-'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    from models.evaluate import shared_data_dir

    parser = argparse.ArgumentParser(prog="python -m phm.cwru_product", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "cwru", help="folder holding 1797rpm/ and 1772rpm/")
    parser.add_argument("--directions", nargs="+", default=list(DIRECTIONS), choices=list(DIRECTIONS))
    parser.add_argument("--params", type=json.loads, default={}, help="JSON FaultClassifier parameters over the defaults (both rows)")
    parser.add_argument("--no-harness", action="store_true", help="skip the harness rows")
    parser.add_argument("--work-dir", type=Path, default=None, help="folder for the fresh database (default a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    if not all((args.data / f"{rpm}rpm").is_dir() for rpm in (1797, 1772)):
        print(f"cwru_product: no 1797rpm/ and 1772rpm/ folders under {args.data}", file=sys.stderr)
        return 2
    setup_django(args.work_dir or Path(tempfile.mkdtemp(prefix="phm-cwru-")))
    from phm.celery import app

    app.conf.task_always_eager = True  # the Celery task path, run in this process
    rows = []
    for direction in args.directions:
        rows.append(product_row(direction, data=args.data, params=args.params))
        _log(json.dumps(rows[-1]))
        if not args.no_harness:
            rows.append(harness_row(direction, data=args.data, params=args.params))
            _log(json.dumps(rows[-1]))
    print(f"CWRU through the product path: 1 s captures, accuracy per held-out capture (classifier params {args.params or 'defaults'})")
    for line in format_rows(rows):
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
