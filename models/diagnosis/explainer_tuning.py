"""LoRA-tuning of the explanation model on evidence -> explanation pairs (PEFT).

The default 135M model, prompted with one example, rarely writes a summary that passes the
evidence check. Following the PHM-LLM practice of instruction-tuning a small model on the
plant's own cases, :func:`tune_explainer` fits a LoRA adapter (``peft``) on pairs made from
simulated incidents as the diagnoser answers them: the prompt is exactly what
:func:`models.diagnosis.explain.explain` sends (messages + the prefilled JSON), the target a
reference summary built from the evidence alone (:func:`reference_summary`: the top sensors with
their directions, the changed controller message as the plant logs it, the image finding), so the
model learns to restate evidence in plain words and nothing else. The loss covers the summary and
its closing quote only.

The adapter is saved inside the diagnoser's folder (:data:`ADAPTER_DIR`), so it is part of the
diagnoser version; :func:`adapter_generator` is the explanation generator with it applied (a merged
copy of the base model, so the assistant's shared model is untouched). The check still gates every
summary: an adapter can only change how often the model's wording is used, never let invented
content through.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from models.diagnosis import explain as explanation
from models.diagnosis.types import NO_KNOWN_FAULT, NORMAL, DiagnosisResult

ADAPTER_DIR = "explainer_lora"
_DIRECTION_TEXT = {"high": "is high", "low": "is low", "flat": "is flat", "mixed": "is unsteady"}
#: A message told as it changed: one that went away is evidence too, but "logged" would say the opposite.
_LOG_WORDING = {"stopped": "the controller stopped logging '{}'", "fewer": "the controller logged '{}' less often than normal"}


def reference_summary(result: DiagnosisResult) -> str:
    """A one-sentence summary made only of the evidence items the model is shown."""
    items = explanation.evidence_items(result.evidence)
    parts = []
    sensors = [s for s in result.evidence.sensors if s.share >= explanation.MIN_SHARE][:2] or result.evidence.sensors[:1]
    for sensor in sensors:
        words = explanation.SENSOR_WORDS.get(sensor.sensor, ())
        name = f"{words[0].capitalize()} {sensor.sensor}" if words else f"Sensor {sensor.sensor}"
        parts.append(f"{name} {_DIRECTION_TEXT.get(sensor.direction, 'deviates')}")
    if result.evidence.log_templates:
        log = result.evidence.log_templates[0]
        message = " ".join(w for w in log.template.split() if "<" not in w)
        parts.append(_LOG_WORDING.get(explanation.log_change(log), "the controller logged '{}'").format(message))
    if result.evidence.image is not None and any(i.id == "I1" for i in items):
        parts.append(f"the image shows {result.evidence.image.label.replace('_', ' ')}")
    if not parts:
        return ""
    head = "No known fault pattern fits: " if result.fault in (NORMAL, NO_KNOWN_FAULT) else ""
    sentence = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    text = head + (sentence[0].lower() + sentence[1:] if head else sentence) + "."
    return re.sub(r"\s+", " ", text)


@dataclass(frozen=True)
class Pair:
    prompt_messages: list[dict[str, str]]
    prefill: str
    target: str


def make_pairs(results: Sequence[tuple[DiagnosisResult, str]], *, other_faults: Sequence[str], all_sensors: Sequence[str]) -> list[Pair]:
    """``(diagnosis, equipment)`` -> training pairs; a reference that the check would refuse is left out."""
    pairs = []
    for result, equipment in results:
        items = explanation.evidence_items(result.evidence)
        target = reference_summary(result)
        if not items or not target:
            continue
        start = explanation.prefill(result.fault, items)
        if explanation.validate(start + json.dumps(target)[1:] + "}", fault=result.fault, items=items, other_faults=other_faults,
                                all_sensors=all_sensors, equipment=equipment) is None:
            continue
        pairs.append(Pair(explanation.build_messages(result.fault, result.probability, equipment, items), start, target))
    return pairs


def tune_explainer(
    pairs: Sequence[Pair], folder: str | Path, *, epochs: int = 2, rank: int = 8, learning_rate: float = 1e-3, seed: int = 0,
    grad_accumulation: int = 4, on_step: Callable[[int, float], None] | None = None, lm=None,
) -> dict:
    """Fit a LoRA adapter on ``pairs`` over the default language model (or ``lm``, a
    ``models.answering.LanguageModel``, e.g. a tiny one in tests) and save it in ``folder``."""
    import torch
    from peft import LoraConfig, get_peft_model

    from models.answering import load_language_model

    if not pairs:
        raise ValueError("no explanation pairs to tune on")
    torch.manual_seed(seed)
    lm = lm or load_language_model(device="cpu")
    model = get_peft_model(lm.model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05, task_type="CAUSAL_LM",
                                                target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    model.train()
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate, weight_decay=0.0)
    encoded = [_encode(lm.tokenizer, pair) for pair in pairs]
    generator = torch.Generator().manual_seed(seed)
    losses, step, started = [], 0, time.perf_counter()
    for _ in range(epochs):
        for index in torch.randperm(len(encoded), generator=generator).tolist():
            ids, labels = encoded[index]
            loss = model(input_ids=ids[None], labels=labels[None]).loss / grad_accumulation
            loss.backward()
            losses.append(float(loss.detach()) * grad_accumulation)
            step += 1
            if step % grad_accumulation == 0:
                optimiser.step()
                optimiser.zero_grad()
                if on_step is not None:
                    on_step(step, sum(losses[-grad_accumulation:]) / grad_accumulation)
    optimiser.step()
    optimiser.zero_grad()
    target = Path(folder) / ADAPTER_DIR
    model.save_pretrained(str(target))
    report = {"pairs": len(pairs), "epochs": epochs, "rank": rank, "learning_rate": learning_rate, "steps": step,
              "first_loss": round(sum(losses[:8]) / max(len(losses[:8]), 1), 4), "last_loss": round(sum(losses[-8:]) / max(len(losses[-8:]), 1), 4),
              "seconds": round(time.perf_counter() - started, 1)}
    (target / "tuning.json").write_text(json.dumps(report, indent=1))
    return report


def _encode(tokenizer, pair: Pair):
    import torch

    prompt = tokenizer.apply_chat_template(pair.prompt_messages, add_generation_prompt=True, tokenize=False) + pair.prefill
    answer = json.dumps(pair.target)[1:]  # the summary, JSON-escaped, and its closing quote
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    ids = torch.tensor(prompt_ids + answer_ids)
    labels = torch.tensor([-100] * len(prompt_ids) + answer_ids)
    return ids, labels


_TUNED: dict[str, object] = {}
_TUNED_LOCK = threading.Lock()


def adapter_generator(folder: str | Path, max_new_tokens: int = 48,
                      time_budget_s: float = explanation.DEFAULT_TIME_BUDGET_S) -> explanation.Generator:
    """The explanation generator with the adapter in ``folder`` (a diagnoser folder or the adapter
    folder itself) merged into a copy of the default language model, loaded once per process."""
    path = Path(folder)
    path = path / ADAPTER_DIR if (path / ADAPTER_DIR).is_dir() else path
    return explanation.generator_for(lambda: tuned_model(path), max_new_tokens=max_new_tokens, time_budget_s=time_budget_s)


def tuned_model(adapter: Path):
    """The default language model with ``adapter`` merged in (cached per adapter folder)."""
    key = str(adapter.resolve())
    with _TUNED_LOCK:
        if key not in _TUNED:
            from peft import PeftModel

            from models.answering import LanguageModel, load_language_model

            base = load_language_model(device="cpu")
            merged = PeftModel.from_pretrained(base.model, str(adapter)).merge_and_unload().eval()
            _TUNED[key] = LanguageModel(merged, base.tokenizer, name=f"{base.name}+{adapter.name}")
    return _TUNED[key]
