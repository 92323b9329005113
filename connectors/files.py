"""Historian files: CSV and Parquet exports (wide or long form) and NumPy ``.npz`` waveforms.

``iter_reading_batches(path, spec)`` streams a file as :class:`FileBatch` es of readings with
per-row rejections and byte progress, in constant memory (CSV through the ``csv`` module, Parquet
through ``pyarrow`` row batches, ``.npz`` one array slice at a time).

Structural problems (missing columns, unknown format, a configuration that cannot work) raise
:class:`FileFormatError` naming the file, row and column. Problems of one row or cell (a bad
timestamp, a non-numeric value, a row with the wrong number of fields) become
:class:`~connectors.records.Rejection` s whose ``index`` is the 0-based data row in the file;
they never abort the file.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from connectors.records import Quality, Reading, Rejection

Layout = Literal["wide", "long", "npz"]

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
NPZ_SUFFIXES = (".npz",)
SNIFFED_SEPARATORS = (",", ";", "\t")
# Cell texts that mean "no value here" in historian exports: a gap, not an error.
MISSING_TEXTS = frozenset({"", "nan", "NaN", "NAN", "NA", "N/A", "n/a", "null", "NULL", "None"})
# Timestamp formats for numeric epoch columns (not strftime patterns).
EPOCH_FORMATS = {"epoch_s": "s", "epoch_ms": "ms", "epoch_us": "us", "epoch_ns": "ns"}
# Storage is unique on (sensor, ts) at microsecond resolution: faster sampling would collide.
MAX_NPZ_SAMPLING_RATE_HZ = 1_000_000.0


class FileFormatError(ValueError):
    """The file (or the spec for it) cannot be read at all. Says where: file, row, column."""

    def __init__(self, message: str, *, file: str | Path, row: int | None = None, column: str | None = None):
        self.file = str(file)
        self.row = row
        self.column = column
        where = [f"file {self.file}"]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{message} ({', '.join(where)})")


class FileTooLarge(FileFormatError):
    """The file's data, once decoded, is over the caller's limit (checked before loading it)."""


def decoded_bytes(path: str | Path) -> int:
    """How many bytes the file's data occupies once decoded, read from headers without loading
    the data: for ``.npz`` the arrays' shapes x item sizes (and the zip members' stated sizes,
    whichever is larger), for Parquet the row groups' uncompressed sizes, for text the file size.
    A few hundred KB of compressed zeros can declare hundreds of MB of arrays."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in NPZ_SUFFIXES:
        return _npz_decoded_bytes(path)
    if suffix in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        try:
            metadata = pq.ParquetFile(path).metadata
        except Exception as exc:  # pyarrow raises ArrowInvalid/OSError variants for non-Parquet bytes
            raise FileFormatError(f"not a readable Parquet file: {exc}", file=path) from exc
        return sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    return path.stat().st_size


def _npz_decoded_bytes(path: Path) -> int:
    import zipfile

    from numpy.lib import format as npy_format

    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                size = info.file_size
                if info.filename.endswith(".npy"):
                    with archive.open(info) as member:
                        version = npy_format.read_magic(member)
                        if version == (1, 0):
                            shape, _, dtype = npy_format.read_array_header_1_0(member)
                        else:
                            shape, _, dtype = npy_format.read_array_header_2_0(member)
                    size = max(size, math.prod(shape) * dtype.itemsize)
                total += size
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise FileFormatError(f"not a readable .npz archive: {exc}", file=path) from exc
    return total


def check_decoded_size(path: str | Path, limit: int | None) -> int:
    """:func:`decoded_bytes`, raising FileTooLarge above ``limit`` (None: no limit)."""
    size = decoded_bytes(path)
    if limit is not None and size > limit:
        raise FileTooLarge(f"the data decodes to {size:,} bytes; the limit is {limit:,}", file=path)
    return size


