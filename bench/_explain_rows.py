"""Explanations of a trial's re-diagnoses, read by the check and the independent slot reader
(``bench/diagnose_trial.py --explain``).

Three wordings per diagnosis: the template sentence (what ``explain=False`` stores, as the trial
does), the language model's raw summary (before the check) and what ``FaultDiagnoser.explain``
lets through (shown to operators: the model's summary if it passes, else the template). Each is
read by :func:`models.diagnosis.faithfulness.read_claims`; "passes the check" is
:func:`models.diagnosis.explain.validate` on that text as the model's answer (for the raw summary,
the check's verdict on the generated answer itself). No Django here.
"""

from __future__ import annotations

import json
import time

WORDINGS = ("template", "model_raw", "shown")


class RecordingDiagnoser:
    """Wraps a FaultDiagnoser for ``diagnose_at``: same ``diagnose``, but keeps the last result and
    its equipment (``diagnose_at`` returns only the fault and probabilities)."""

    def __init__(self, diagnoser) -> None:
        self.diagnoser = diagnoser
        self.last = None  # (DiagnosisResult, equipment)

    def diagnose(self, incident, *, explain: bool = True, alarm: bool = False):
        result = self.diagnoser.diagnose(incident, explain=explain, alarm=alarm)
        self.last = (result, incident.equipment or incident.equipment_type)
        return result


class RecordingGenerator:
    """A generator ``(messages, prefill) -> continuation`` that keeps the raw summary it produced
    and whether the check accepted the whole answer (so the raw wording is the same text the check saw)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.answer: str | None = None  # the completed JSON answer of the last call
        self.seconds = 0.0

    def __call__(self, messages, start):
        from models.diagnosis import explain as explanation

        self.answer, clock = None, time.perf_counter()
        try:
            continuation = self.inner(messages, start)
        finally:
            self.seconds = time.perf_counter() - clock
        self.answer = explanation.complete_json(start, continuation)
        return continuation


def install_generator(diagnoser, budget_s: float) -> RecordingGenerator:
    """The generator ``FaultDiagnoser.explain`` would use (the folder's LoRA adapter, else the
    default model) with ``budget_s``, recorded, set as the diagnoser's explainer."""
    from models.diagnosis import explain as explanation

    if diagnoser.explainer_adapter is not None:
        from models.diagnosis.explainer_tuning import adapter_generator

        inner = adapter_generator(diagnoser.explainer_adapter, diagnoser.config.max_new_tokens, budget_s)
    else:
        inner = explanation.language_model_generator(diagnoser.config.max_new_tokens, budget_s)
    diagnoser.explainer = RecordingGenerator(inner)
    return diagnoser.explainer


def raw_summary(answer: str) -> str:
    """The summary of a completed answer; an unfinished one: the text before any quote."""
    try:
        return str(json.loads(answer).get("summary", ""))
    except (json.JSONDecodeError, AttributeError):
        return answer.rsplit('"summary": "', 1)[-1].split('"')[0]


def check_passes(text: str, result, equipment: str, *, other_faults, all_sensors) -> bool:
    """Would the explanation check let ``text`` through as the model's summary of ``result``?"""
    from models.diagnosis import explain as explanation

    items = explanation.evidence_items(result.evidence)
    raw = explanation.as_answer(result.fault, items, text)
    return explanation.validate(raw, fault=result.fault, items=items, other_faults=other_faults, all_sensors=all_sensors,
                                equipment=equipment, directions=explanation.evidence_directions(result.evidence)) is not None


def reading(text: str, source: str, passes: bool, result) -> dict:
    """One wording as a row: text, source, check verdict and the slot reader's verdict."""
    from models.diagnosis.faithfulness import read_claims

    claims = read_claims(text, result)
    contradicted = [c.__dict__ for c in claims.claims if c.verdict == "contradicted"]
    unsupported = [c.__dict__ for c in claims.claims if c.verdict == "unsupported"]
    verdict = "contradicted" if contradicted else ("unsupported" if unsupported else "faithful")
    return {"text": text, "source": source, "passes_check": passes, "verdict": verdict,
            "contradicted": contradicted, "unsupported": unsupported}


def explain_row(diagnoser, result, equipment: str, *, model: bool) -> dict:
    """The wordings of one diagnosis: the template, and with ``model`` the raw and shown ones."""
    from models.diagnosis import explain as explanation

    gate = {"other_faults": sorted({c for cs in diagnoser.taxonomy.values() for c in cs}), "all_sensors": diagnoser.measures}
    template = explanation.template_explanation(result.fault, result.probability, equipment, result.evidence)
    out = {"template": reading(template, "template", check_passes(template, result, equipment, **gate), result)}
    if model:
        recorder = diagnoser.explainer
        if isinstance(recorder, RecordingGenerator):
            recorder.answer = None  # the explainer is not called when there is no evidence item
        text, source = diagnoser.explain(result, equipment=equipment)
        answer = recorder.answer if isinstance(recorder, RecordingGenerator) else None
        if answer is not None:  # no evidence item: nothing was generated, the template is shown
            items = explanation.evidence_items(result.evidence)
            passed = explanation.validate(answer, fault=result.fault, items=items, equipment=equipment,
                                          directions=explanation.evidence_directions(result.evidence),
                                          **gate) is not None
            out["model_raw"] = {**reading(raw_summary(answer), "model", passed, result), "seconds": round(recorder.seconds, 2)}
        passes = True if source == "model" else check_passes(text, result, equipment, **gate)
        out["shown"] = reading(text, source, passes, result)
    return out


def summarise_explanations(rows: list[dict]) -> dict:
    """Per wording: n, passes the check, faithful, contradictions (texts with >= 1 contradicted
    claim), check/reader agreement, model texts among them."""
    table = {}
    for wording in WORDINGS:
        read = [r["explanations"][wording] for r in rows if wording in r.get("explanations", {})]
        if read:
            table[wording] = {
                "n": len(read), "passes_check": sum(x["passes_check"] for x in read),
                "faithful": sum(x["verdict"] == "faithful" for x in read),
                "contradictions": sum(x["verdict"] == "contradicted" for x in read),
                "unsupported": sum(x["verdict"] == "unsupported" for x in read),
                "agree": sum(x["passes_check"] == (x["verdict"] == "faithful") for x in read),
                "model_source": sum(x["source"] == "model" for x in read),
            }
    return table


def format_table(table: dict) -> list[str]:
    names = {"template": "template (trial, explain=False)", "model_raw": "language model, raw", "shown": "shown to operators (check output)"}
    lines = [f"{'wording':<36} {'n':>4} {'passes check':>12} {'faithful':>9} {'contradictions':>14} {'unsupported':>11} {'agree':>6} {'model text':>10}"]
    for wording, t in table.items():
        lines.append(f"{names[wording]:<36} {t['n']:>4} {t['passes_check']:>12} {t['faithful']:>9} {t['contradictions']:>14} "
                     f"{t['unsupported']:>11} {t['agree']:>6} {t['model_source']:>10}")
    return lines
