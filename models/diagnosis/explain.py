"""A short explanation of a diagnosis that only restates its evidence.

The language model gets the diagnosis and a numbered list of evidence items (S1.. sensors, L1..
log templates, I1 the image) and answers in JSON::

    {"fault": "<the diagnosed class id>", "evidence": ["S1", "L1"], "summary": "<one or two sentences>"}

The fault and the evidence ids are prefilled (the classifier decided them; a 135M model asked to
pick ids invented some in 3 of 10 trials), so the model writes the summary and its closing quote.
The answer is accepted only when it parses, has exactly these keys with these types, names the
diagnosed fault and only listed ids, and its summary names no other fault class, no sensor or
tag-like code outside the evidence, no number that the evidence does not contain, no negation the
evidence does not hold, no garbled character, no controller message that stopped or thinned out
told as logged, and (for a fault) the leading sensor and at least one cited item by its sensor or
its words. Anything else, including a summary not finished within
the time budget, falls back to :func:`template_explanation`, a sentence built from the evidence
alone, so an operator never reads invented content.

A generator is any ``(messages, prefill) -> str`` callable returning the continuation of the
assistant's ``prefill``; the default runs the process-wide SmolLM2 of :mod:`models.answering`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from models.diagnosis.taxonomy import display_name, failure_mode
from models.diagnosis.types import NO_KNOWN_FAULT, NORMAL, Evidence, LogEvidence

Generator = Callable[[list[dict[str, str]], str], str]
MAX_SUMMARY_CHARS = 400
MAX_SENSORS = 3
MAX_LOGS = 3
MIN_SHARE = 0.1  # sensors below this share of the deviation are not worth an operator's attention
SYSTEM = "Explain the fault diagnosis to an operator in one sentence, using ONLY the evidence items. Answer in JSON."
EXAMPLE = (
    "Diagnosis: cavitation on P-7, probability 0.81.\n"
    "Evidence:\nS1 sensor PRESS_SUC low, 52% of the deviation\n"
    "L1 log 'Suction pressure <NUM> bar below NPSH margin <NUM> bar' 3x in the window (new)",
    '{"fault": "cavitation", "evidence": ["S1", "L1"], "summary": "Suction pressure PRESS_SUC is low and the '
    'controller logged suction pressure below the NPSH margin."}',
)
#: Seconds the language model may spend on one explanation; an unfinished summary is not valid,
#: so the template is used and the diagnosis still lands within the alarm-to-diagnosis budget.
DEFAULT_TIME_BUDGET_S = 7.0
_STOP_WORDS = {"with", "above", "below", "limit", "over", "from", "shows", "check", "high", "visible"}


@dataclass(frozen=True)
class EvidenceItem:
    id: str
    text: str
    names: tuple[str, ...] = ()  # sensor names this item allows the summary to mention
    terms: tuple[str, ...] = ()  # words that show the summary refers to this item
    direction: str = ""  # a sensor item's direction (high, low, flat, mixed); a log item's change (new, more, fewer, stopped)


#: Words that state a direction, by the evidence direction they assert.
DIRECTION_WORDS: dict[str, tuple[str, ...]] = {
    "high": ("high", "higher", "rising", "rose", "rises", "risen", "increase", "increased", "increases", "increasing", "up",
             "above", "elevated", "climbing", "climbed", "spike", "spiking"),
    "low": ("low", "lower", "falling", "fell", "falls", "drop", "dropped", "drops", "dropping", "decrease", "decreased",
            "decreases", "decreasing", "down", "below", "reduced"),
    "flat": ("flat", "stuck", "frozen", "constant", "unchanging", "unchanged", "static"),
}
#: Directions a claim may not give a sensor whose evidence says the key.
CONTRADICTS: dict[str, tuple[str, ...]] = {"high": ("low", "flat"), "low": ("high", "flat"), "flat": ("high", "low"), "mixed": ("flat",)}
#: Words an operator reads as a measure, for claims that name a sensor without its code.
SENSOR_WORDS: dict[str, tuple[str, ...]] = {
    "VIB": ("vibration",), "TEMP_BRG": ("bearing temperature",), "TEMP_WDG": ("winding temperature",),
    "CURRENT": ("motor current", "phase current"), "PRESS_DIS": ("discharge pressure",), "PRESS_SUC": ("suction pressure",),
    "FLOW": ("flow",), "SPEED": ("speed",), "CHW_SUPPLY": ("supply temperature",), "CHW_RETURN": ("return temperature",),
    "COND_PRESS": ("condenser pressure",), "EVAP_PRESS": ("evaporator pressure",), "COMP_CURRENT": ("compressor current",),
    "POWER": ("compressor power", "power"),
}
#: Wording that calls the state healthy: a contradiction of any alarm with a fault diagnosis
#: ("a normal deviation"); the evidence's own "normal 1.2/h" log rate is followed by a number.
_NORMAL_CLAIM = re.compile(r"\b(normal(?:ly)?|healthy|as expected|nothing (?:abnormal|unusual|wrong)|no (?:fault|problem|issue|anomaly|abnormality))\b(?!\s*(?:rate|\d))")
#: "deviates from normal", "higher than normal": a comparison with normal states an abnormality.
_COMPARED_WITH = {"from", "than", "above", "below", "outside", "beyond", "off"}
_DETERMINERS = {"its", "the", "their", "his", "her"}


def claims_normal(lowered: str) -> bool:
    """Does the (lower-case) text call the state normal or healthy, rather than compare with normal?"""
    for match in _NORMAL_CLAIM.finditer(lowered):
        before = re.findall(r"[a-z]+", lowered[: match.start()])
        if before and before[-1] in _DETERMINERS:
            before = before[:-1]  # "from its normal behaviour"
        if match.group(1).startswith("normal") and before and before[-1] in _COMPARED_WITH:
            continue
        return True
    return False


_CLAUSE_SPLIT = re.compile(r"[.;:,()]|\b(?:and|while|whereas|but)\b")


def sensor_words(sensor: str) -> tuple[str, ...]:
    """How a claim may name ``sensor``: its code and its words (lower case)."""
    return (sensor.lower(), *SENSOR_WORDS.get(sensor, ()))


def direction_claims(clause: str) -> set[str]:
    """The directions a clause asserts (lower-case text)."""
    words = set(re.findall(r"[a-z]+", clause))
    return {direction for direction, vocabulary in DIRECTION_WORDS.items() if words & set(vocabulary)}


def wrong_direction(summary: str, items: Sequence[EvidenceItem], directions: Mapping[str, str] | None = None) -> str | None:
    """The first sensor a clause of ``summary`` gives a direction its evidence contradicts, else None.

    ``directions``: the evidence direction of every sensor, also those below :data:`MIN_SHARE` that
    are not listed as items (a condenser pressure with no share of the deviation, reading low, must
    not be called high because a controller message that stopped said so)."""
    known = {name: item.direction for item in items if item.direction for name in item.names}
    known = {**{s: d for s, d in (directions or {}).items() if d}, **known}
    for clause in _CLAUSE_SPLIT.split(summary.lower()):
        if not clause or not clause.strip():
            continue
        for name, direction in known.items():
            if any(re.search(rf"\b{re.escape(word)}\b", clause) for word in sensor_words(name)):
                if direction_claims(clause) & set(CONTRADICTS.get(direction, ())):
                    return name
    return None


def evidence_directions(evidence: Evidence) -> dict[str, str]:
    """Every evidence sensor's direction, listed or not: what the check holds a summary to."""
    return {s.sensor: s.direction for s in evidence.sensors}


