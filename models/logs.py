"""Log events of an alarm window versus the normal baseline of the same source.

Three steps, used by root-cause diagnosis (the log tokens of the prompt prefix) and by the BGL
harness (``python -m models.evaluate bgl``):

* :func:`events_from_messages`: ``(ts, level, message)`` -> :class:`LogEvent` with its
  template, mined with the log connector's own miner (``connectors.logtemplates``);
* :func:`template_changes`: templates whose rate in the window differs from the baseline rate,
  ranked by how surprising the window count is under a Poisson model of the baseline rate;
* :func:`log_prompt_text`: a compact line of text for the prompt prefix.

The statistic. A template seen ``n_b`` times in ``H_b`` baseline hours has the smoothed rate
``(n_b + PRIOR_COUNT) / H_b`` (a template never seen in the baseline keeps a small non-zero rate,
so one new line is surprising but not infinitely so, and a short baseline makes everything less
surprising). Over ``H_w`` window hours it is expected ``mu`` times; seeing ``k`` is scored by the
Poisson tail: ``-ln P(X >= k)`` when the template rose, ``-ln P(X <= k)`` when it fell (a periodic
message that stopped is evidence too). A template counts as changed when that tail probability
is below ``CHANGE_P`` (a fixed significance, not tuned on any data set); changed templates are
ranked by the surprise times a severity weight of their level.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from scipy.stats import poisson

from connectors.logs import LEVEL_ALIASES
from connectors.logtemplates import TemplateMiner
from models.diagnosis.types import LogEvent, LogEvidence

PRIOR_COUNT = 0.5  # pseudo-count added to every template's baseline count (Jeffreys-style smoothing)
MIN_SPAN_HOURS = 1 / 60  # floor of a span measured from timestamps: one line, or a burst in one second
CHANGE_P = 1e-3  # a window count this improbable under the baseline rate is a change
SEVERITY_WEIGHT = {"CRITICAL": 3.0, "ERROR": 2.0, "WARNING": 1.5, "INFO": 1.0, "DEBUG": 0.5}
SEVERITY_ORDER = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def normalise_level(level: str) -> str:
    """Upper case, with the connector's aliases (WARN -> WARNING, FATAL -> CRITICAL, ...)."""
    upper = (level or "").strip().upper()
    return LEVEL_ALIASES.get(upper, upper)


def events_from_messages(records: Sequence[tuple[datetime, str, str]], *, miner=None) -> list[LogEvent]:
    """Turn ``(ts, level, message)`` records into :class:`LogEvent`s with their template.

    ``miner``: a ``connectors.logtemplates.TemplateMiner`` (default: a fresh one with the
    connector's one default configuration). All messages are added first, then every event gets
    its template's final text (following merges): templates generalise as lines arrive, so
    reading them after the whole batch keeps one string per template. Mine a window and its
    baseline in one call (or in chronological order through one shared miner) so that their
    templates compare.
    """
    miner = miner if miner is not None else TemplateMiner()
    cluster_ids = [miner.add(message).template_id for _, _, message in records]
    templates = {cid: miner.template(cid) for cid in set(cluster_ids)}
    return [
        LogEvent(ts=ts, level=normalise_level(level), template=templates[cid])
        for (ts, level, _), cid in zip(records, cluster_ids)
    ]


def span_hours(events: Sequence[LogEvent]) -> float:
    """Hours between the first and last event, at least :data:`MIN_SPAN_HOURS`."""
    if not events:
        return MIN_SPAN_HOURS
    stamps = [event.ts for event in events]
    return max((max(stamps) - min(stamps)).total_seconds() / 3600.0, MIN_SPAN_HOURS)


def poisson_surprise(count: int, expected: float) -> float:
    """``-ln`` of the Poisson tail on the side the count moved: P(X >= count) above, P(X <= count) below."""
    if count > expected:
        log_tail = poisson.logsf(count - 1, expected)
    else:
        log_tail = poisson.logcdf(count, expected)
    return float(-log_tail) if math.isfinite(log_tail) else float("inf")


@dataclass(frozen=True)
class TemplateChange:
    evidence: LogEvidence
    surprise: float  # -ln of the Poisson tail probability
    score: float  # surprise x severity weight, the ranking key


def most_severe(levels: Sequence[str]) -> str:
    known = [level for level in levels if level in SEVERITY_ORDER]
    if known:
        return max(known, key=SEVERITY_ORDER.index)
    return levels[0] if levels else ""


