"""How often the language model's wording of a diagnosis passes the explanation check, and how often
an independent slot-by-slot reading (models.diagnosis.faithfulness) agrees it is faithful.

Incidents are simulated as the diagnoser meets them (cut where the demo detector raises and at
varied onsets, ``models.diagnosis.onset``), diagnosed as alarms (``alarm=True``), and each diagnosis
is explained three ways: the language model's raw summary (before the check), what the check lets
through (the model's summary or the template), and the template alone. Each text is read claim by
claim; a contradiction is a claim the evidence or the diagnosis contradicts.

    python bench/explain_faithfulness.py --diagnoser FOLDER [--incidents 24] [--seed 3] [--adapter FOLDER]

Writes bench/results/explain_faithfulness.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "explain_faithfulness.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--diagnoser", type=Path, required=True)
    parser.add_argument("--incidents", type=int, default=24)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=7.0, help="generation time budget per explanation (the app's default)")
    parser.add_argument("--no-adapter", action="store_true", help="ignore the diagnoser's LoRA adapter: the plain default model")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--rescore", type=Path, help="re-read the rows of an earlier results file with today's slot reader (no generation)")
    args = parser.parse_args()
    if args.rescore:
        return rescore(args.rescore)

    import numpy as np
    import torch

    from models.diagnosis import FaultDiagnoser
    from models.diagnosis import explain as explanation
    from models.diagnosis.faithfulness import read_claims
    from models.diagnosis.onset import AlarmDetector, simulate_alarm_incidents
    from models.diagnosis.taxonomy import DEFAULT_TAXONOMY

    torch.set_num_threads(1)
    classes = sum(len(c) for c in DEFAULT_TAXONOMY.values())
    incidents = simulate_alarm_incidents(per_class=max(1, -(-args.incidents // classes)), seed=args.seed,
                                         detector=AlarmDetector(train_hours=6.0))
    rng = np.random.default_rng(args.seed)
    incidents = [incidents[i] for i in rng.permutation(len(incidents))[: args.incidents]]
    diagnoser = FaultDiagnoser.load(args.diagnoser)
    if diagnoser.explainer_adapter is not None and not args.no_adapter:
        from models.diagnosis.explainer_tuning import adapter_generator

        generator = adapter_generator(diagnoser.explainer_adapter, diagnoser.config.max_new_tokens, args.budget_s)
    else:
        generator = explanation.language_model_generator(diagnoser.config.max_new_tokens, args.budget_s)
    other_faults = sorted({c for cs in diagnoser.taxonomy.values() for c in cs})
    rows = []
    started = time.perf_counter()
    for incident in incidents:
        result = diagnoser.diagnose(incident, explain=False, alarm=True)
        items = explanation.evidence_items(result.evidence)
        start = explanation.prefill(result.fault, items)
        clock = time.perf_counter()
        continuation = generator(explanation.build_messages(result.fault, result.probability, incident.equipment, items), start)
        seconds = time.perf_counter() - clock
        raw = explanation.complete_json(start, continuation)
        try:
            raw_summary = str(json.loads(raw).get("summary", ""))
        except (json.JSONDecodeError, AttributeError):
            raw_summary = continuation.split('"')[0]
        passed = explanation.validate(raw, fault=result.fault, items=items, other_faults=other_faults, all_sensors=diagnoser.measures,
                                      equipment=incident.equipment, directions=explanation.evidence_directions(result.evidence))
        template = explanation.template_explanation(result.fault, result.probability, incident.equipment, result.evidence)
        shown = passed if passed is not None else template
        raw_reading, shown_reading, template_reading = (read_claims(t, result) for t in (raw_summary, shown, template))
        rows.append({
            "equipment": incident.equipment, "label": incident.label, "fault": result.fault, "probability": round(result.probability, 3),
            "model_summary": raw_summary, "passed_check": passed is not None, "seconds": round(seconds, 2),
            "model_faithful": raw_reading.faithful, "model_problems": [c.__dict__ for c in raw_reading.problems()],
            "shown_faithful": shown_reading.faithful, "shown_contradictions": sum(c.verdict == "contradicted" for c in shown_reading.claims),
            "template_faithful": template_reading.faithful, "result": result.to_dict(),
        })
        print(f"  {incident.equipment:6s} {result.fault:17s} check {'pass' if passed else 'fail'} slot {'ok ' if raw_reading.faithful else 'BAD'} "
              f"{raw_summary[:110]!r}", flush=True)
    n = len(rows)
    summary = {**summarise(rows), "seconds": round(time.perf_counter() - started, 1)}
    result = {"benchmark": "explain_faithfulness", "when": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
              "diagnoser": str(args.diagnoser),
              "adapter": str(diagnoser.explainer_adapter) if diagnoser.explainer_adapter is not None and not args.no_adapter else None, "summary": summary, "rows": rows}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1, default=str))
    s = summary
    print(f"\n{n} diagnoses: model wording passes the check {s['model_passes_check']}/{n}; slot reader finds it faithful "
          f"{s['model_faithful_by_slot_reader']}/{n} (of the passed: {s['passed_and_faithful']}/{s['model_passes_check']}); "
          f"check and reader agree {s['check_agrees_with_slot_reader']}/{n}")
    print(f"shown to operators (model if passed, else template): faithful {s['shown_faithful']}/{n}, contradictions {s['shown_contradictions']}; "
          f"template alone faithful {s['template_faithful']}/{n}; wrote {args.results}")


def summarise(rows: list[dict]) -> dict:
    passed_rows = [r for r in rows if r["passed_check"]]
    return {
        "explanations": len(rows),
        "model_passes_check": sum(r["passed_check"] for r in rows),
        "model_faithful_by_slot_reader": sum(r["model_faithful"] for r in rows),
        "passed_and_faithful": sum(r["model_faithful"] for r in passed_rows),
        "check_agrees_with_slot_reader": sum(r["passed_check"] == r["model_faithful"] for r in rows),
        "shown_faithful": sum(r["shown_faithful"] for r in rows),
        "shown_contradictions": sum(r["shown_contradictions"] for r in rows),
        "template_faithful": sum(r["template_faithful"] for r in rows),
    }


def rescore(path: Path) -> None:
    """Re-read a results file's explanations (the model's, the shown one, the template) with the
    current slot reader, so runs measured with an older reader compare with new ones."""
    from models.diagnosis import explain as explanation
    from models.diagnosis.faithfulness import read_claims
    from models.diagnosis.types import DiagnosisResult

    from models.diagnosis.taxonomy import DEFAULT_TAXONOMY

    data = json.loads(path.read_text())
    other_faults = sorted({c for cs in DEFAULT_TAXONOMY.values() for c in cs})
    for row in data["rows"]:
        result = DiagnosisResult.from_dict(row["result"])
        # Today's check on the stored summary (re-encoded as the model's JSON answer).
        items = explanation.evidence_items(result.evidence)
        raw = explanation.as_answer(result.fault, items, row["model_summary"])
        row["passed_check"] = explanation.validate(raw, fault=result.fault, items=items, other_faults=other_faults,
                                                   all_sensors=sorted(explanation.SENSOR_WORDS), equipment=row["equipment"],
                                                   directions=explanation.evidence_directions(result.evidence)) is not None
        template = explanation.template_explanation(result.fault, result.probability, row["equipment"], result.evidence)
        shown = row["model_summary"] if row["passed_check"] else template
        model, shown_reading, template_reading = (read_claims(t, result) for t in (row["model_summary"], shown, template))
        row.update(model_faithful=model.faithful, model_problems=[c.__dict__ for c in model.problems()], shown_faithful=shown_reading.faithful,
                   shown_contradictions=sum(c.verdict == "contradicted" for c in shown_reading.claims), template_faithful=template_reading.faithful)
    data["summary"] = {**data["summary"], **summarise(data["rows"]), "rescored": datetime.now(UTC).isoformat(timespec="seconds")}
    path.write_text(json.dumps(data, indent=1, default=str))
    print(json.dumps(data["summary"]))


if __name__ == "__main__":
    main()
