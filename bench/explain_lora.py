"""LoRA-tune the explanation model (models.diagnosis.explainer_tuning) for a saved diagnoser.

Pairs come from simulated incidents (cut where the demo detector raises and at varied onsets, a
seed the faithfulness bench does not use) as the diagnoser answers them; the adapter is written into
a copy of the diagnoser folder (``--out``), so it travels with that diagnoser version. Measure it
with ``bench/explain_faithfulness.py --diagnoser OUT`` (and ``--no-adapter`` for the plain model).

    python bench/explain_lora.py --diagnoser FOLDER --out FOLDER [--per-class 6] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--diagnoser", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()

    import torch

    from models.diagnosis import FaultDiagnoser
    from models.diagnosis.explainer_tuning import make_pairs, tune_explainer
    from models.diagnosis.onset import AlarmDetector, simulate_alarm_incidents

    torch.set_num_threads(1)
    if args.out.resolve() != args.diagnoser.resolve():
        shutil.copytree(args.diagnoser, args.out, dirs_exist_ok=True)
    diagnoser = FaultDiagnoser.load(args.out)
    incidents = simulate_alarm_incidents(per_class=args.per_class, seed=args.seed, detector=AlarmDetector(train_hours=6.0))
    results = [(diagnoser.diagnose(i, explain=False, alarm=True), i.equipment) for i in incidents]
    pairs = make_pairs(results, other_faults=sorted({c for cs in diagnoser.taxonomy.values() for c in cs}), all_sensors=diagnoser.measures)
    print(f"{len(pairs)} evidence -> explanation pairs from {len(incidents)} incidents; e.g. {pairs[0].target!r}", flush=True)
    report = tune_explainer(pairs, args.out, epochs=args.epochs, rank=args.rank, learning_rate=args.learning_rate, seed=args.seed,
                            on_step=lambda step, loss: print(f"  step {step}: loss {loss:.3f}", flush=True) if step % 8 == 0 else None)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
