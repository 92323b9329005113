from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from connectors.logs import (
    DEFAULT_PATTERN,
    JsonOffsetStore,
    LogFileFollower,
    LogLineFormat,
    MemoryOffsetStore,
    TemplateTagger,
    make_template_miner,
)
from connectors.sink import MemorySink


def line(i: int, level: str = "INFO", text: str | None = None) -> str:
    return f"2024-05-01 10:00:{i % 60:02d},123 {level} {text or f'pump P{i} pressure {i}.5 bar from 10.0.0.{i % 250}'}\n"


def append(path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


def follower(path, store, sink=None, **kwargs):
    return LogFileFollower("log", sink or MemorySink(), path=path, offsets=store, source="plc-7", **kwargs)


def messages(sink) -> list[str]:
    return [record.message for record in sink.logs]


def test_lines_become_records_with_time_level_template_and_parameters(tmp_path):
    path = tmp_path / "app.log"
    path.write_text(line(1) + line(2, "WARN") + line(3, "ERROR", "valve V7 stuck at /opt/plant/valves/v7.cfg"))
    sink = MemorySink()
    follower(path, MemoryOffsetStore(), sink).read_available()
    first, second, third = sink.logs
    assert first.ts == datetime(2024, 5, 1, 10, 0, 1, 123000, tzinfo=timezone.utc)
    assert (first.source, first.level, second.level, third.level) == ("plc-7", "INFO", "WARNING", "ERROR")
    assert first.template_id == second.template_id != third.template_id
    # Parameters follow the template as mined so far: P1 is a constant until P2 is seen.
    assert first.parameters == ["1.5", "10.0.0.1"]
    assert second.parameters == ["P2", "2.5", "10.0.0.2"]
    assert "/opt/plant/valves/v7.cfg" in third.parameters


def test_restart_resumes_at_the_stored_offset_without_rereading(tmp_path):
    path = tmp_path / "app.log"
    store = JsonOffsetStore(tmp_path / "offsets.json")
    path.write_text(line(1) + line(2))
    sink = MemorySink()
    follower(path, store, sink).read_available()
    append(path, line(3))
    follower(path, store, sink).read_available()  # a new process, same store
    assert [m.split()[1] for m in messages(sink)] == ["P1", "P2", "P3"]


def test_partial_last_line_waits_for_its_newline(tmp_path):
    path = tmp_path / "app.log"
    path.write_text(line(1) + line(2)[:20])
    sink = MemorySink()
    reader = follower(path, MemoryOffsetStore(), sink)
    reader.read_available()
    assert len(sink.logs) == 1
    append(path, line(2)[20:])
    reader.read_available()
    assert [m.split()[1] for m in messages(sink)] == ["P1", "P2"]


def test_rotation_while_running_reads_every_line_once(tmp_path):
    path = tmp_path / "app.log"
    path.write_text(line(1))
    sink = MemorySink()
    reader = follower(path, MemoryOffsetStore(), sink)
    reader.read_available()
    append(path, line(2))  # written just before the rotation
    os.rename(path, tmp_path / "app.log.1")
    path.write_text(line(3))
    reader.read_available()
    append(path, line(4))
    reader.read_available()
    assert [m.split()[1] for m in messages(sink)] == ["P1", "P2", "P3", "P4"]


def test_rotation_while_stopped_finishes_the_rotated_file_first(tmp_path):
    path = tmp_path / "app.log"
    store = JsonOffsetStore(tmp_path / "offsets.json")
    path.write_text(line(1))
    sink = MemorySink()
    follower(path, store, sink).read_available()
    append(path, line(2))
    os.rename(path, tmp_path / "app.log.1")
    path.write_text(line(3) + line(4))
    follower(path, store, sink).read_available()
    assert [m.split()[1] for m in messages(sink)] == ["P1", "P2", "P3", "P4"]


def test_copy_truncate_rotation_starts_over(tmp_path):
    path = tmp_path / "app.log"
    path.write_text(line(1) + line(2))
    sink = MemorySink()
    reader = follower(path, MemoryOffsetStore(), sink)
    reader.read_available()
    path.write_text(line(3))  # truncated in place and written again
    reader.read_available()
    assert [m.split()[1] for m in messages(sink)] == ["P1", "P2", "P3"]


def test_explicit_pattern_quarantines_misses_and_only_indented_lines_continue(tmp_path):
    path = tmp_path / "app.log"
    path.write_text(line(1, "ERROR", "trip") + "  at motor.py:12\n" + "garbage without time\n" + line(2))
    sink = MemorySink()
    reader = follower(path, MemoryOffsetStore(), sink, line_format=LogLineFormat(pattern=DEFAULT_PATTERN))
    reader.read_available()
    assert messages(sink)[0] == "trip\n  at motor.py:12"
    assert len(sink.logs) == 2
    assert reader.status().rejected == 1
    assert "does not match" in reader.quarantined[0].reason


def test_custom_format_with_strftime_and_zone(tmp_path):
    path = tmp_path / "plc.log"
    path.write_text("01/05/2024 12:00:00 | E | PLC3 | overtemp\n")
    fmt = LogLineFormat(
        pattern=r"^(?P<ts>\S+ \S+) \| (?P<level>\w+) \| (?P<source>\w+) \| (?P<message>.*)$",
        ts_format="%d/%m/%Y %H:%M:%S",
        timezone="Europe/Berlin",
    )
    sink = MemorySink()
    follower(path, MemoryOffsetStore(), sink, line_format=fmt).read_available()
    record = sink.logs[0]
    assert (record.source, record.level, record.message) == ("PLC3", "ERROR", "overtemp")
    assert record.ts.astimezone(timezone.utc) == datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)


