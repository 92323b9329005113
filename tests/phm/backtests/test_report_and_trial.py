"""The report's scoring rules on hand-made alarms, and the trial's hidden fault schedule."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from connectors.simulator import DEMO_PLANT
from phm.backtests.report import AlarmRow, DiagnosisRow, KnownFault, build_report, match_fault
from phm.trial import SENSOR_FAULTS, fault_schedule, mean_table

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


def report_for(alarms, faults, **kwargs):
    params = dict(start=T0, end=T0 + 24 * H, equipment=["P-101", "M-101"], faults=faults, alarms=alarms, offsets_s=[0, 300],
                  uncertain_below=0.5, clear_grace_s=1800)
    return build_report(**{**params, **kwargs})


def test_detection_delay_false_alarms_and_diagnosis_accuracy():
    faults = [KnownFault(1, "P-101", "cavitation", T0 + 2 * H, T0 + 3 * H, 1.0), KnownFault(2, "M-101", "bearing_wear", T0 + 5 * H, T0 + 6 * H, 0.4)]
    alarms = [
        AlarmRow("P-101", "pca", T0 + 2 * H + timedelta(minutes=4), None, 5.0, fault_id=1,
                 diagnoses=[DiagnosisRow(0, "cavitation", 0.9, 100.0), DiagnosisRow(300, "normal", 0.8, 120.0)]),
        AlarmRow("P-101", "pca", T0 + 10 * H, T0 + 11 * H, 2.0, diagnoses=[DiagnosisRow(0, "misalignment", 0.45, 90.0)]),
    ]
    report = report_for(alarms, faults)
    assert report["detection"]["faults"] == 2 and report["detection"]["detected"] == 1
    assert report["detection"]["by_kind"]["cavitation"]["median_delay_s"] == 240
    assert report["detection"]["severity_ge_0_5"] == {"faults": 1, "detected": 1, "detected_pct": 100.0}
    # 2 units x 24 h minus each fault with its 30 min grace: 48 - 1.5 - 1.5 = 45 h.
    assert report["false_alarms"]["count"] == 1 and report["false_alarms"]["equipment_days"] == pytest.approx(45 / 24)
    at_raise, later = report["diagnosis"]["by_offset_s"]["0"], report["diagnosis"]["by_offset_s"]["300"]
    assert at_raise["top1_accuracy"] == 1.0 and at_raise["uncertain"] == 1  # the false alarm's 45 % is uncertain
    assert later["top1_accuracy"] == 0.0 and later["uncertain"] == 1  # "normal" names no fault
    assert report["diagnosis"]["at_raise_confusion"] == {"cavitation": {"cavitation": 1}, "false alarm": {"misalignment": 1}}


def test_an_alarm_raised_before_the_fault_does_not_detect_it_but_one_in_the_grace_belongs_to_it():
    fault = KnownFault(1, "P-101", "bearing_wear", T0 + 2 * H, T0 + 3 * H, 1.0)
    assert match_fault(equipment="P-101", raised_at=T0 + 3 * H + timedelta(minutes=10), faults=[fault], grace=timedelta(minutes=30)) == fault
    assert match_fault(equipment="P-101", raised_at=T0 + H, faults=[fault], grace=timedelta(minutes=30)) is None
    assert match_fault(equipment="M-101", raised_at=T0 + 2 * H, faults=[fault], grace=timedelta(minutes=30)) is None
    early = AlarmRow("P-101", "pca", T0 + H, None, 3.0)
    assert report_for([early], [fault])["detection"]["detected"] == 0


def test_the_hidden_schedule_covers_every_kind_on_every_unit_with_normal_stretches_between():
    schedule = fault_schedule(seed=5, start=T0, days=7, repeats=3)
    expected = Counter({(unit.tag, kind): 3 for unit in DEMO_PLANT.equipment for kind in unit.faults})
    assert Counter((f.equipment, f.kind) for f in schedule) == expected
    assert all(0.5 <= f.severity <= 1.5 and 20 * 60 - 1 <= f.duration_s <= 8 * 3600 for f in schedule)
    for unit in DEMO_PLANT.equipment:
        mine = sorted((f for f in schedule if f.equipment == unit.tag), key=lambda f: f.start)
        assert mine[0].start >= T0 + 3 * H
        for before, after in zip(mine, mine[1:]):
            assert after.start - (before.start + timedelta(seconds=before.duration_s)) >= 3 * H - timedelta(seconds=1)
        assert mine[-1].start + timedelta(seconds=mine[-1].duration_s) <= T0 + timedelta(days=7)
    ramps = [f.ramp_s / f.duration_s for f in schedule if f.ramp_s is not None]
    assert min(ramps) < 0.2 and max(ramps) > 0.6  # fast and slow ramps
    assert all((f.sensor is not None) == (f.kind in SENSOR_FAULTS) for f in schedule)
    hours = {f.start.hour for f in schedule}
    assert len(hours) > 12  # random times of day


def test_the_schedule_is_fixed_by_its_seed():
    assert fault_schedule(seed=1, start=T0, days=3, repeats=1) == fault_schedule(seed=1, start=T0, days=3, repeats=1)
    assert fault_schedule(seed=1, start=T0, days=3, repeats=1) != fault_schedule(seed=2, start=T0, days=3, repeats=1)


def test_a_span_too_short_for_the_schedule_is_refused():
    with pytest.raises(ValueError, match="cannot hold"):
        fault_schedule(seed=1, start=T0, days=1, repeats=3)


def test_mean_table_averages_seeds():
    def fake(detected_pct, fa):
        return {"detection": {"faults": 10, "detected_pct": detected_pct, "severity_ge_0_5": {"detected_pct": detected_pct},
                              "by_kind": {"cavitation": {"faults": 2, "detected_pct": detected_pct, "median_delay_s": 60.0}}},
                "false_alarms": {"per_equipment_day": fa}, "diagnosis": {"by_offset_s": {}}, "clock": {"total_s": 10.0}}

    mean = mean_table([fake(100.0, 0.0), fake(50.0, 0.4)])
    assert mean["headline"]["detected %"] == 75.0 and mean["headline"]["false alarms / equipment-day"] == pytest.approx(0.2)
    assert mean["by_kind"]["cavitation"] == {"faults": 4, "detected_pct": 75.0, "median_delay_s": 60.0}


def test_a_fault_still_running_at_the_end_of_the_range_is_not_scored_as_missed():
    """A fault injected minutes before the range ends has had no chance to be alarmed: it is listed
    as running at the end, out of the detection counts, unless an alarm already caught it."""
    end = T0 + 24 * H
    late = KnownFault(1, "P-101", "bearing_wear", end - timedelta(minutes=3), end + H, 1.0)
    caught = KnownFault(2, "M-101", "misalignment", end - 2 * H, end + H, 1.0)
    done = KnownFault(3, "P-101", "cavitation", T0 + 2 * H, T0 + 3 * H, 1.0)
    alarms = [AlarmRow("M-101", "pca", end - H, None, 4.0, fault_id=2)]
    report = report_for(alarms, [late, caught, done])
    assert (report["detection"]["faults"], report["detection"]["detected"]) == (2, 1)
    assert report["detection"]["running_at_end"] == 1
    assert report["detection"]["severity_ge_0_5"] == {"faults": 2, "detected": 1, "detected_pct": 50.0}
    assert report["detection"]["by_kind"].keys() == {"misalignment", "cavitation"}
    rows = {row["id"]: row for row in report["faults"]}
    assert rows[1]["running_at_end"] and rows[1]["detected"] is None
    assert rows[2]["running_at_end"] and rows[2]["detected"] is True