@dataclass(frozen=True)
class FileSpec:
    """How to read one historian file. Defaults fit a plain UTC wide CSV."""

    layout: Layout = "wide"
    timestamp_column: str | None = None  # default: first column (wide) / "ts" (long)
    tag_column: str = "tag"  # long form
    value_column: str = "value"  # long form
    column_map: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # source column/npz key -> sensor tag
    only_mapped: bool = False  # wide/long/npz: ignore columns (tags, keys) not in column_map
    timezone: str = "UTC"  # zone for naive timestamps
    separator: str | None = None  # None = sniff (',' ';' '\t')
    decimal: str = "."  # ',' for decimal commas
    timestamp_format: str | None = None  # strftime pattern, "ISO8601", or epoch_s/epoch_ms/epoch_us/epoch_ns
    unit_scale: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))  # tag -> factor
    sampling_rate_hz: float | None = None  # npz
    start: datetime | None = None  # npz: time of the first sample

    def __post_init__(self) -> None:
        # Checked here, not when the file is read: a bad spec fails the upload request (or the
        # connector definition), not a background job half-way through a file.
        if self.layout not in ("wide", "long", "npz"):
            raise ValueError(f"layout {self.layout!r} is not one of 'wide', 'long', 'npz'")
        if self.decimal not in (".", ","):
            raise ValueError(f"decimal must be '.' or ',', got {self.decimal!r}")
        if self.separator is not None and (not isinstance(self.separator, str) or len(self.separator) != 1):
            raise ValueError(f"separator must be one character (or null to detect it), got {self.separator!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"unknown time zone {self.timezone!r} (use an IANA name such as 'Europe/Berlin' or 'UTC')") from None
        if self.sampling_rate_hz is not None and not (isinstance(self.sampling_rate_hz, (int, float)) and self.sampling_rate_hz > 0):
            raise ValueError(f"sampling_rate_hz must be a positive number, got {self.sampling_rate_hz!r}")
        for name in ("column_map", "unit_scale"):
            if not isinstance(getattr(self, name), Mapping):
                raise ValueError(f"{name} must be an object of name: value, got {type(getattr(self, name)).__name__}")
        for tag, factor in self.unit_scale.items():
            if isinstance(factor, bool) or not isinstance(factor, (int, float)):
                raise ValueError(f"unit_scale[{tag!r}] must be a number, got {factor!r}")

    def tag_for(self, source_name: str) -> str:
        return self.column_map.get(source_name, source_name)

    def scale_for(self, tag: str) -> float:
        return float(self.unit_scale.get(tag, 1.0))

    def accepts(self, source_name: str) -> bool:
        return not self.only_mapped or source_name in self.column_map

    @classmethod
    def from_dict(cls, config: Mapping) -> FileSpec:
        """Build from JSON-like config (connector definitions, API payloads); ``start`` may be ISO text."""
        known = set(cls.__dataclass_fields__)
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"unknown file spec keys: {sorted(unknown)}; known: {sorted(known)}")
        values = dict(config)
        if isinstance(values.get("start"), str):
            values["start"] = datetime.fromisoformat(values["start"])
        return cls(**values)


@dataclass
class FileBatch:
    """One slice of a file: its readings, the rejected rows/cells, and progress so far."""

    readings: list[Reading]
    rejections: list[Rejection]  # index = 0-based data row in the file; error says column and value
    rows_done: int
    bytes_done: int
    bytes_total: int


def iter_reading_batches(
    path: str | Path, spec: FileSpec, *, batch_size: int = 50_000, max_decoded_bytes: int | None = None
) -> Iterator[FileBatch]:
    """Stream ``path`` as batches of at most about ``batch_size`` readings (wide rows are cut so
    that rows x columns stays near ``batch_size``). The format comes from the suffix
    (.csv/.tsv/.txt, .parquet/.pq, .npz); ``spec.layout`` says how the table is shaped.
    ``max_decoded_bytes`` refuses (FileTooLarge) a file whose data decodes to more, before any of
    it is loaded (see :func:`decoded_bytes`)."""
    path = Path(path)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not path.is_file():
        raise FileFormatError("file does not exist", file=path)
    _validate_spec(spec, path)
    check_decoded_size(path, max_decoded_bytes)
    suffix = path.suffix.lower()
    if suffix in NPZ_SUFFIXES or spec.layout == "npz":
        if suffix not in NPZ_SUFFIXES or spec.layout != "npz":
            raise FileFormatError(f"layout {spec.layout!r} does not fit a {suffix or 'suffix-less'} file", file=path)
        yield from _iter_npz(path, spec, batch_size)
    elif suffix in CSV_SUFFIXES:
        yield from _iter_csv(path, spec, batch_size)
    elif suffix in PARQUET_SUFFIXES:
        yield from _iter_parquet(path, spec, batch_size)
    else:
        raise FileFormatError(
            f"unknown file type {suffix!r}; expected one of {CSV_SUFFIXES + PARQUET_SUFFIXES + NPZ_SUFFIXES}", file=path
        )


