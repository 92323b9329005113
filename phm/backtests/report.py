"""The backtest's report: the replayed alarms and diagnoses scored against the known faults.

Plain data in, a JSON-ready dict out (no ORM), so the service, the trial and tests share it.

* The known faults are recorded fault injections, corrective work orders, or both
  (:mod:`phm.backtests.truth`); the report says which (``ground_truth``) and each fault row its
  ``source`` (and the work order's number as ``reference``).
* A fault is **detected** when an alarm of its equipment is raised between its start and its end;
  the **delay** is from its start to the first such raise. A fault still running at the end of the
  range and not alarmed yet is listed (``running_at_end``, ``detected: null``) but not scored: the
  replay stopped before it could be caught or missed.
* An alarm raised in a fault, or within ``clear_grace_s`` after it ended (a bearing stays hot for a
  while after the repair), belongs to that fault; any other alarm is a **false alarm**. False alarms
  are counted per equipment-day outside fault periods (and their grace).
* Each diagnosis of an alarm that belongs to a fault is **correct** when its top-1 is the fault's
  kind, per re-diagnosis offset (0 = at the raise). A diagnosis is **uncertain** when it names no
  fault of the taxonomy (``normal``, or an "unknown" class) or its top probability is below
  ``uncertain_below``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from phm.backtests.replay import quantiles

#: Top-1 classes that name no fault: the diagnosis did not commit to a cause.
NO_FAULT_CLASSES = frozenset({"normal", "unknown", "uncertain", "no_known_fault"})


@dataclass(frozen=True)
class KnownFault:
    id: int
    equipment: str
    kind: str
    start: datetime
    end: datetime
    severity: float | None  # None: not recorded (work orders)
    source: str = "injection"  # "injection" (FaultInjection row) | "work_order" (WorkOrder row)
    reference: str = ""  # the work order's number

    @property
    def key(self) -> tuple[str, int]:
        """Ids of injections and work orders overlap: the source tells them apart."""
        return (self.source, self.id)


@dataclass
class DiagnosisRow:
    offset_s: float
    fault: str
    probability: float | None
    compute_ms: float
    error: str = ""
    probabilities: dict[str, float] = field(default_factory=dict)


@dataclass
class AlarmRow:
    equipment: str
    detector: str
    raised_at: datetime
    cleared_at: datetime | None
    peak_score: float
    fault_id: int | None = None
    diagnoses: list[DiagnosisRow] = field(default_factory=list)
    stored: object = None  # the BacktestAlarm row, when there is one
    fault_source: str = "injection"  # which kind of known fault ``fault_id`` names

    @property
    def fault_key(self) -> tuple[str, int] | None:
        return None if self.fault_id is None else (self.fault_source, self.fault_id)


def is_uncertain(fault: str, probability: float | None, uncertain_below: float) -> bool:
    return fault in NO_FAULT_CLASSES or fault.startswith("unknown") or probability is None or probability < uncertain_below


def match_fault(*, equipment: str, raised_at: datetime, faults: Sequence[KnownFault], grace: timedelta) -> KnownFault | None:
    """The fault of ``equipment`` this raise belongs to: the latest-starting one whose period (with
    the grace after its end) holds the raise."""
    candidates = [f for f in faults if f.equipment == equipment and f.start <= raised_at < f.end + grace]
    return max(candidates, key=lambda f: f.start) if candidates else None


def _overlap_seconds(periods: list[tuple[datetime, datetime]], start: datetime, end: datetime) -> float:
    """Length of the union of ``periods`` clipped to [start, end)."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in periods if b > start and a < end)
    total, cursor = 0.0, start
    for a, b in clipped:
        a = max(a, cursor)
        if b > a:
            total += (b - a).total_seconds()
            cursor = b
    return total


