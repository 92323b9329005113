from __future__ import annotations

import threading

from connectors.base import Backoff, Connector
from connectors.records import Reading
from connectors.sink import MemorySink
from connectors.supervisor import Supervisor


class CrashingOnce(Connector):
    kind = "test"

    def __init__(self, name, sink):
        super().__init__(name, sink)
        self.runs = 0

    def run(self, stop: threading.Event) -> None:
        self.runs += 1
        if self.runs == 1:
            raise RuntimeError("boom")
        self.set_state("running", connected=True)
        from datetime import datetime, timezone

        self.note_messages()
        self.deliver_readings([Reading("x", datetime(2024, 1, 1, tzinfo=timezone.utc), 1.0)])
        stop.wait()


def test_supervisor_restarts_a_crashed_connector_and_reports_status(wait_for):
    sink = MemorySink()
    crashing = CrashingOnce("a", sink)
    ticks = []
    supervisor = Supervisor([crashing], tick_seconds=0.05, on_tick=ticks.append, restart_backoff=Backoff(0.01, 0.02))
    supervisor.start()
    try:
        assert wait_for(lambda: crashing.status().accepted == 1)
        status = crashing.status()
        assert status.state == "running" and status.reconnects == 1
        assert "boom" in status.last_error and status.last_message_at is not None
        assert wait_for(lambda: len(ticks) >= 2)
    finally:
        supervisor.stop()
    assert crashing.status().state == "stopped"
    assert ticks[-1][0].state == "stopped"
    assert crashing.runs == 2


def test_backoff_grows_and_is_capped():
    backoff = Backoff(initial=1.0, maximum=4.0)
    delays = [backoff.next_delay() for _ in range(6)]
    assert 0.5 <= delays[0] <= 1.0 and all(d <= 4.0 for d in delays) and delays[-1] >= 2.0
    backoff.reset()
    assert backoff.next_delay() <= 1.0
