"""Re-diagnose a finished plant trial's alarms with any diagnoser folder: why is the raise wrong?

    python bench/diagnose_trial.py --seed-dir /tmp/trial/seed-1 --diagnoser /tmp/trial/diagnoser [--json out.json]

``python -m phm.trial --work-dir W`` leaves each seed's database under ``W/seed-<n>``. This reads
that database's backtest alarms (the raises the product's detectors made on the hidden faults),
rebuilds each incident from storage exactly as the backtest does (``phm.backtests.services.diagnose_at``:
``build_incident`` + ``diagnose(alarm=True)``) at the raise, +5 and +15 min while the alarm is open,
and prints per fault kind: top-1 accuracy, the confusion at the raise, the median top probability and
the share under 0.5, and, per alarm, minutes into the fault, severity, ramp and sensor. So the
diagnoser can be changed and measured on the trial's own alarms without replaying the detectors.

``--without-residuals`` and ``--booster-weight W`` (0: the fusion network alone, 1: the summary
booster's trees alone) are the ablations.

``--explain {template,model,both}`` also reads each diagnosis's explanation with the check and the
independent slot reader (``bench/_explain_rows.py``): the template sentence (what the trial stores),
and for the first ``--explain-limit`` diagnoses the language model's raw summary and what the check
lets through (``FaultDiagnoser.explain``, generation budget ``--budget-s``); it prints the
explanation table (per wording: passes the check, faithful, contradictions, agreement).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _explain_rows  # noqa: E402

OFFSETS_S = (0, 300, 900)


def _setup(seed_dir: Path) -> None:
    os.environ["PHM_DATA_ROOT"] = str(seed_dir)
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "phm.settings")
    os.environ.setdefault("PHM_DIAGNOSIS_WARM_UP", "0")
    import django

    django.setup()


def rediagnose(*, seed_dir: Path, diagnoser_dir: Path, explain: str | None = None, explain_limit: int | None = None,
               budget_s: float = 60.0, booster_weight: float | None = None) -> list[dict]:
    """One row per (alarm of a fault, offset) of the seed's last backtest; with ``explain`` its
    explanations too (``template``: the template sentence; ``model``/``both``: also the language
    model's wording for the first ``explain_limit`` rows)."""
    _setup(seed_dir)
    from models.diagnosis import FaultDiagnoser
    from phm.analytics.diagnosis import DiagnosisConfig
    from phm.backtests.models import BacktestAlarm, BacktestRun
    from phm.backtests.services import diagnose_at

    run = BacktestRun.objects.order_by("-pk").first()
    if run is None:
        raise SystemExit(f"no backtest in {seed_dir}")
    diagnoser = FaultDiagnoser.load(diagnoser_dir)
    if booster_weight is not None:  # ablation: the network alone (0), the trees alone (1)
        from dataclasses import replace

        if booster_weight > 0 and diagnoser.booster is None:
            raise SystemExit(f"{diagnoser_dir} has no summary booster")
        diagnoser.config = replace(diagnoser.config, booster_weight=booster_weight)
    recording = _explain_rows.RecordingDiagnoser(diagnoser)
    if explain in ("model", "both"):
        import torch

        torch.set_num_threads(1)  # the shared 2-core machine
        _explain_rows.install_generator(diagnoser, budget_s)
    config = DiagnosisConfig.from_env()
    rows = []
    for alarm in BacktestAlarm.objects.filter(run=run, fault__isnull=False).select_related("fault", "equipment").order_by("raised_at"):
        fault = alarm.fault
        for offset in OFFSETS_S:
            at = alarm.raised_at + timedelta(seconds=offset)
            if at > run.end or (alarm.cleared_at is not None and at > alarm.cleared_at):
                break
            recording.last = None
            result = diagnose_at(diagnoser=recording if explain else diagnoser, equipment=alarm.equipment, at=at, config=config)
            probabilities = result.probabilities
            rows.append({
                "equipment": alarm.equipment.tag, "kind": fault.fault, "sensor": fault.sensor.split(".")[-1] if fault.sensor else "",
                "severity": fault.severity, "duration_min": (fault.end - fault.start).total_seconds() / 60,
                "ramp_min": None if fault.ramp_s is None else fault.ramp_s / 60,
                "minutes_in": (at - fault.start).total_seconds() / 60, "offset_s": offset,
                "fault": result.fault, "probability": result.probability, "p_true": probabilities.get(fault.fault),
                "error": result.error,
            })
            if explain and recording.last is not None:
                model = explain in ("model", "both") and (explain_limit is None or len(rows) <= explain_limit)
                rows[-1]["explanations"] = _explain_rows.explain_row(diagnoser, *recording.last, model=model)
                rows[-1]["result"] = recording.last[0].to_dict()
                _print_progress(rows[-1])
    return rows


def _print_progress(row: dict) -> None:
    shown = row["explanations"].get("shown") or row["explanations"]["template"]
    print(f"  {row['equipment']:<6} +{row['offset_s'] // 60:<2} min {row['fault']:<17} {shown['source']:<8} {shown['verdict']:<12} "
          f"{shown['text'][:100]!r}", flush=True)


def summarise(rows: list[dict]) -> dict:
    out: dict = {"by_offset": {}, "by_kind_at_raise": {}, "confusion_at_raise": {}}
    for offset in OFFSETS_S:
        mine = [r for r in rows if r["offset_s"] == offset and not r["error"]]
        if mine:
            out["by_offset"][offset] = {
                "n": len(mine), "top1": float(np.mean([r["fault"] == r["kind"] for r in mine])),
                "uncertain": float(np.mean([(r["probability"] or 0) < 0.5 or r["fault"] == "no_known_fault" for r in mine])),
            }
    raise_rows = [r for r in rows if r["offset_s"] == 0 and not r["error"]]
    confusion: dict[str, Counter] = defaultdict(Counter)
    for r in raise_rows:
        confusion[r["kind"]][r["fault"]] += 1
    for kind in sorted(confusion):
        mine = [r for r in raise_rows if r["kind"] == kind]
        out["by_kind_at_raise"][kind] = {
            "n": len(mine), "top1": float(np.mean([r["fault"] == kind for r in mine])),
            "median_top_p": float(np.median([r["probability"] for r in mine])),
            "median_minutes_in": float(np.median([r["minutes_in"] for r in mine])),
        }
        out["confusion_at_raise"][kind] = dict(confusion[kind])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed-dir", required=True, type=Path, help="A trial seed's data root (WORK_DIR/seed-N).")
    parser.add_argument("--diagnoser", required=True, type=Path, help="A FaultDiagnoser folder.")
    parser.add_argument("--json", type=Path, help="Write the rows and the summary here.")
    parser.add_argument("--rows", action="store_true", help="Print every diagnosis at the raise.")
    parser.add_argument("--explain", choices=("template", "model", "both"),
                        help="Read each diagnosis's explanation (template sentence; language model; both) with the check and the slot reader.")
    parser.add_argument("--explain-limit", type=int, help="Language-model wording only for the first N diagnoses (slow on CPU).")
    parser.add_argument("--budget-s", type=float, default=60.0, help="Generation budget per explanation (s).")
    parser.add_argument("--without-residuals", action="store_true",
                        help="Ablation: diagnose without the detector's per-sensor residuals (as under a detector with no drift check).")
    parser.add_argument("--booster-weight", type=float,
                        help="Ablation: the summary booster's weight in the answer (0: the network alone, 1: the trees alone).")
    args = parser.parse_args(argv)
    if args.without_residuals:
        _setup(args.seed_dir)
        from phm.analytics import diagnosis

        diagnosis._residuals = lambda **kwargs: None  # build_incident reads them through this one function
    rows = rediagnose(seed_dir=args.seed_dir, diagnoser_dir=args.diagnoser, explain=args.explain,
                      explain_limit=args.explain_limit, budget_s=args.budget_s, booster_weight=args.booster_weight)
    summary = summarise(rows)
    if args.explain:
        summary["explanations"] = _explain_rows.summarise_explanations(rows)
    for offset, row in summary["by_offset"].items():
        print(f"offset {offset:>4} s: {row['n']:>3} diagnoses, top-1 {100 * row['top1']:.1f} %, uncertain {100 * row['uncertain']:.1f} %")
    print(f"{'kind':<18} {'n':>3} {'top-1':>6} {'med p':>6} {'med min in':>10}  confusion at the raise")
    for kind, row in summary["by_kind_at_raise"].items():
        print(f"{kind:<18} {row['n']:>3} {100 * row['top1']:>5.0f}% {row['median_top_p']:>6.2f} {row['median_minutes_in']:>10.1f}  {summary['confusion_at_raise'][kind]}")
    if args.rows:
        for r in rows:
            if r["offset_s"] == 0:
                ramp = "-" if r["ramp_min"] is None else f"{r['ramp_min']:.0f}"
                print(f"  {r['equipment']:<6} {r['kind']:<17} {r['sensor']:<11} sev {r['severity']:.2f} dur {r['duration_min']:>4.0f} ramp {ramp:>4} "
                      f"in {r['minutes_in']:>5.1f} min -> {r['fault']:<17} {r['probability'] or 0:.2f} (true {r['p_true'] or 0:.2f}) {r['error']}")
    if args.explain:
        print("\nexplanation table (passes check: validate on that text; faithful: slot reader, no contradicted or unsupported claim)")
        print("\n".join(_explain_rows.format_table(summary["explanations"])))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
