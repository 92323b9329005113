"""Root-cause diagnosis on simulated incidents: ``python -m models.evaluate diagnosis``.

Protocol. Training and test incidents come from the demo plant simulator with different seeds
(so no test incident shares a run with a training one): ``--per-class`` training and
``--test-per-class`` test incidents per class of every equipment type (pump, motor, fan, chiller;
20 classes in all), each with its sensor window, log events and inspection image.

1. **Modalities**: one fused model (modality dropout ``--dropout``), scored on the test incidents
   with modalities removed at test time: sensors, logs, image alone, the pairs, and all three.
   The same rows for a model trained without modality dropout show what dropout buys, and a
   model without the language model's layers (token embeddings only: ``use_llm=False``) is the
   ablation of the backbone itself.
2. **Continual learning**: a model is fitted on every class except ``--new-class``
   (misalignment by default), then ``update``\\ d with that class's training incidents plus a
   replay set (``--replay-per-class`` old incidents per class), and, for contrast, without the
   replay set. Accuracy on old-class and new-class test incidents before and after, next to the
   fused model trained on all classes at once (the reference a continual update can approach).
3. **Latency** of ``diagnose()`` on CPU (one thread, default backbone), with and without the
   language-model explanation, and how often the explanation passed the evidence check.

Prints a table and writes ``--json`` (default ``bench/results/diagnosis.json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score

from models.diagnosis import DEFAULT_TAXONOMY, FaultDiagnoser, Incident, simulate_incidents
from models.evaluate import REPO_ROOT

SUBSETS: dict[str, tuple[str, ...]] = {
    "sensors": ("sensors",), "logs": ("logs",), "image": ("image",),
    "sensors+logs": ("sensors", "logs"), "sensors+image": ("sensors", "image"), "logs+image": ("logs", "image"),
    "fused (all three)": ("sensors", "logs", "image"),
}


def keep_only(incident: Incident, modalities: tuple[str, ...]) -> Incident:
    changes: dict[str, object] = {}
    if "sensors" not in modalities:
        changes["sensors"] = None
    if "logs" not in modalities:
        changes.update(logs=(), baseline_logs=())
    if "image" not in modalities:
        changes.update(image=None, image_ref=None)
    return replace(incident, **changes)


def scores(model: FaultDiagnoser, incidents: list[Incident]) -> dict[str, float]:
    predicted = model.predict(incidents)
    truth = [f"{i.equipment_type}:{i.label}" for i in incidents]
    guessed = [f"{i.equipment_type}:{p}" for i, p in zip(incidents, predicted, strict=True)]
    accuracy = float(np.mean([t == g for t, g in zip(truth, guessed, strict=True)])) if incidents else float("nan")
    return {"accuracy": accuracy, "macro_f1": float(f1_score(truth, guessed, average="macro", zero_division=0)), "n": len(incidents)}


def modality_rows(model: FaultDiagnoser, test: list[Incident]) -> dict[str, dict[str, float]]:
    return {name: scores(model, [keep_only(i, kept) for i in test]) for name, kept in SUBSETS.items()}


def fit_timed(label: str, model: FaultDiagnoser, train: list[Incident]) -> tuple[FaultDiagnoser, float]:
    started = time.perf_counter()
    model.fit(train, on_epoch=lambda p: print(f"  {label}: epoch {p.epoch}/{p.epochs} loss {p.loss:.3f} ({p.elapsed_s:.0f} s)", flush=True))
    seconds = time.perf_counter() - started
    print(f"  {label}: fitted on {len(train)} incidents in {seconds:.0f} s", flush=True)
    return model, seconds


def replay_set(incidents: list[Incident], per_class: int, seed: int) -> list[Incident]:
    """``per_class`` incidents of each (equipment type, class), drawn with a seed."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, str], list[Incident]] = {}
    for incident in incidents:
        groups.setdefault((incident.equipment_type, incident.label), []).append(incident)
    chosen = []
    for key in sorted(groups):
        members = groups[key]
        chosen += [members[i] for i in rng.permutation(len(members))[:per_class]]
    return chosen