def _validate_spec(spec: FileSpec, path: Path) -> None:
    if spec.layout not in ("wide", "long", "npz"):
        raise FileFormatError(f"unknown layout {spec.layout!r}", file=path)
    try:
        ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise FileFormatError(f"unknown time zone {spec.timezone!r}", file=path) from exc
    if spec.decimal not in (".", ","):
        raise FileFormatError(f"decimal must be '.' or ',', got {spec.decimal!r}", file=path)
    if spec.separator is not None and spec.separator == spec.decimal:
        raise FileFormatError(f"separator and decimal are both {spec.decimal!r}", file=path)
    for tag, factor in spec.unit_scale.items():
        if not math.isfinite(float(factor)):
            raise FileFormatError(f"unit_scale for {tag!r} is not finite: {factor!r}", file=path)


# --------------------------------------------------------------------------------------------
# Tables (CSV and Parquet share the conversion from a DataFrame slice to readings)


class _TableConverter:
    """Turns DataFrame slices of one table into readings, given its header (checked once)."""

    def __init__(self, path: Path, spec: FileSpec, header: Sequence[str]):
        self.path = path
        self.spec = spec
        self.header = list(header)
        if len(set(self.header)) != len(self.header):
            duplicated = sorted({name for name in self.header if self.header.count(name) > 1})
            raise FileFormatError(f"duplicate column names {duplicated}", file=path, row=0)
        if spec.layout == "wide":
            if not self.header:
                raise FileFormatError("no header row", file=path, row=0)
            self.ts_column = spec.timestamp_column or self.header[0]
            self._require(self.ts_column)
            self.value_columns = [c for c in self.header if c != self.ts_column and spec.accepts(c)]
            if spec.only_mapped:
                for column in spec.column_map:
                    self._require(column)
            if not self.value_columns:
                raise FileFormatError("no value columns besides the timestamp", file=path, row=0)
        else:
            self.ts_column = spec.timestamp_column or "ts"
            for column in (self.ts_column, spec.tag_column, spec.value_column):
                self._require(column)
            self.value_columns = [spec.value_column]

    def _require(self, column: str) -> None:
        if column not in self.header:
            raise FileFormatError(f"missing column; the header has {self.header}", file=self.path, row=0, column=column)

    @property
    def readings_per_row(self) -> int:
        return len(self.value_columns)

    def convert(self, frame: pd.DataFrame, first_row: int) -> tuple[list[Reading], list[Rejection]]:
        rejections: list[Rejection] = []
        timestamps, ts_ok = self._timestamps(frame[self.ts_column], first_row, rejections)
        if self.spec.layout == "wide":
            readings = self._wide(frame, timestamps, ts_ok, first_row, rejections)
        else:
            readings = self._long(frame, timestamps, ts_ok, first_row, rejections)
        rejections.sort(key=lambda r: r.index)
        return readings, rejections

    # -- timestamps ---------------------------------------------------------------------------

    def _timestamps(
        self, raw: pd.Series, first_row: int, rejections: list[Rejection]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Parse to UTC; returns (python datetimes, ok mask). Bad cells are rejections."""
        raw = raw.reset_index(drop=True)
        missing = _missing_mask(raw)
        parsed = self._parse_timestamps(raw.where(~missing, None))
        ok = ~pd.isna(parsed).to_numpy()
        for position in np.flatnonzero(~ok):
            value = raw.iloc[position]
            reason = "is empty" if missing.iloc[position] else self._timestamp_problem(value)
            rejections.append(
                Rejection(first_row + int(position), f"column {self.ts_column!r}: timestamp {_show(value)} {reason}")
            )
        # Replace NaT so that to_pydatetime works; those rows are masked out anyway.
        filled = parsed.where(ok, pd.Timestamp("1970-01-01", tz="UTC"))
        return pd.DatetimeIndex(filled).to_pydatetime(), ok

    def _timestamp_problem(self, value: object) -> str:
        fmt = self.spec.timestamp_format
        if fmt is None:
            return "cannot be parsed (give timestamp_format to fix the format)"
        return f"does not match format {fmt!r} or is not a valid time in {self.spec.timezone}"

    def _parse_timestamps(self, raw: pd.Series) -> pd.Series:
        spec = self.spec
        fmt = spec.timestamp_format
        if fmt in EPOCH_FORMATS:
            numbers = pd.to_numeric(raw, errors="coerce")
            return pd.to_datetime(numbers, unit=EPOCH_FORMATS[fmt], utc=True, errors="coerce")
        if pd.api.types.is_datetime64_any_dtype(raw.dtype):
            parsed = raw
        elif pd.api.types.is_numeric_dtype(raw.dtype):
            raise FileFormatError(
                "timestamp column is numeric; set timestamp_format to epoch_s/epoch_ms/epoch_us/epoch_ns",
                file=self.path,
                column=self.ts_column,
            )
        else:
            text = raw.astype("string").str.strip()
            parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=False)
            if parsed.dtype == object:
                # Mixed offsets (e.g. DST changes written as +01:00/+02:00) give objects: go via UTC.
                parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
        if getattr(parsed.dt, "tz", None) is None:
            # Ambiguous/nonexistent local times (DST switches) become NaT -> per-row rejections.
            parsed = parsed.dt.tz_localize(spec.timezone, ambiguous="NaT", nonexistent="NaT")
        return parsed.dt.tz_convert("UTC")

    # -- values -------------------------------------------------------------------------------

    def _numbers(self, raw: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values, present mask, bad mask): missing cells are gaps, unparsable cells are bad."""
        raw = raw.reset_index(drop=True)
        if pd.api.types.is_bool_dtype(raw.dtype):
            raw = raw.astype("float64")
        if pd.api.types.is_numeric_dtype(raw.dtype):
            values = raw.to_numpy(dtype="float64", na_value=np.nan)
            present = ~np.isnan(values)
            return values, present, np.zeros(len(values), dtype=bool)
        missing = _missing_mask(raw).to_numpy()
        text = raw.astype("string").str.strip()
        if self.spec.decimal == ",":
            text = text.str.replace(",", ".", regex=False)
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        bad = np.isnan(values) & ~missing
        return values, ~missing & ~bad, bad

    def _wide(
        self,
        frame: pd.DataFrame,
        timestamps: np.ndarray,
        ts_ok: np.ndarray,
        first_row: int,
        rejections: list[Rejection],
    ) -> list[Reading]:
        readings: list[Reading] = []
        for column in self.value_columns:
            raw = frame[column].reset_index(drop=True)
            values, present, bad = self._numbers(raw)
            for position in np.flatnonzero(bad & ts_ok):
                rejections.append(
                    Rejection(first_row + int(position), f"column {column!r}: value {_show(raw.iloc[position])} is not a number")
                )
            tag = self.spec.tag_for(column)
            scale = self.spec.scale_for(tag)
            keep = np.flatnonzero(present & ts_ok)
            scaled = values[keep] * scale
            readings.extend(
                Reading(tag, ts, value, Quality.GOOD)
                for ts, value in zip(timestamps[keep].tolist(), scaled.tolist(), strict=True)
            )
        return readings

    def _long(
        self,
        frame: pd.DataFrame,
        timestamps: np.ndarray,
        ts_ok: np.ndarray,
        first_row: int,
        rejections: list[Rejection],
    ) -> list[Reading]:
        spec = self.spec
        raw_tags = frame[spec.tag_column].reset_index(drop=True)
        raw_values = frame[spec.value_column].reset_index(drop=True)
        tag_missing = _missing_mask(raw_tags).to_numpy()
        values, present, bad = self._numbers(raw_values)
        readings: list[Reading] = []
        for position in range(len(frame)):
            if not ts_ok[position]:
                continue
            row = first_row + position
            if tag_missing[position]:
                rejections.append(Rejection(row, f"column {spec.tag_column!r}: tag is empty"))
                continue
            source_tag = str(raw_tags.iloc[position]).strip()
            if not spec.accepts(source_tag):
                continue
            if bad[position]:
                rejections.append(
                    Rejection(row, f"column {spec.value_column!r}: value {_show(raw_values.iloc[position])} is not a number")
                )
                continue
            if not present[position]:
                rejections.append(Rejection(row, f"column {spec.value_column!r}: value is empty"))
                continue
            tag = spec.tag_for(source_tag)
            readings.append(Reading(tag, timestamps[position], float(values[position]) * spec.scale_for(tag), Quality.GOOD))
        return readings


def _missing_mask(raw: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(raw.dtype) or pd.api.types.is_numeric_dtype(raw.dtype):
        return raw.isna().reset_index(drop=True)
    stripped = raw.astype("string").str.strip()
    return (stripped.isna() | stripped.isin(MISSING_TEXTS)).fillna(True).astype(bool).reset_index(drop=True)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


# --------------------------------------------------------------------------------------------
# CSV


def sniff_separator(header_line: str) -> str:
    """The most frequent of ``,`` ``;`` TAB in the header line (SKAB uses ``;``)."""
    counts = {sep: header_line.count(sep) for sep in SNIFFED_SEPARATORS}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else ","


def _iter_csv(path: Path, spec: FileSpec, batch_size: int) -> Iterator[FileBatch]:
    bytes_total = path.stat().st_size
    with path.open("rb") as binary:
        # utf-8-sig drops the byte-order mark that spreadsheet exports put before the header.
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        try:
            header_line = text.readline()
        except UnicodeDecodeError as exc:
            raise FileFormatError(f"not UTF-8 text: {exc.reason}", file=path, row=0) from exc
        if not header_line.strip():
            raise FileFormatError("empty file or empty header line", file=path, row=0)
        separator = spec.separator or sniff_separator(header_line)
        if separator == spec.decimal:
            raise FileFormatError(
                f"separator sniffed as {separator!r}, same as the decimal mark; give spec.separator", file=path, row=0
            )
        header = [name.strip() for name in next(csv.reader([header_line], delimiter=separator))]
        converter = _TableConverter(path, spec, header)
        rows_per_batch = max(1, batch_size // converter.readings_per_row)
        width = len(header)
        reader = csv.reader(text, delimiter=separator)
        first_row = 0
        row_number = 0
        while True:
            block: list[list[str]] = []
            block_rows: list[int] = []
            shape_rejections: list[Rejection] = []
            try:
                for fields in reader:
                    if not fields or (len(fields) == 1 and not fields[0].strip()):
                        row_number += 1  # a blank line still counts as a row of the file
                        continue
                    if len(fields) != width:
                        shape_rejections.append(
                            Rejection(
                                row_number,
                                f"line {reader.line_num + 1}: {len(fields)} fields, the header has {width}",
                            )
                        )
                    else:
                        block.append(fields)
                        block_rows.append(row_number)
                    row_number += 1
                    if len(block) + len(shape_rejections) >= rows_per_batch:
                        break
            except UnicodeDecodeError as exc:
                raise FileFormatError(f"not UTF-8 text: {exc.reason}", file=path, row=row_number) from exc
            except csv.Error as exc:
                raise FileFormatError(f"CSV syntax error: {exc}", file=path, row=row_number) from exc
            if not block and not shape_rejections:
                if row_number > first_row:  # only blank lines were left: report the progress
                    yield FileBatch([], [], row_number, bytes_total, bytes_total)
                return
            frame = pd.DataFrame(block, columns=header, dtype=object)
            readings, rejections = converter.convert(frame, 0)
            # convert() indexes rows by block position; map them back to file rows.
            rejections = [Rejection(block_rows[r.index], r.error) for r in rejections] + shape_rejections
            rejections.sort(key=lambda r: r.index)
            done = binary.tell()  # read-ahead makes this approximate until the end
            at_end = done >= bytes_total
            yield FileBatch(readings, rejections, row_number, bytes_total if at_end else min(done, bytes_total), bytes_total)
            first_row = row_number


# --------------------------------------------------------------------------------------------
# Parquet


def _iter_parquet(path: Path, spec: FileSpec, batch_size: int) -> Iterator[FileBatch]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError variants for non-Parquet bytes
        raise FileFormatError(f"not a readable Parquet file: {exc}", file=path) from exc
    header = parquet.schema_arrow.names
    converter = _TableConverter(path, spec, header)
    needed = [converter.ts_column, *converter.value_columns]
    if spec.layout == "long":
        needed = [converter.ts_column, spec.tag_column, spec.value_column]
    bytes_total = path.stat().st_size
    rows_total = max(parquet.metadata.num_rows, 1)
    rows_per_batch = max(1, batch_size // converter.readings_per_row)
    first_row = 0
    for record_batch in parquet.iter_batches(batch_size=rows_per_batch, columns=needed):
        frame = record_batch.to_pandas()
        readings, rejections = converter.convert(frame, first_row)
        first_row += len(frame)
        yield FileBatch(readings, rejections, first_row, int(bytes_total * first_row / rows_total), bytes_total)


# --------------------------------------------------------------------------------------------
# NumPy waveforms


def _iter_npz(path: Path, spec: FileSpec, batch_size: int) -> Iterator[FileBatch]:
    rate = spec.sampling_rate_hz
    if rate is None or not math.isfinite(rate) or rate <= 0:
        raise FileFormatError(f"npz needs a positive sampling_rate_hz, got {rate!r}", file=path)
    if rate > MAX_NPZ_SAMPLING_RATE_HZ:
        raise FileFormatError(
            f"sampling_rate_hz {rate} exceeds {MAX_NPZ_SAMPLING_RATE_HZ:.0f}: samples would share a microsecond",
            file=path,
        )
    if spec.start is None:
        raise FileFormatError("npz needs spec.start, the time of the first sample", file=path)
    start = spec.start if spec.start.tzinfo else spec.start.replace(tzinfo=ZoneInfo(spec.timezone))
    start = start.astimezone(timezone.utc)
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # zipfile.BadZipFile, ValueError for pickled object arrays, ...
        raise FileFormatError(f"not a readable .npz archive: {exc}", file=path) from exc
    with archive:
        keys = [key for key in archive.files if spec.accepts(key)]
        if spec.only_mapped:
            for key in spec.column_map:
                if key not in archive.files:
                    raise FileFormatError(f"missing array; the archive has {archive.files}", file=path, column=key)
        if not keys:
            raise FileFormatError("no arrays to read", file=path)
        channels = [(key, _npz_channels(path, key, archive[key])) for key in keys]
        total = sum(array.size for _, array in channels)
        bytes_total = path.stat().st_size
        step_us = 1e6 / rate
        done = 0
        for key, array in channels:
            n_samples, n_channels = array.shape
            tags = [spec.tag_for(key)] if n_channels == 1 else [f"{spec.tag_for(key)}.{j}" for j in range(n_channels)]
            rows_per_batch = max(1, batch_size // n_channels)
            for lo in range(0, n_samples, rows_per_batch):
                hi = min(lo + rows_per_batch, n_samples)
                readings, rejections = _npz_slice(array[lo:hi], lo, tags, start, step_us, spec, key)
                done += (hi - lo) * n_channels
                yield FileBatch(readings, rejections, done, int(bytes_total * done / max(total, 1)), bytes_total)


def _npz_channels(path: Path, key: str, array: np.ndarray) -> np.ndarray:
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise FileFormatError(f"array dtype {array.dtype} is not real numbers", file=path, column=key)
    if array.ndim == 1:
        return array.reshape(-1, 1)
    if array.ndim == 2:
        return array
    raise FileFormatError(f"array has shape {array.shape}; expected (n,) or (n, channels)", file=path, column=key)


def _npz_slice(
    block: np.ndarray, first_sample: int, tags: list[str], start: datetime, step_us: float, spec: FileSpec, key: str
) -> tuple[list[Reading], list[Rejection]]:
    # Offsets from the start in whole microseconds, rounded once, so samples never drift or collide.
    offsets = np.rint((np.arange(first_sample, first_sample + len(block)) * step_us)).astype(np.int64).tolist()
    stamps = [start + timedelta(microseconds=offset) for offset in offsets]
    readings: list[Reading] = []
    rejections: list[Rejection] = []
    for channel, tag in enumerate(tags):
        values = block[:, channel].astype("float64") * spec.scale_for(tag)
        finite = np.isfinite(values)
        for position in np.flatnonzero(~finite):
            rejections.append(
                Rejection(first_sample + int(position), f"array {key!r} channel {channel}: value {values[position]!r} is not finite")
            )
        readings.extend(
            Reading(tag, stamps[i], value, Quality.GOOD)
            for i, value in zip(np.flatnonzero(finite).tolist(), values[finite].tolist(), strict=True)
        )
    return readings, rejections
