from __future__ import annotations

from connectors.file_folder import HistorianFolderSource
from connectors.files import FileSpec
from connectors.sink import MemorySink


def test_settled_files_are_ingested_and_moved_bad_ones_rejected_with_reason(tmp_path):
    inbox = tmp_path / "historian"
    inbox.mkdir()
    (inbox / "a.csv").write_text("ts;flow\n2024-01-01 00:00:00;1,5\n2024-01-01 00:00:01;x\n")
    (inbox / "b.csv").write_text("time;flow\n2024-01-01 00:00:00;1\n")  # no 'ts' column
    sink = MemorySink()
    folder = HistorianFolderSource(
        "hist", sink, directory=inbox, spec=FileSpec(timestamp_column="ts", decimal=",", column_map={"flow": "P-1.FLOW"}), settle_s=0
    )
    assert folder.scan() == 1
    assert [(r.sensor, r.value) for r in sink.readings.values()] == [("P-1.FLOW", 1.5)]
    assert (inbox / "done" / "a.csv").exists() and (inbox / "rejected" / "b.csv").exists()
    assert "missing column" in (inbox / "rejected" / "b.csv.reason.txt").read_text()
    reasons = [(q.origin, q.reason) for q in folder.quarantined]
    assert reasons[0][0] == "a.csv row 1" and "'x' is not a number" in reasons[0][1]
    assert folder.status().extra["rows_done"] == 2


def test_sink_outage_leaves_the_file_for_the_next_scan(tmp_path):
    inbox = tmp_path / "historian"
    inbox.mkdir()
    (inbox / "a.csv").write_text("ts,v\n2024-01-01T00:00:00Z,1\n")

    class DownSink(MemorySink):
        down = True

        def write_readings(self, readings):
            if self.down:
                raise ConnectionError("database down")
            return super().write_readings(readings)

    sink = DownSink()
    folder = HistorianFolderSource("hist", sink, directory=inbox, spec=FileSpec(), settle_s=0)
    assert folder.scan() == 0 and (inbox / "a.csv").exists()
    sink.down = False
    assert folder.scan() == 1 and len(sink.readings) == 1