def test_pattern_without_required_groups_is_refused():
    with pytest.raises(ValueError, match="level"):
        LogLineFormat(pattern=r"(?P<ts>\S+) (?P<message>.*)")


def test_detected_headers_group_traces_and_wrapped_lines_into_their_record(tmp_path):
    path = tmp_path / "app.log"
    path.write_text(
        line(1, "ERROR", "trip")
        + "java.lang.IllegalStateException: boom\n\tat motor.Drive.run(Drive.java:12)\nCaused by: x\n"
        + line(2)
        + "wrapped rest of the message\n"
    )
    sink = MemorySink()
    reader = follower(path, MemoryOffsetStore(), sink)
    reader.read_available()
    assert messages(sink)[0] == "trip\njava.lang.IllegalStateException: boom\n\tat motor.Drive.run(Drive.java:12)\nCaused by: x"
    assert messages(sink)[1].endswith("10.0.0.2\nwrapped rest of the message")
    assert len(sink.logs) == 2 and reader.status().rejected == 0


def test_a_format_without_a_known_header_gives_one_record_per_line_stamped_when_read(tmp_path):
    path = tmp_path / "odd.log"
    path.write_text("#12 pump started\n#13 ERROR pump tripped\n#14 pump started\n")
    sink = MemorySink()
    before = datetime.now(timezone.utc)
    follower(path, MemoryOffsetStore(), sink).read_available()
    assert messages(sink) == ["#12 pump started", "#13 ERROR pump tripped", "#14 pump started"]
    assert [r.level for r in sink.logs] == ["INFO", "ERROR", "INFO"]
    assert all(r.ts >= before for r in sink.logs)
    assert sink.logs[0].template_id == sink.logs[2].template_id != sink.logs[1].template_id


def test_template_ids_survive_a_restart_with_miner_state(tmp_path):
    from connectors.logs import MinerSettings

    settings = MinerSettings(state_path=str(tmp_path / "miner.json"))
    tagger = TemplateTagger(make_template_miner(settings))
    tagger.tag("pump P1 started")
    first = tagger.tag("motor M1 started after 3 s")
    assert tagger.checkpoint()
    again = TemplateTagger(make_template_miner(settings)).tag("motor M2 started after 4 s")
    assert first[0] == again[0] == "2"