def build_report(
    *, start: datetime, end: datetime, equipment: Sequence[str], faults: Sequence[KnownFault], alarms: Sequence[AlarmRow],
    offsets_s: Sequence[float], uncertain_below: float, clear_grace_s: float, ground_truth: str = "injections",
) -> dict:
    grace = timedelta(seconds=clear_grace_s)
    faults = [f for f in faults if f.equipment in set(equipment) and f.start < end and f.end > start]
    by_fault: dict[tuple[str, int], list[AlarmRow]] = defaultdict(list)
    for alarm in alarms:
        if alarm.fault_key is not None:
            by_fault[alarm.fault_key].append(alarm)

    fault_rows = []
    for fault in sorted(faults, key=lambda f: f.start):
        mine = by_fault.get(fault.key, [])
        # Any raise of its equipment inside the period detects it, whichever known fault the alarm
        # was matched to: the same failure recorded twice (an injection and the work order that
        # found it, ``ground_truth="both"``), or two overlapping faults, are each detected by it.
        inside = sorted((a for a in alarms if a.equipment == fault.equipment and fault.start <= a.raised_at < fault.end), key=lambda a: a.raised_at)
        raised = [a.raised_at for a in inside]
        first = inside[0] if inside else None
        at_raise = next((d for d in (first.diagnoses if first else []) if d.offset_s == 0), None)
        running_at_end = fault.end > end
        fault_rows.append({
            "id": fault.id, "source": fault.source, "reference": fault.reference, "equipment": fault.equipment, "kind": fault.kind, "start": fault.start.isoformat(), "end": fault.end.isoformat(),
            "duration_s": (fault.end - fault.start).total_seconds(), "severity": fault.severity,
            "detected": True if raised else None if running_at_end else False,
            "delay_s": (raised[0] - fault.start).total_seconds() if raised else None,
            "running_at_end": running_at_end, "alarms": len(mine),
            "diagnosis_at_raise": at_raise.fault if at_raise else None,
        })

    # Not yet decided (running at the end, not alarmed): left out of every detection count.
    decided = [r for r in fault_rows if r["detected"] is not None]
    by_kind: dict[str, dict] = {}
    for kind in sorted({row["kind"] for row in decided}):
        rows = [r for r in decided if r["kind"] == kind]
        delays = [r["delay_s"] for r in rows if r["delay_s"] is not None]
        median, p90 = quantiles(delays, (0.5, 0.9))
        by_kind[kind] = {
            "faults": len(rows), "detected": sum(r["detected"] for r in rows),
            "detected_pct": 100.0 * sum(r["detected"] for r in rows) / len(rows),
            "median_delay_s": median, "p90_delay_s": p90,
        }
    # A work order records no severity: a fault maintenance found counts as one that mattered.
    strong = [r for r in decided if r["severity"] is None or r["severity"] >= 0.5]

    outside_s = 0.0
    for tag in equipment:
        periods = [(f.start, f.end + grace) for f in faults if f.equipment == tag]
        outside_s += (end - start).total_seconds() - _overlap_seconds(periods, start, end)
    equipment_days = outside_s / 86400.0
    false_alarms = [a for a in alarms if a.fault_key is None]

    fault_kind = {f.key: f.kind for f in faults}
    diagnosis = {}
    for offset in offsets_s:
        rows = [(a, d) for a in alarms for d in a.diagnoses if d.offset_s == offset and not d.error]
        scored = [(a, d) for a, d in rows if a.fault_key is not None]
        correct = sum(d.fault == fault_kind.get(a.fault_key) for a, d in scored)
        uncertain = sum(is_uncertain(d.fault, d.probability, uncertain_below) for _, d in rows)
        diagnosis[str(int(offset))] = {
            "diagnoses": len(rows), "of_fault_alarms": len(scored), "correct": correct,
            "top1_accuracy": correct / len(scored) if scored else None,
            "uncertain": uncertain, "uncertain_rate": uncertain / len(rows) if rows else None,
        }
    at_raise = [d for a in alarms for d in a.diagnoses if d.offset_s == 0 and not d.error]
    p50, p95 = quantiles([d.compute_ms for d in at_raise])
    confusion: dict[str, Counter] = defaultdict(Counter)
    for alarm in alarms:
        for d in alarm.diagnoses:
            if d.offset_s == 0 and not d.error:
                confusion[fault_kind.get(alarm.fault_key, "false alarm")][d.fault] += 1

    return {
        "range": {"start": start.isoformat(), "end": end.isoformat(), "days": (end - start).total_seconds() / 86400.0},
        "ground_truth": ground_truth,
        "equipment": list(equipment),
        "detection": {
            "faults": len(decided), "detected": sum(r["detected"] for r in decided),
            "detected_pct": 100.0 * sum(r["detected"] for r in decided) / len(decided) if decided else None,
            "running_at_end": sum(r["running_at_end"] and r["detected"] is None for r in fault_rows),
            "severity_ge_0_5": {"faults": len(strong), "detected": sum(r["detected"] for r in strong),
                                "detected_pct": 100.0 * sum(r["detected"] for r in strong) / len(strong) if strong else None},
            "by_kind": by_kind,
        },
        "false_alarms": {
            "count": len(false_alarms), "equipment_days": equipment_days,
            "per_equipment_day": len(false_alarms) / equipment_days if equipment_days > 0 else None,
            "by_equipment": dict(Counter(a.equipment for a in false_alarms)),
        },
        "alarms": {"count": len(alarms), "of_faults": len(alarms) - len(false_alarms)},
        "diagnosis": {
            "by_offset_s": diagnosis,
            "raise_to_diagnosis_ms": {"p50": p50, "p95": p95, "note": "reading the incident from storage and diagnosing it, no queue"},
            "at_raise_confusion": {k: dict(v) for k, v in sorted(confusion.items())},
            "errors": sum(1 for a in alarms for d in a.diagnoses if d.error),
        },
        "faults": fault_rows,
    }