def as_answer(fault: str, items: Sequence[EvidenceItem], summary: str) -> str:
    """``summary`` as the model's JSON answer (after :func:`prefill`), for the check to read a text
    that was not generated just now (a stored summary, the template)."""
    return prefill(fault, items) + json.dumps(summary)[1:] + "}"


def evidence_items(evidence: Evidence) -> list[EvidenceItem]:
    items = []
    sensors = [s for s in evidence.sensors if s.share >= MIN_SHARE][:MAX_SENSORS] or evidence.sensors[:1]
    for number, sensor in enumerate(sensors, 1):
        items.append(EvidenceItem(f"S{number}", f"sensor {sensor.sensor} {sensor.direction}, {sensor.share:.0%} of the deviation",
                                  (sensor.sensor,), sensor_words(sensor.sensor), sensor.direction))
    for number, log in enumerate(evidence.log_templates[:MAX_LOGS], 1):
        items.append(EvidenceItem(f"L{number}", f"log '{log.template}' {log.count}x in the window {rate_note(log)}",
                                  terms=_content_words(log.template), direction=log_change(log)))
    if evidence.image is not None:
        finding = evidence.image.label.replace("_", " ")
        items.append(EvidenceItem("I1", f"image shows {finding} (p {evidence.image.probability:.2f})",
                                  terms=_content_words(finding)))
    return items