def test_a_restarted_follower_gives_known_lines_their_old_template_ids(tmp_path):
    from connectors.logs import MemoryMinerStateStore, MinerSettings

    path = tmp_path / "app.log"
    store, states = JsonOffsetStore(tmp_path / "offsets.json"), MemoryMinerStateStore()

    def restarted():
        tagger = TemplateTagger.restore(MinerSettings(), store=states, key="logfile:plc", id_prefix="plc:")
        return follower(path, store, sink, tagger=tagger)

    sink = MemorySink()
    path.write_text(line(1, "WARN", "valve V1 stuck") + line(2) + line(3, "ERROR", "drive D1 tripped"))
    restarted().read_available()
    append(path, line(4, "ERROR", "drive D7 tripped") + line(5) + line(6, "WARN", "valve V9 stuck"))
    restarted().read_available()  # a new process: fresh miner from the stored state
    by_kind = {}
    for record in sink.logs:
        by_kind.setdefault(record.message.split()[0], set()).add(record.template_id)
    assert by_kind == {"valve": {"plc:1"}, "pump": {"plc:2"}, "drive": {"plc:3"}}
    assert sink.logs[-1].template == "valve <*> stuck"


WEVTUTIL = """Event[0]:
  Log Name: System
  Source: Service Control Manager
  Date: 2026-12-06T10:00:00.123
  Event ID: 7036
  Task: N/A
  Level: Information
  Computer: SCADA-01
  Description: 
The OPC UA Server service entered the running state.
Event[1]:
  Log Name: System
  Source: Service Control Manager
  Date: 2026-12-06T10:05:00.000
  Event ID: 7031
  Task: N/A
  Level: Error
  Computer: SCADA-01
  Description: 
The OPC UA Server service terminated unexpectedly.
It has done this 2 time(s).
Event[2]:
  Log Name: System
  Source: Service Control Manager
  Date: 2026-12-06T10:06:00.000
  Event ID: 7036
  Task: N/A
  Level: Information
  Computer: SCADA-01
  Description: 
The OPC UA Server service entered the running state.
"""


def test_windows_event_blocks_are_one_record_each_with_their_date_level_and_description(tmp_path):
    path = tmp_path / "system.txt"
    path.write_text(WEVTUTIL)
    sink = MemorySink()
    reader = follower(path, MemoryOffsetStore(), sink)
    reader.read_available()
    assert reader.status().rejected == 0
    first, error, third = sink.logs
    assert [r.ts for r in sink.logs] == [
        datetime(2026, 12, 6, 10, 0, 0, 123000, tzinfo=timezone.utc),
        datetime(2026, 12, 6, 10, 5, tzinfo=timezone.utc),
        datetime(2026, 12, 6, 10, 6, tzinfo=timezone.utc),
    ]
    assert [r.level for r in sink.logs] == ["INFO", "ERROR", "INFO"]
    assert error.message.startswith("Service Control Manager 7031: The OPC UA Server service terminated unexpectedly. It has done this 2 time(s).\n")
    assert "  Computer: SCADA-01" in error.message
    assert first.template_id == third.template_id != error.template_id
    assert reader.status().extra == {"templates": 2, "merged_ids": 0, "split_templates": 0, "dropped_templates": 0}


def test_nul_bytes_from_a_torn_write_are_replaced(tmp_path):
    path = tmp_path / "app.log"
    path.write_bytes(line(1, "INFO", "pump\x00\x00 started").encode())
    sink = MemorySink()
    follower(path, MemoryOffsetStore(), sink).read_available()
    assert messages(sink) == ["pump\ufffd\ufffd started"]


def test_an_endless_line_is_read_in_bounded_pieces_that_join_one_record(tmp_path):
    path = tmp_path / "app.log"
    path.write_text(line(1, "ERROR", "dump " + "x" * 5000) + line(2))
    sink = MemorySink()
    reader = follower(path, MemoryOffsetStore(), sink)
    reader.max_line_bytes = 1000
    reader.read_available()
    assert len(sink.logs) == 2
    assert sink.logs[0].message.replace("\n", "") == "dump " + "x" * 5000
