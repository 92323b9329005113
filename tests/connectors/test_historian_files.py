from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from connectors.files import FileFormatError, FileSpec, iter_reading_batches, sniff_separator
from connectors.records import Reading

UTC = timezone.utc


def read_all(path: Path, spec: FileSpec, **kwargs):
    readings, rejections, batches = [], [], []
    for batch in iter_reading_batches(path, spec, **kwargs):
        readings.extend(batch.readings)
        rejections.extend(batch.rejections)
        batches.append(batch)
    return readings, rejections, batches


def by_tag(readings: list[Reading]) -> dict[str, list[Reading]]:
    out: dict[str, list[Reading]] = {}
    for reading in readings:
        out.setdefault(reading.sensor, []).append(reading)
    return out


def test_wide_csv_with_semicolons_decimal_commas_and_local_time(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("time;P-101.flow;P-101.temp\n2024-01-15 10:00:00;1,5;20,25\n2024-01-15 10:00:01;2,5;21\n")
    readings, rejections, _ = read_all(path, FileSpec(decimal=",", timezone="Europe/Berlin"))
    assert rejections == []
    tags = by_tag(readings)
    assert [r.value for r in tags["P-101.flow"]] == [1.5, 2.5]
    assert tags["P-101.temp"][0].value == 20.25
    # 10:00 in Berlin in winter is 09:00 UTC.
    assert tags["P-101.flow"][0].ts == datetime(2024, 1, 15, 9, 0, tzinfo=UTC)


def test_wide_csv_column_map_only_mapped_and_unit_scale(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("ts,a,b,c\n2024-01-01T00:00:00Z,1,2,3\n")
    spec = FileSpec(column_map={"a": "pump.flow_lps", "b": "pump.bar"}, only_mapped=True, unit_scale={"pump.bar": 100.0})
    readings, _, _ = read_all(path, spec)
    assert {(r.sensor, r.value) for r in readings} == {("pump.flow_lps", 1.0), ("pump.bar", 200.0)}


def test_bad_cells_and_rows_become_rejections_with_row_and_column(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(
        "ts,a,b\n"
        "2024-01-01 00:00:00,1,2\n"  # row 0 ok
        "2024-01-01 00:00:01,oops,3\n"  # row 1: a is bad, b is fine
        "not a time,4,5\n"  # row 2: timestamp bad
        "2024-01-01 00:00:03,6\n"  # row 3: too few fields
        "2024-01-01 00:00:04,,7\n"  # row 4: a is a gap, not an error
    )
    readings, rejections, _ = read_all(path, FileSpec())
    assert [r.index for r in rejections] == [1, 2, 3]
    assert "'a'" in rejections[0].error and "'oops'" in rejections[0].error
    assert "'ts'" in rejections[1].error and "not a time" in rejections[1].error
    assert "2 fields" in rejections[2].error
    assert sorted((r.sensor, r.value) for r in readings) == [("a", 1.0), ("b", 2.0), ("b", 3.0), ("b", 7.0)]


def test_missing_timestamp_column_is_a_format_error_naming_the_column(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("time,tag,value\n2024-01-01,x,1\n")
    with pytest.raises(FileFormatError) as info:
        list(iter_reading_batches(path, FileSpec(layout="long")))
    assert info.value.column == "ts" and "long.csv" in str(info.value)


def test_ambiguous_local_time_at_dst_end_is_rejected_not_guessed(tmp_path):
    path = tmp_path / "dst.csv"
    # 02:30 happens twice in Berlin on 2024-10-27.
    path.write_text("ts,a\n2024-10-27 01:30:00,1\n2024-10-27 02:30:00,2\n")
    readings, rejections, _ = read_all(path, FileSpec(timezone="Europe/Berlin"))
    assert [r.value for r in readings] == [1.0]
    assert [r.index for r in rejections] == [1]


def test_epoch_timestamps(tmp_path):
    path = tmp_path / "epoch.csv"
    path.write_text("ts,a\n1700000000000,1\n")
    readings, _, _ = read_all(path, FileSpec(timestamp_format="epoch_ms"))
    assert readings[0].ts == datetime.fromtimestamp(1_700_000_000, tz=UTC)


def test_large_csv_streams_in_batches_with_growing_progress(tmp_path):
    path = tmp_path / "big.csv"
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [f"{(start + timedelta(seconds=i)).isoformat()},{i},{i * 2}" for i in range(5000)]
    path.write_text("ts,a,b\n" + "\n".join(rows) + "\n")
    readings, rejections, batches = read_all(path, FileSpec(), batch_size=1000)
    assert len(readings) == 10_000 and rejections == []
    assert len(batches) == 10  # 1000 readings per batch = 500 rows of 2 values
    assert all(len(b.readings) <= 1000 for b in batches)
    progress = [b.bytes_done for b in batches]
    assert progress == sorted(progress) and progress[-1] == path.stat().st_size
    assert [b.rows_done for b in batches][-1] == 5000


def test_long_parquet_with_tag_map(tmp_path):
    path = tmp_path / "long.parquet"
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:01", "2024-01-01 00:02"]),
            "tag": ["FT-1", "TT-1", "FT-1"],
            "value": [1.0, 2.0, float("nan")],
        }
    )
    frame.to_parquet(path)
    spec = FileSpec(layout="long", column_map={"FT-1": "pump.flow"}, timezone="America/New_York")
    readings, rejections, _ = read_all(path, spec)
    assert [(r.sensor, r.value) for r in readings] == [("pump.flow", 1.0), ("TT-1", 2.0)]
    assert readings[0].ts == datetime(2024, 1, 1, 5, 0, tzinfo=UTC)
    assert [r.index for r in rejections] == [2] and "empty" in rejections[0].error


def test_wide_parquet_streams_row_batches(tmp_path):
    path = tmp_path / "wide.parquet"
    n = 3000
    frame = pd.DataFrame(
        {"ts": pd.date_range("2024-01-01", periods=n, freq="s", tz="UTC"), "a": np.arange(n, dtype=float)}
    )
    frame.to_parquet(path, row_group_size=1000)
    readings, _, batches = read_all(path, FileSpec(), batch_size=700)
    assert len(readings) == n and len(batches) >= 5
    assert readings[-1].ts == datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=n - 1)


def test_npz_waveform_timestamps_follow_the_sampling_rate(tmp_path):
    path = tmp_path / "wave.npz"
    np.savez(path, DE=np.arange(10, dtype=float).reshape(-1, 1), FE=np.ones((10, 1)))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    spec = FileSpec(layout="npz", sampling_rate_hz=12_000, start=start, column_map={"DE": "brg.de"}, only_mapped=True)
    readings, _, batches = read_all(path, spec, batch_size=4)
    assert [r.sensor for r in readings] == ["brg.de"] * 10
    assert readings[3].ts == start + timedelta(microseconds=250)  # 3 / 12 kHz
    assert batches[-1].bytes_done == batches[-1].bytes_total


def test_npz_without_sampling_rate_is_a_format_error(tmp_path):
    path = tmp_path / "wave.npz"
    np.savez(path, DE=np.zeros(3))
    with pytest.raises(FileFormatError, match="sampling_rate_hz"):
        list(iter_reading_batches(path, FileSpec(layout="npz", start=datetime(2024, 1, 1, tzinfo=UTC))))


def test_sniff_separator():
    assert sniff_separator("a;b;c\n") == ";"
    assert sniff_separator("a\tb\n") == "\t"
    assert sniff_separator("a,b\n") == ","


def shared_data() -> Path:
    return Path(os.environ.get("PHM_DATA_DIR", Path(__file__).resolve().parents[3] / "shared" / "data"))


@pytest.mark.skipif(not (shared_data() / "skab").is_dir(), reason="shared SKAB data not present")
def test_real_skab_file_reads_every_cell():
    path = shared_data() / "skab" / "valve1" / "0.csv"
    rows = sum(1 for _ in path.open()) - 1
    readings, rejections, _ = read_all(path, FileSpec(only_mapped=True, column_map={"Current": "pump.current", "Pressure": "pump.pressure"}))
    assert rejections == []
    assert len(readings) == 2 * rows


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"layout": "sideways"}, "layout 'sideways' is not one of"),
        ({"decimal": ";"}, "decimal must be '.' or ','"),
        ({"separator": ";;"}, "separator must be one character"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"layout": "npz", "sampling_rate_hz": 0}, "sampling_rate_hz must be a positive number"),
        ({"column_map": ["a", "b"]}, "column_map must be an object"),
        ({"unit_scale": {"P-101.VIB": "x"}}, "unit_scale['P-101.VIB'] must be a number"),
    ],
)
def test_invalid_spec_values_are_refused_with_the_field_named(config, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        FileSpec.from_dict(config)
