from __future__ import annotations

from datetime import datetime, timedelta, timezone

from connectors.records import LogRecord, Reading
from connectors.sink import MemorySink
from connectors.spool import SpoolingSink

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)


class FlakySink(MemorySink):
    """A real MemorySink that raises like a database driver while ``down`` is set, and keeps
    the order in which batches arrived."""

    def __init__(self):
        super().__init__()
        self.down = False
        self.order: list[float] = []

    def write_readings(self, readings):
        if self.down:
            raise ConnectionError("database is down")
        self.order.extend(r.value for r in readings)
        return super().write_readings(readings)

    def write_logs(self, records):
        if self.down:
            raise ConnectionError("database is down")
        return super().write_logs(records)


def batch(start: int, n: int = 3) -> list[Reading]:
    return [Reading("s", T0 + timedelta(seconds=i), float(i)) for i in range(start, start + n)]


def test_passes_through_while_the_sink_works(tmp_path):
    wrapped = FlakySink()
    sink = SpoolingSink(wrapped, tmp_path / "spool")
    result = sink.write_readings(batch(0))
    assert result.accepted == 3 and not sink.pending and len(wrapped.readings) == 3


def test_outage_spools_to_disk_and_replays_in_order(tmp_path):
    wrapped = FlakySink()
    sink = SpoolingSink(wrapped, tmp_path / "spool", retry_interval=0)
    sink.write_readings(batch(0))
    wrapped.down = True
    assert sink.write_readings(batch(3)).accepted == 3  # durably spooled
    sink.write_readings(batch(6))
    assert sink.pending_batches() == 2 and len(wrapped.readings) == 3
    wrapped.down = False
    sink.write_readings(batch(9))  # the next write replays the spool first, then itself
    assert wrapped.order == [float(i) for i in range(12)]
    assert not sink.pending and sink.replayed_batches == 2


def test_spool_survives_a_restart_of_the_process(tmp_path):
    wrapped = FlakySink()
    wrapped.down = True
    record = LogRecord("plc", T0, "ERROR", "trip 3", "plc:4", ["3"], "trip <NUM>")
    SpoolingSink(wrapped, tmp_path / "spool").write_logs([record])
    wrapped.down = False
    fresh = SpoolingSink(wrapped, tmp_path / "spool")  # a new process finds the segment
    assert fresh.pending and fresh.replay()
    assert wrapped.logs == [record]  # template id, parameters and template text survive the spool


def test_replay_that_fails_midway_resumes_after_the_last_delivered_batch(tmp_path):
    wrapped = FlakySink()
    wrapped.down = True
    sink = SpoolingSink(wrapped, tmp_path / "spool", retry_interval=0)
    for start in (0, 3, 6):
        sink.write_readings(batch(start))

    calls = {"n": 0}
    original = FlakySink.write_readings

    def fail_on_second(self, readings):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("dropped again")
        return original(self, readings)

    wrapped.down = False
    wrapped.write_readings = fail_on_second.__get__(wrapped)
    assert sink.replay() is False and sink.pending_batches() == 2
    assert sink.replay() is True
    assert wrapped.order == [float(i) for i in range(9)]  # nothing twice, nothing lost