def continual(arguments: argparse.Namespace, train: list[Incident], test: list[Incident], backbone,
              joint: FaultDiagnoser) -> dict[str, object]:
    new_class = arguments.new_class
    taxonomy = {t: [c for c in cs if c != new_class] for t, cs in DEFAULT_TAXONOMY.items()}
    old_train = [i for i in train if i.label != new_class]
    new_train = [i for i in train if i.label == new_class]
    old_test = [i for i in test if i.label != new_class]
    new_test = [i for i in test if i.label == new_class]
    base, seconds = fit_timed(f"without {new_class}", FaultDiagnoser(taxonomy, backbone=backbone, **_params(arguments)), old_train)
    result: dict[str, object] = {
        "new_class": new_class, "fit_seconds": seconds,
        "before": {"old": scores(base, old_test), "new": {"accuracy": 0.0, "note": "class unknown"}},
        # The reference: the fused model, trained on every class at once.
        "joint_training": {"old": scores(joint, old_test), "new": scores(joint, new_test)},
    }
    replay = replay_set(old_train, arguments.replay_per_class, arguments.seed)
    result["replay_size"] = len(replay)
    result["new_size"] = len(new_train)
    with tempfile.TemporaryDirectory() as folder:
        base.save(folder)
        for name, kept in (("with_replay", replay), ("without_replay", [])):
            model = FaultDiagnoser.load(folder, backbone=backbone)
            started = time.perf_counter()
            model.update(new_train, replay=kept, epochs=arguments.update_epochs)
            result[name] = {"old": scores(model, old_test), "new": scores(model, new_test),
                            "update_seconds": time.perf_counter() - started}
            print(f"  update {name}: old {result[name]['old']['accuracy']:.3f}, new {result[name]['new']['accuracy']:.3f}", flush=True)
    return result


def latency(model: FaultDiagnoser, incidents: list[Incident], explain: bool) -> dict[str, object]:
    model.diagnose(incidents[0], explain=explain)  # loads the explanation model once (a worker keeps it)
    seconds, sources = [], Counter()
    for incident in incidents:
        started = time.perf_counter()
        result = model.diagnose(incident, explain=explain)
        seconds.append(time.perf_counter() - started)
        sources[result.explanation_source] += 1
    return {"p50_s": float(np.percentile(seconds, 50)), "p95_s": float(np.percentile(seconds, 95)),
            "mean_s": statistics.fmean(seconds), "n": len(seconds), "explanation_sources": dict(sources)}


def _params(arguments: argparse.Namespace) -> dict[str, object]:
    return {"epochs": arguments.epochs, "seed": arguments.seed, "modality_dropout": arguments.dropout}


def _row(name: str, values: dict[str, float]) -> str:
    return f"  {name:<22} {values['accuracy']:>8.3f} {values['macro_f1']:>9.3f}"