def log_change(log: LogEvidence) -> str:
    """How a log template changed against its baseline: ``new``, ``more``, ``fewer`` or ``stopped``."""
    if log.baseline_per_hour == 0:
        return "new"
    if log.count == 0:
        return "stopped"
    return "fewer" if log.window_per_hour < log.baseline_per_hour else "more"


def rate_note(log: LogEvidence) -> str:
    """``(new)``, ``(stopped, normally 2.7/h)``, ...: the change an operator (and the model) must not
    read as "the controller logged it" when the message went away."""
    change = log_change(log)
    if change == "new":
        return "(new)"
    prefix = "" if change == "more" else f"{change}, "
    return f"({prefix}normally {log.baseline_per_hour:.1f}/h)"


#: A clause that reports a controller message.
_LOG_CUE = re.compile(r"\b(logged|logging|logs|log|controller|message|messages|reported|warned|warning)\b")
#: Wording that tells a message went away or thinned out, anywhere in the sentence.
_WENT_AWAY = re.compile(r"\b(stopped|stops|ceased|vanished|disappeared|absent|missing|silent|fewer|less often|rarer|no longer|0x)\b")
_SENTENCE_END = re.compile(r"[.;!?](?:\s+|$)")


def fallen_log_told_as_logged(summary: str, items: Sequence[EvidenceItem]) -> str | None:
    """The id of a log item that went away (stopped or fewer than normal) which a sentence of
    ``summary`` reports as logged without saying it went away, else None. The clause's content
    words pick the item it restates (the best overlap; a tie with an item that rose is read as
    that one)."""
    logs = [item for item in items if item.id.startswith("L")]
    for sentence in _SENTENCE_END.split(summary.lower()):
        if _WENT_AWAY.search(sentence):
            continue
        for clause in _CLAUSE_SPLIT.split(sentence):
            if not clause or not _LOG_CUE.search(clause):
                continue
            words = set(re.findall(r"[a-z]{4,}", clause))
            overlaps = {item.id: len(words & set(item.terms)) for item in logs}
            best = max(overlaps.values(), default=0)
            if best == 0:
                continue
            restated = [item for item in logs if overlaps[item.id] == best]
            if all(item.direction in ("fewer", "stopped") for item in restated):
                return restated[0].id
    return None


def _content_words(text: str) -> tuple[str, ...]:
    words = re.findall(r"[a-z]{4,}", text.lower())
    return tuple(w for w in dict.fromkeys(words) if w not in _STOP_WORDS)


def build_messages(fault: str, probability: float, equipment: str, items: Sequence[EvidenceItem]) -> list[dict[str, str]]:
    listing = "\n".join(f"{item.id} {item.text}" for item in items)
    user = f"Diagnosis: {fault} on {equipment or 'the unit'}, probability {probability:.2f}.\nEvidence:\n{listing}"
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": EXAMPLE[0]},
        {"role": "assistant", "content": EXAMPLE[1]},
        {"role": "user", "content": user},
    ]


