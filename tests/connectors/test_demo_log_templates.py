"""The demo's controller log lines keep the templates and template ids they had before the
unseen-format miner (issue #20): the diagnosis reads these templates as evidence and the
dashboard and stored diagnoses refer to these ids. Expected values were recorded with the
Drain3 miner this test was written against."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.logs import TemplateTagger, make_template_miner
from connectors.simulator import DEMO_PLANT, PlantSimulator, ScheduledFault
from models.logs import events_from_messages

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_logs():
    """Six hours of the demo plant with faults that make every controller message appear."""
    faults = [
        ScheduledFault("P-201", "cavitation", START + timedelta(hours=1), START + timedelta(hours=3)),
        ScheduledFault("CH-501", "condenser_fouling", START + timedelta(hours=1), START + timedelta(hours=4), severity=3.0),
        ScheduledFault("P-101", "bearing_wear", START + timedelta(hours=2), START + timedelta(hours=5), severity=3.0),
    ]
    _, logs = PlantSimulator(DEMO_PLANT, seed=7, faults=faults).generate(START, START + timedelta(hours=6))
    return logs


def test_one_miner_over_all_controllers_gives_the_same_ids_and_templates(demo_logs):
    tagger = TemplateTagger(make_template_miner())
    ids = [tagger.tag(record.message)[0] for record in demo_logs]
    first_message = {}
    for template_id, record in zip(ids, demo_logs):
        first_message.setdefault(template_id, record.message)
    assert {template_id: tagger.template(template_id) for template_id in first_message} == {
        "1": "PLC heartbeat OK, scan time <NUM> ms",
        "2": "VFD <*> speed setpoint changed to <NUM> rpm",
        "3": "Suction pressure <NUM> bar below NPSH margin <NUM> bar",
        "4": "Flow unstable: deviation <NUM> m3/h over <NUM> s",
        "5": "Condenser pressure <NUM> bar high, check condenser tubes",
        "6": "Vibration <NUM> mm/s above <*> limit <NUM> mm/s",
        "7": "Bearing temperature <NUM> C above limit <NUM> C",
    }
    assert first_message["6"].startswith("Vibration 6.0 mm/s above warning limit")
    # Every line of one message kind carries one id (warning and alarm vibration share theirs).
    kinds = {}
    for template_id, record in zip(ids, demo_logs):
        kinds.setdefault(template_id, set()).add(record.message.split(" ")[0])
    assert all(len(words) == 1 for words in kinds.values())


@pytest.mark.parametrize(
    ("tag", "templates"),
    [
        (
            "P-101",
            [
                "Bearing temperature <NUM> C above limit <NUM> C",
                "PLC heartbeat OK, scan time <NUM> ms",
                "VFD P-<NUM> speed setpoint changed to <NUM> rpm",
                "Vibration <NUM> mm/s above <*> limit <NUM> mm/s",
            ],
        ),
        (
            "P-201",
            [
                "Flow unstable: deviation <NUM> m3/h over <NUM> s",
                "PLC heartbeat OK, scan time <NUM> ms",
                "Suction pressure <NUM> bar below NPSH margin <NUM> bar",
                "VFD P-<NUM> speed setpoint changed to <NUM> rpm",
            ],
        ),
        ("CH-501", ["Condenser pressure <NUM> bar high, check condenser tubes", "PLC heartbeat OK, scan time <NUM> ms"]),
    ],
)
def test_diagnosis_templates_per_equipment_are_unchanged(demo_logs, tag, templates):
    events = events_from_messages([(r.ts, r.level, r.message) for r in demo_logs if r.source == tag])
    assert sorted({event.template for event in events}) == templates


def test_a_window_with_only_warnings_keeps_the_literal_word(demo_logs):
    warnings = [(r.ts, r.level, r.message) for r in demo_logs if r.source == "P-101" and "warning limit" in r.message]
    assert warnings
    assert {e.template for e in events_from_messages(warnings)} == {"Vibration <NUM> mm/s above warning limit <NUM> mm/s"}