def print_report(report: dict[str, object]) -> None:
    print(f"\ndiagnosis: {report['n_train']} train / {report['n_test']} test incidents, {report['n_classes']} classes "
          f"over {len(DEFAULT_TAXONOMY)} equipment types (chance about {report['chance']:.2f})")
    for model_name, rows in report["modalities"].items():
        print(f"\n  {model_name}\n  {'test inputs':<22} {'accuracy':>8} {'macro-F1':>9}")
        for name, values in rows.items():
            print(_row(name, values))
    if "continual" in report:
        c = report["continual"]
        print(f"\n  continual learning: new class {c['new_class']} ({c['new_size']} incidents), replay {c['replay_size']} old incidents")
        print(f"  {'':<22} {'old acc':>8} {'new acc':>8}")
        print(f"  {'before update':<22} {c['before']['old']['accuracy']:>8.3f} {0.0:>8.3f}")
        joint = c["joint_training"]
        print(f"  {'joint training (ref.)':<22} {joint['old']['accuracy']:>8.3f} {joint['new']['accuracy']:>8.3f}")
        for name in ("with_replay", "without_replay"):
            print(f"  {'after, ' + name.replace('_', ' '):<22} {c[name]['old']['accuracy']:>8.3f} {c[name]['new']['accuracy']:>8.3f}")
    for name, values in report.get("latency", {}).items():
        print(f"\n  diagnose() latency, {name}: p50 {values['p50_s']:.2f} s, p95 {values['p95_s']:.2f} s over {values['n']}"
              f" (explanations: {values['explanation_sources']})")
    print(f"\n  fit seconds: {json.dumps({k: round(v) for k, v in report['fit_seconds'].items()})}")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models.evaluate diagnosis", description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=20, help="training incidents per class")
    parser.add_argument("--test-per-class", type=int, default=10, help="test incidents per class")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dropout", type=float, default=0.3, help="modality dropout of the main model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--new-class", default="misalignment", help="class held out for the continual-learning step")
    parser.add_argument("--replay-per-class", type=int, default=10)
    parser.add_argument("--update-epochs", type=int, default=40)
    parser.add_argument("--latency-incidents", type=int, default=12)
    parser.add_argument("--skip", default="", help="comma list of parts to skip: no_dropout,no_llm,continual,latency")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "bench" / "results" / "diagnosis.json")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    arguments = _parse(argv)
    skip = {s.strip() for s in arguments.skip.split(",") if s.strip()}
    torch.set_num_threads(1)
    started = time.perf_counter()
    train = simulate_incidents(per_class=arguments.per_class, seed=arguments.seed)
    test = simulate_incidents(per_class=arguments.test_per_class, seed=arguments.seed + 1000)
    print(f"simulated {len(train)} train and {len(test)} test incidents in {time.perf_counter() - started:.0f} s", flush=True)
    n_classes = sum(len(c) for c in DEFAULT_TAXONOMY.values())
    report: dict[str, object] = {
        "n_train": len(train), "n_test": len(test), "n_classes": n_classes, "seed": arguments.seed,
        "chance": float(np.mean([1 / len(DEFAULT_TAXONOMY[i.equipment_type]) for i in test])),
        "settings": vars(arguments) | {"json": str(arguments.json)}, "modalities": {}, "fit_seconds": {},
    }
    fused, report["fit_seconds"]["fused"] = fit_timed("fused", FaultDiagnoser(**_params(arguments)), train)
    report["modalities"][f"fused model, modality dropout {arguments.dropout}"] = modality_rows(fused, test)
    backbone = fused.backbone
    if "no_dropout" not in skip:
        plain, report["fit_seconds"]["no_dropout"] = fit_timed(
            "no dropout", FaultDiagnoser(backbone=backbone, **(_params(arguments) | {"modality_dropout": 0.0})), train)
        report["modalities"]["same, no modality dropout"] = modality_rows(plain, test)
    if "no_llm" not in skip:
        bare, report["fit_seconds"]["no_llm"] = fit_timed(
            "no LLM", FaultDiagnoser(backbone=backbone, use_llm=False, **_params(arguments)), train)
        report["modalities"]["ablation: no LLM layers (token embeddings only)"] = modality_rows(bare, test)
    if "continual" not in skip:
        report["continual"] = continual(arguments, train, test, backbone, fused)
    if "latency" not in skip:
        sample = test[:: max(len(test) // arguments.latency_incidents, 1)][: arguments.latency_incidents]
        report["latency"] = {"without explanation": latency(fused, sample, explain=False),
                             "with explanation": latency(fused, sample, explain=True)}
    report["total_seconds"] = time.perf_counter() - started
    print_report(report)
    print(f"\n  total {report['total_seconds']:.0f} s")
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
