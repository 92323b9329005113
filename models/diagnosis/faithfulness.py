"""An independent reading of an explanation: every claim, slot by slot, against the diagnosis.

:func:`models.diagnosis.explain.validate` is the gate the language model's wording must pass; this
module is the referee that measures the gate. It shares no code with it: it reads an explanation
(the model's or the template's) as clauses, pulls out the claims of five kinds and checks each one
against the stored :class:`~models.diagnosis.types.DiagnosisResult`:

* ``fault``: a failure mode or "normal"/"healthy" wording; must be the diagnosed fault (a
  ``no_known_fault`` diagnosis may be called unknown, never normal or another fault);
* ``sensor``: a measure named by code or by its words; must be in the evidence, and a direction
  stated in the same clause must not contradict the evidence's direction;
* ``log``: a clause that restates a controller message; must match a changed log template of the
  evidence (its content words), and a message that stopped (or came less often than normal) must be
  told as such in its sentence: "the controller logged X" is contradicted when X was 0x;
* ``image``: a visible finding (hot spot, hot band, ...); must be the image evidence's finding;
* ``number``: a number; must appear in the evidence.

:func:`read_claims` returns the claims with a verdict each (``supported`` / ``contradicted`` /
``unsupported``); an explanation is faithful when none is contradicted or unsupported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from models.diagnosis.taxonomy import FAILURE_MODES
from models.diagnosis.types import NO_KNOWN_FAULT, NORMAL, DiagnosisResult

Verdict = Literal["supported", "contradicted", "unsupported"]

#: Phrases an operator would read as each fault (a superset of the taxonomy's display names).
FAULT_PHRASES: dict[str, tuple[str, ...]] = {
    "bearing_wear": ("bearing wear", "bearing_wear", "worn bearing", "bearing damage", "bearing fault"),
    "cavitation": ("cavitation", "cavitating", "cavitates"),
    "misalignment": ("misalignment", "misaligned", "shaft alignment"),
    "condenser_fouling": ("condenser fouling", "condenser_fouling", "fouled condenser", "fouling"),
    "sensor_drift": ("sensor drift", "sensor_drift", "drifting sensor", "drift"),
    "stuck_sensor": ("stuck sensor", "stuck_sensor", "sensor stuck", "frozen sensor"),
    NORMAL: ("normal", "normally", "healthy", "no fault", "as expected", "nothing abnormal"),
    NO_KNOWN_FAULT: ("no known fault", "unknown fault", "false alarm"),
}
MEASURE_PHRASES: dict[str, tuple[str, ...]] = {
    "VIB": ("vib", "vibration"), "TEMP_BRG": ("temp_brg", "bearing temperature"), "TEMP_WDG": ("temp_wdg", "winding temperature"),
    "CURRENT": ("current", "motor current"), "PRESS_DIS": ("press_dis", "discharge pressure"),
    "PRESS_SUC": ("press_suc", "suction pressure"), "FLOW": ("flow",), "SPEED": ("speed",),
    "CHW_SUPPLY": ("chw_supply", "supply temperature"), "CHW_RETURN": ("chw_return", "return temperature"),
    "COND_PRESS": ("cond_press", "condenser pressure"), "EVAP_PRESS": ("evap_press", "evaporator pressure"),
    "COMP_CURRENT": ("comp_current", "compressor current"), "POWER": ("power",),
}
FINDING_PHRASES: dict[str, tuple[str, ...]] = {
    "bearing_hot_spot": ("hot spot", "bearing hot spot"), "coupling_hot_band": ("hot band", "coupling hot band"),
    "uneven_inlet_pattern": ("inlet pattern", "uneven inlet"), "fouled_condenser_tubes": ("fouled condenser tubes", "fouled tubes"),
    "no_visible_anomaly": ("no visible anomaly", "nothing visible"),
}
UP = {"high", "higher", "rising", "rose", "risen", "rises", "increase", "increased", "increasing", "up", "above", "elevated", "climbing"}
DOWN = {"low", "lower", "falling", "fell", "falls", "drop", "dropped", "dropping", "decrease", "decreased", "decreasing", "down",
        "below", "reduced"}
STILL = {"flat", "stuck", "frozen", "constant", "unchanging", "unchanged", "static"}
LOG_CUES = ("logged", "log ", "controller", "message", "reported", "warning", "alarm limit", "plc")
#: Wording that a message went away ("stopped logging", "0x in the window", "less often than normal").
GONE = re.compile(r"\b(?:stopped|stops|ceased|vanished|disappeared|absent|missing|silent|fewer|less often|rarer|no longer|0x)\b")
_STOP = {"with", "from", "that", "this", "above", "below", "over", "the", "and", "check", "limit", "high", "than"}


@dataclass(frozen=True)
class Claim:
    slot: Literal["fault", "sensor", "log", "image", "number", "evidence"]
    text: str  # what the explanation says, as read
    verdict: Verdict
    reason: str = ""


@dataclass
class Reading:
    claims: list[Claim] = field(default_factory=list)

    @property
    def faithful(self) -> bool:
        return all(c.verdict == "supported" for c in self.claims)

    def problems(self) -> list[Claim]:
        return [c for c in self.claims if c.verdict != "supported"]


def _has(phrase: str, text: str) -> bool:
    return re.search(rf"(?<![a-z_]){re.escape(phrase)}(?![a-z_])", text) is not None


_SENTENCE_END = re.compile(r"[.;!?](?:\s+|$)")


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def _clauses(text: str) -> list[str]:
    return [c.strip() for c in re.split(r"[.;:,()]|\band\b|\bwhile\b|\bbut\b|\bwhereas\b", text) if c and c.strip()]


def _direction(clause: str) -> str:
    words = set(re.findall(r"[a-z]+", clause))
    found = [name for name, vocabulary in (("high", UP), ("low", DOWN), ("flat", STILL)) if words & vocabulary]
    return found[0] if len(found) == 1 else ("" if not found else "several")


def _content(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{4,}", text.lower()) if w not in _STOP}


def read_claims(explanation: str, result: DiagnosisResult) -> Reading:
    """Every claim of ``explanation`` with its verdict against ``result`` (fault and evidence)."""
    text = " ".join(explanation.lower().split())
    reading = Reading()
    evidence = result.evidence
    text = _read_quoted_logs(text, evidence, reading)
    sensors = {s.sensor: s.direction for s in evidence.sensors}
    fault = result.fault
    allowed = {fault} | ({NO_KNOWN_FAULT} if fault in (NORMAL, NO_KNOWN_FAULT) else set())
    for sentence in _sentences(text):
        told_gone = GONE.search(sentence) is not None
        for clause in _clauses(sentence):
            _read_fault(clause, fault, allowed, reading)
            _read_sensors(clause, sensors, reading)
            _read_log(clause, evidence, reading, told_gone=told_gone)
            _read_image(clause, evidence, reading)
    evidence_numbers = " ".join(
        [f"{s.share:.0%}" for s in evidence.sensors] + [f"{t.template} {t.count} {t.baseline_per_hour:.1f} {t.window_per_hour:.1f}" for t in evidence.log_templates]
        + ([f"{evidence.image.probability:.2f} {evidence.image.probability:.0%}"] if evidence.image else []) + [f"{result.probability:.2f} {result.probability:.0%}"]
    )
    for number in re.findall(r"\d+(?:\.\d+)?", _strip_tags(explanation)):
        reading.claims.append(Claim("number", number, "supported" if number in evidence_numbers else "unsupported",
                                    "" if number in evidence_numbers else "no such number in the evidence"))
    known_codes = {code for mode in FAILURE_MODES.values() for code in [mode.code] if code} | set(sensors)
    evidence_text = " ".join([t.template for t in evidence.log_templates] + [s.sensor for s in evidence.sensors])
    for code in dict.fromkeys(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", explanation)):
        if code not in known_codes and code not in evidence_text:
            # A tag-like code no sensor, log line or failure mode has ("CVR"): invented.
            reading.claims.append(Claim("sensor", code, "unsupported", f"no sensor, log message or failure mode is called {code}"))
    has_evidence = bool(evidence.sensors or evidence.log_templates or evidence.image is not None)
    if has_evidence and not any(c.verdict == "supported" and c.slot in ("sensor", "log", "image") for c in reading.claims):
        # An explanation that restates no evidence explains nothing ("the valve was worn", "No").
        reading.claims.append(Claim("evidence", "", "unsupported", "names no sensor, log message or image finding of the evidence"))
    return reading


def _read_quoted_logs(text: str, evidence, reading: Reading) -> str:
    """A quoted changed log template ("'Condenser pressure <NUM> bar high, check condenser tubes'
    0x in the window") restates a controller message: one log claim, not the explanation's own
    claim about a sensor or a fault. The text without those quotes, for the other slots."""
    templates = {" ".join(t.template.lower().split()): t for t in evidence.log_templates}

    def quoted(match: re.Match) -> str:
        template = templates.get(match.group(1).strip())
        if template is None:
            return match.group(0)  # a quote the evidence does not hold: read as any other text
        start = max((end.end() for end in _SENTENCE_END.finditer(text, 0, match.start())), default=0)
        after = _SENTENCE_END.search(text, match.end())
        sentence = text[start: after.start() if after else len(text)]
        reading.claims.append(_log_claim(match.group(1).strip(), template, told_gone=GONE.search(sentence) is not None))
        return " "

    return re.sub(r"'([^']+)'", quoted, text)


def _went_away(template) -> str:
    """"stopped" (0x in the window), "fewer" (under its normal rate) or "" for a template that rose."""
    if template.baseline_per_hour > 0 and template.count == 0:
        return "stopped"
    return "fewer" if template.window_per_hour < template.baseline_per_hour else ""


def _log_claim(text: str, template, *, told_gone: bool) -> Claim:
    """A claim that restates ``template``: a message that went away must be told so."""
    gone = _went_away(template)
    if not gone or told_gone:
        return Claim("log", text, "supported")
    if gone == "stopped":
        return Claim("log", text, "contradicted", f"logged {template.count}x in the window (normally {template.baseline_per_hour:.1f}/h): it stopped")
    return Claim("log", text, "unsupported", f"logged less often than normal ({template.window_per_hour:.1f}/h against {template.baseline_per_hour:.1f}/h)")


def _strip_tags(text: str) -> str:
    """Numbers inside equipment tags and codes (P-101, TEMP_BRG) are names, not claims."""
    return re.sub(r"\b[A-Za-z]+[-_][A-Za-z0-9_-]*\d+\b", " ", text)


def _read_fault(clause: str, fault: str, allowed: set[str], reading: Reading) -> None:
    for name, phrases in FAULT_PHRASES.items():
        hits = [p for p in phrases if _has(p, clause)]
        if not hits:
            continue
        if name == NORMAL and re.search(r"normal(?:ly)?\s*(?:rate|\d)", clause):
            continue  # a log's normal rate ("normally 1.2/h") is evidence, not a fault claim
        if name == NORMAL and hits == ["normal"] and re.search(r"\b(?:from|than|above|below|outside|beyond)\s+(?:(?:its|the|their)\s+)?normal\b", clause):
            continue  # "deviates from normal" compares with normal: it claims an abnormality
        if name == "sensor_drift" and hits == ["drift"] and "sensor" not in clause and fault != "sensor_drift":
            continue  # "drift" alone is a direction word of a reading, not a claimed sensor fault
        if name == "condenser_fouling" and _has("fouled condenser tubes", clause):
            continue  # the image finding, read as an image claim
        verdict: Verdict = "supported" if name in allowed else "contradicted"
        reading.claims.append(Claim("fault", hits[0], verdict, "" if verdict == "supported" else f"the diagnosis is {fault}"))


def _read_sensors(clause: str, sensors: dict[str, str], reading: Reading) -> None:
    for measure, phrases in MEASURE_PHRASES.items():
        hits = [p for p in phrases if _has(p, clause)]
        if not hits:
            continue
        if measure == "CURRENT" and any(_has(p, clause) for p in MEASURE_PHRASES["COMP_CURRENT"]):
            continue
        if measure not in sensors:
            reading.claims.append(Claim("sensor", hits[0], "unsupported", f"{measure} is not in the evidence"))
            continue
        stated = _direction(clause)
        actual = sensors[measure]
        bad = {"high": {"low", "flat"}, "low": {"high", "flat"}, "flat": {"high", "low"}, "mixed": {"flat"}}.get(actual, set())
        if stated in bad:
            reading.claims.append(Claim("sensor", f"{hits[0]} {stated}", "contradicted", f"{measure} is {actual}"))
        else:
            reading.claims.append(Claim("sensor", hits[0] + (f" {stated}" if stated and stated != "several" else ""), "supported"))


def _read_log(clause: str, evidence, reading: Reading, *, told_gone: bool) -> None:
    if not any(cue in clause for cue in LOG_CUES):
        return
    words = _content(clause) - {"controller", "logged", "message", "reported", "warning", "sensor", "stopped", "logging"}  # the cue, not the message
    # Overlap relative to the smaller side: a clause that quotes part of a template (the template
    # text itself may be cut at its commas) matches it as well as one that paraphrases all of it.
    scored = [(len(words & _content(t.template)) / max(min(len(_content(t.template)), len(words)), 1), t) for t in evidence.log_templates]
    best = max((score for score, _ in scored), default=0.0)
    if best >= 0.34:
        # Of the templates it matches best, one that rose supports the claim as told.
        matched = sorted((t for score, t in scored if score == best), key=lambda t: bool(_went_away(t)))
        reading.claims.append(_log_claim(clause, matched[0], told_gone=told_gone))
    elif words:
        reading.claims.append(Claim("log", clause, "unsupported", "no changed log template says this"))


def _read_image(clause: str, evidence, reading: Reading) -> None:
    for finding, phrases in FINDING_PHRASES.items():
        hit = next((p for p in phrases if _has(p, clause)), None)
        if hit is None:
            continue
        actual = evidence.image.label if evidence.image is not None else None
        verdict: Verdict = "supported" if finding == actual else ("unsupported" if actual is None else "contradicted")
        reading.claims.append(Claim("image", hit, verdict, "" if verdict == "supported" else f"the image shows {actual or 'nothing (no image)'}"))