def prefill(fault: str, items: Sequence[EvidenceItem]) -> str:
    """The answer up to the opening quote of the summary: what the classifier already decided."""
    return '{"fault": ' + json.dumps(fault) + ', "evidence": ' + json.dumps([i.id for i in items]) + ', "summary": "'


def complete_json(prefix: str, continuation: str) -> str:
    """``prefix + continuation`` up to the quote that closes the summary, then the closing brace
    (small models keep talking after it); an unclosed summary stays unclosed, hence invalid."""
    end = continuation.find('"')
    return prefix + continuation if end < 0 else prefix + continuation[: end + 1] + "}"


_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_CODE = re.compile(r"\b[A-Z][A-Z0-9_]{2,}\b")
_NEGATION = re.compile(r"\b(not|no|never|none|nothing|without|cannot|\w+n't)\b")


def validate(
    raw: str, *, fault: str, items: Sequence[EvidenceItem], other_faults: Sequence[str], all_sensors: Sequence[str],
    equipment: str = "", directions: Mapping[str, str] | None = None,
) -> str | None:
    """The summary when ``raw`` is a valid answer that only restates the evidence, else ``None``.

    ``directions``: every evidence sensor's direction (``{s.sensor: s.direction}``), so a sensor
    below the items' share cannot be given the opposite direction either."""
    try:
        answer = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(answer, dict) or set(answer) != {"fault", "evidence", "summary"}:
        return None
    cited, summary = answer["evidence"], answer["summary"]
    if answer["fault"] != fault or not isinstance(summary, str) or not isinstance(cited, list):
        return None
    ids = {item.id for item in items}
    if not cited or not all(isinstance(c, str) and c in ids for c in cited):
        return None
    summary = " ".join(summary.split())
    if not 10 <= len(summary) <= MAX_SUMMARY_CHARS:
        return None
    if "\ufffd" in summary or not summary.isprintable():  # U+FFFD: a token cut mid-character ("VIBGY\ufffd")
        return None
    lowered = summary.lower()
    is_fault = fault not in (NORMAL, NO_KNOWN_FAULT)
    # An alarm's fault called normal ("a normal deviation") is the opposite of the diagnosis.
    if fault != NORMAL and claims_normal(lowered):
        return None
    # A controller message when the evidence has none ("the controller logged pressure unsteady").
    if not any(item.id.startswith("L") for item in items) and re.search(r"\b(logged|controller|log message)\b", lowered):
        return None
    # A controller message that went away told as logged ("the controller logged suction pressure
    # below the NPSH margin" when it was 0x in the window, normally 2.7/h).
    if fallen_log_told_as_logged(summary, items) is not None:
        return None
    # A sensor given a direction its evidence contradicts ("PRESS_SUC is high" when it is low).
    if wrong_direction(summary, items, directions) is not None:
        return None
    for other in other_faults:
        if other == fault or other == NORMAL:
            continue
        name = failure_mode(other).name
        words = {other.replace("_", " "), other} | ({name.split(" / ")[-1].lower()} if " / " in name else set())
        if any(re.search(rf"\b{re.escape(w.lower())}\b", lowered) for w in words):
            return None
    allowed_sensors = {name for item in items for name in item.names}
    for sensor in all_sensors:
        if sensor not in allowed_sensors and re.search(rf"\b{re.escape(sensor)}\b", summary):
            return None
    evidence_text = " ".join(item.text for item in items) + f" {fault} {equipment}"
    if any(number not in evidence_text for number in _NUMBER.findall(summary)):
        return None
    # Tag-like codes (VIB, TEMP_BRG, NPSH) must come from the evidence: a small model merges and
    # misspells measure names into codes no sensor has.
    if any(code not in evidence_text for code in _CODE.findall(summary)):
        return None
    # A negation turns restated evidence into its opposite ("the flow instability was not
    # detected"); only the evidence's own negations ("no visible anomaly") may be repeated.
    evidence_words = set(re.findall(r"[a-z']+", evidence_text.lower()))
    if any(word not in evidence_words for word in _NEGATION.findall(lowered)):
        return None
    if is_fault:
        # A fault's summary must refer to the evidence it cites, and to a sensor or log item when
        # there is one: "no visible anomaly" alone explains no fault.
        cited_items = [item for item in items if item.id in cited]
        signal_items = [item for item in cited_items if not item.id.startswith("I")] or cited_items
        if not any(re.search(rf"\b{re.escape(term)}", lowered) for item in signal_items for term in item.terms):
            return None
        # ... and name the leading sensor: a true sentence about a minor sensor alone ("suction
        # pressure is low" for a bearing-thermocouple drift) points the operator at the wrong fault.
        leading = next((item for item in items if item.id == "S1"), None)
        if leading is not None and not any(re.search(rf"\b{re.escape(word)}\b", lowered) for word in leading.terms):
            return None
    return summary