def template_change(
    template: str, *, count: int, baseline_count: int, window_hours: float, baseline_hours: float, level: str
) -> TemplateChange:
    """The change statistic of one template: ``count`` in the window against ``baseline_count`` before."""
    expected = (baseline_count + PRIOR_COUNT) / baseline_hours * window_hours
    surprise = poisson_surprise(count, expected)
    evidence = LogEvidence(
        template=template, count=count, baseline_per_hour=baseline_count / baseline_hours,
        window_per_hour=count / window_hours, level=level,
    )
    return TemplateChange(evidence, surprise, surprise * SEVERITY_WEIGHT.get(level, 1.0))


def resolve_hours(
    window: Sequence[LogEvent], baseline: Sequence[LogEvent], window_hours: float | None, baseline_hours: float | None
) -> tuple[float, float]:
    hours_w = max(window_hours if window_hours is not None else span_hours(window), 1e-9)
    if baseline_hours is not None:
        hours_b = max(baseline_hours, 1e-9)
    elif baseline:
        hours_b = span_hours(baseline)
    else:
        hours_b = hours_w  # no baseline: the prior alone, one pseudo-count per window length
    return hours_w, hours_b


def rank_template_changes(
    window: Sequence[LogEvent],
    baseline: Sequence[LogEvent],
    *,
    window_hours: float | None = None,
    baseline_hours: float | None = None,
    change_p: float = CHANGE_P,
) -> list[TemplateChange]:
    """Every changed template with its surprise and score, most surprising first (see module doc)."""
    hours_w, hours_b = resolve_hours(window, baseline, window_hours, baseline_hours)
    window_counts = Counter(event.template for event in window)
    baseline_counts = Counter(event.template for event in baseline)
    window_levels: dict[str, list[str]] = defaultdict(list)
    baseline_levels: dict[str, list[str]] = defaultdict(list)
    for event in window:
        window_levels[event.template].append(event.level)
    for event in baseline:
        baseline_levels[event.template].append(event.level)
    min_surprise = -math.log(change_p)
    changes = []
    for template in window_counts.keys() | baseline_counts.keys():
        count = window_counts[template]
        change = template_change(
            template, count=count, baseline_count=baseline_counts[template], window_hours=hours_w,
            baseline_hours=hours_b, level=most_severe(window_levels[template] if count else baseline_levels[template]),
        )
        if change.surprise >= min_surprise:
            changes.append(change)
    changes.sort(key=lambda change: (-change.score, -change.evidence.count, change.evidence.template))
    return changes


def template_changes(
    window: Sequence[LogEvent],
    baseline: Sequence[LogEvent],
    *,
    window_hours: float | None = None,
    baseline_hours: float | None = None,
    top: int = 8,
) -> list[LogEvidence]:
    """The ``top`` templates whose window rate differs most surprisingly from the baseline rate.

    Hours default to the span of each side's timestamps (at least one minute); pass the alarm
    window's real length when known, since a span measured from a few lines underestimates it.
    """
    ranked = rank_template_changes(window, baseline, window_hours=window_hours, baseline_hours=baseline_hours)
    return [change.evidence for change in ranked[:top]]


def format_rate(per_hour: float) -> str:
    if per_hour == 0:
        return "0"
    if per_hour >= 10:
        return f"{per_hour:.0f}"
    return f"{per_hour:.2g}"


def describe_change(change: LogEvidence) -> str:
    normal = "new" if change.baseline_per_hour == 0 else f"normal {format_rate(change.baseline_per_hour)}/h"
    level = f" {change.level}" if change.level else ""
    return f"'{change.template}' {change.count}x ({normal}){level}"


def log_prompt_text(changes: Sequence[LogEvidence], *, max_chars: int = 400) -> str:
    """``"Logs vs normal: 'T1' 14x (normal 0.1/h) WARNING; 'T2' 3x (new) ERROR"``, at most ``max_chars``.

    Whole items are kept in rank order while they fit; when not even the first fits, its template
    is shortened with an ellipsis. ``""`` when nothing changed.
    """
    if not changes:
        return ""
    head = "Logs vs normal: "
    text = head + describe_change(changes[0])
    if len(text) > max_chars:
        first = changes[0]
        rest = len(text) - len(first.template)  # everything but the template itself
        room = max_chars - rest - 1
        if room < 1:
            return text[: max(max_chars - 1, 0)] + "…" if max_chars > 0 else ""
        shortened = LogEvidence(first.template[:room] + "…", first.count, first.baseline_per_hour,
                                first.window_per_hour, first.level)
        return head + describe_change(shortened)
    for change in changes[1:]:
        candidate = f"{text}; {describe_change(change)}"
        if len(candidate) > max_chars:
            break
        text = candidate
    return text
