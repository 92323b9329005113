"""Log events versus the normal baseline: Drain templates, rate changes, prompt text."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from models.diagnosis.types import LogEvent, LogEvidence
from models.logs import events_from_messages, log_prompt_text, poisson_surprise, template_changes

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def events(template: str, count: int, *, start: datetime, hours: float, level: str = "INFO") -> list[LogEvent]:
    """``count`` events of one template spread evenly over ``hours`` (first at start, last at the end)."""
    step = timedelta(hours=hours / max(count - 1, 1))
    return [LogEvent(ts=start + i * step, level=level, template=template) for i in range(count)]


def test_messages_differing_only_in_numbers_share_one_template():
    records = [
        (T0, "warn", "Bearing temp 81 C above limit 80"),
        (T0 + timedelta(minutes=1), "WARN", "Bearing temp 95.5 C above limit 80"),
        (T0 + timedelta(minutes=2), "info", "Pump P-101 started"),
    ]
    found = events_from_messages(records)
    assert found[0].template == found[1].template == "Bearing temp <NUM> C above limit <NUM>"
    assert found[2].template != found[0].template
    assert [e.level for e in found] == ["WARNING", "WARNING", "INFO"]
    assert [e.ts for e in found] == [r[0] for r in records]


def test_events_get_their_template_final_text():
    # A word position becomes a variable on the third different word; lines mined before that
    # report the merged template too.
    names = ["alice", "bob", "carol"]
    events = events_from_messages([(T0, "INFO", f"valve opened by {name}") for name in names])
    assert {event.template for event in events} == {"valve opened by <*>"}
    two = events_from_messages([(T0, "INFO", f"valve opened by {name}") for name in names[:2]])
    assert [event.template for event in two] == ["valve opened by alice", "valve opened by bob"]


def test_new_template_ranks_first_and_unchanged_templates_drop_out():
    baseline = events("heartbeat ok", 100, start=T0, hours=100) + events("pump started", 10, start=T0, hours=100)
    window_start = T0 + timedelta(hours=200)
    window = (
        events("heartbeat ok", 1, start=window_start, hours=1)
        + events("pump started", 5, start=window_start, hours=1)  # 50x its normal rate
        + events("seal leak detected", 3, start=window_start, hours=1, level="WARNING")
    )
    changes = template_changes(window, baseline, window_hours=1.0)
    assert [c.template for c in changes] == ["seal leak detected", "pump started"]
    new = changes[0]
    assert new.count == 3 and new.baseline_per_hour == 0 and new.window_per_hour == 3 and new.level == "WARNING"
    assert changes[1].baseline_per_hour == pytest.approx(10 / 100)


def test_rates_use_each_side_span_when_hours_are_not_given():
    # 20 lines over 10 h in the baseline (2/h), 8 lines over 2 h in the window (4/h): a modest rise.
    baseline = events("filter dp high", 21, start=T0, hours=10)
    window = events("filter dp high", 9, start=T0 + timedelta(hours=20), hours=2)
    both = template_changes(window, baseline, top=8)
    assert both == []  # 9 seen, 4.3 expected: p ~ 0.04, not a change at p < 0.001
    # The same counts over a 12-minute window: 45/h against 2/h is a change, rates say so.
    short = events("filter dp high", 9, start=T0 + timedelta(hours=20), hours=0.2)
    (change,) = template_changes(short, baseline)
    assert change.window_per_hour == pytest.approx(9 / 0.2)
    assert change.baseline_per_hour == pytest.approx(21 / 10)


def test_zero_spans_are_guarded():
    one_line = [LogEvent(ts=T0, level="ERROR", template="motor tripped")]
    (change,) = template_changes(one_line, events("other", 50, start=T0 - timedelta(hours=200), hours=100))
    assert change.template == "motor tripped" and change.window_per_hour == pytest.approx(60.0)  # one line per minute
    # A baseline of two lines in one second is no evidence of anything; nothing divides by zero.
    assert template_changes(one_line, events("other", 2, start=T0 - timedelta(hours=5), hours=0)) == []
    assert template_changes([], []) == []


def test_stopped_periodic_message_is_a_change():
    baseline = events("heartbeat ok", 100, start=T0, hours=10)
    window = events("alarm raised", 1, start=T0 + timedelta(hours=20), hours=0)
    changes = template_changes(window, baseline, window_hours=1.0)
    stopped = next(c for c in changes if c.template == "heartbeat ok")
    assert stopped.count == 0 and stopped.window_per_hour == 0


def test_severity_breaks_ties_between_equally_surprising_templates():
    baseline = events("routine", 50, start=T0, hours=50)
    window_start = T0 + timedelta(hours=60)
    window = events("info new", 2, start=window_start, hours=1) + events(
        "error new", 2, start=window_start, hours=1, level="ERROR"
    )
    assert [c.template for c in template_changes(window, baseline, window_hours=1.0)][:2] == ["error new", "info new"]


def test_poisson_surprise_matches_the_tail():
    assert poisson_surprise(0, 1.0) == pytest.approx(1.0)  # P(X <= 0) = e^-1
    assert poisson_surprise(1, 0.5) == pytest.approx(-math.log(1 - math.exp(-0.5)))  # P(X >= 1)


def test_prompt_text_lists_changes_and_truncates_whole_items():
    changes = [
        LogEvidence("Bearing temp <NUM> C above limit <NUM>", 14, 0.1, 14.0, "WARNING"),
        LogEvidence("seal leak detected", 3, 0.0, 3.0, "ERROR"),
        LogEvidence("pump started", 5, 0.1, 5.0, "INFO"),
    ]
    text = log_prompt_text(changes)
    assert text == (
        "Logs vs normal: 'Bearing temp <NUM> C above limit <NUM>' 14x (normal 0.1/h) WARNING; "
        "'seal leak detected' 3x (new) ERROR; 'pump started' 5x (normal 0.1/h) INFO"
    )
    short = log_prompt_text(changes, max_chars=125)
    assert len(short) <= 125 and short.endswith("ERROR") and "pump started" not in short
    tiny = log_prompt_text(changes, max_chars=40)
    assert len(tiny) <= 40 and tiny.startswith("Logs vs normal: 'Bea") and "…" in tiny
    assert log_prompt_text([]) == ""