def template_explanation(fault: str, probability: float, equipment: str, evidence: Evidence) -> str:
    """One or two sentences made only of the evidence (the fallback, and what ``explain=False`` gives)."""
    subject = f"{equipment}: " if equipment else ""
    parts = [f"{subject}{display_name(fault)}, probability {probability:.0%}."]
    sensors = [s for s in evidence.sensors if s.share >= MIN_SHARE][:MAX_SENSORS]
    if sensors:
        parts.append("Sensors: " + ", ".join(f"{s.sensor} {s.direction} ({s.share:.0%} of the deviation)" for s in sensors) + ".")
    if evidence.log_templates:
        logs = [
            f"'{t.template}' {t.count}x in the window {rate_note(t)}"
            for t in evidence.log_templates[:MAX_LOGS]
        ]
        parts.append("Logs: " + "; ".join(logs) + ".")
    if evidence.image is not None:
        parts.append(f"Image: {evidence.image.label.replace('_', ' ')} ({evidence.image.probability:.0%}).")
    return " ".join(parts)


def explain(
    *, fault: str, probability: float, equipment: str, evidence: Evidence, generator: Generator,
    other_faults: Sequence[str], all_sensors: Sequence[str],
) -> tuple[str, str]:
    """``(explanation, source)``: the model's summary when it validates, else the template sentence."""
    items = evidence_items(evidence)
    if items:
        start = prefill(fault, items)
        try:
            continuation = generator(build_messages(fault, probability, equipment, items), start)
        except Exception:  # a failing generator must not lose the diagnosis: fall back to the template
            continuation = None
        if isinstance(continuation, str):
            summary = validate(complete_json(start, continuation), fault=fault, items=items,
                               other_faults=other_faults, all_sensors=all_sensors, equipment=equipment,
                               directions=evidence_directions(evidence))
            if summary is not None:
                return summary, "model"
    return template_explanation(fault, probability, equipment, evidence), "template"


def language_model_generator(max_new_tokens: int = 48, time_budget_s: float = DEFAULT_TIME_BUDGET_S) -> Generator:
    """The default generator: the process-wide SmolLM2 (loaded on first use), greedy, prefilled,
    stopped at the summary's closing quote or after ``time_budget_s``."""

    def default_model():
        from models.answering import get_language_model

        return get_language_model()

    return generator_for(default_model, max_new_tokens=max_new_tokens, time_budget_s=time_budget_s)


def generator_for(model: Callable[[], object], *, max_new_tokens: int = 48, time_budget_s: float = DEFAULT_TIME_BUDGET_S) -> Generator:
    """A generator over the language model ``model()`` returns (loaded at the first call, not
    here): greedy, prefilled, stopped at the summary's closing quote or after ``time_budget_s``."""

    def generate(messages: list[dict[str, str]], start: str) -> str:
        import torch

        lm = model()
        text = lm.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + start
        encoded = lm.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(lm.model.device)
        pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else lm.tokenizer.eos_token_id
        with lm._generate_lock, torch.inference_mode():
            output = lm.model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False, max_time=time_budget_s,
                                       repetition_penalty=1.05, pad_token_id=pad, stop_strings=['"'], tokenizer=lm.tokenizer)
        return lm.tokenizer.decode(output[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True)

    return generate
