"""Vibration capture files: one time waveform per file, kept whole (a capture), not split into
readings.

A file is a capture file when its name ends in ``.capture.npz`` or ``.capture.csv``; the historian
folder connector and the historian-file upload route those here, every other ``.npz``/CSV stays on
the readings path (one reading per sample, :mod:`connectors.files`).

- ``.npz``: the samples in the array named ``samples`` (or the name given, e.g. ``DE`` for CWRU
  files), 1-D or ``(n, 1)``; metadata as 0-d arrays beside it: ``sample_rate_hz``, ``captured_at``
  (ISO 8601 with zone), ``equipment``, ``point``, ``unit``, ``speed_rpm``, ``label``.
- CSV: one column of samples (a header line is optional), or two columns ``time,value`` with time in
  seconds from the start (the sample rate follows from the spacing, which must be uniform). Metadata
  may come from ``# key: value`` lines at the top.

Metadata given by the caller (a form, a connector's config) fills what the file leaves out; the
file's own value wins where both give one, except that a caller may name the array.
Nothing here checks limits of the application (rates, durations): the ingestion service does,
so every entry point applies the same rules.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from connectors.files import FileFormatError, FileTooLarge, _npz_decoded_bytes, check_decoded_size

CAPTURE_SUFFIXES = (".capture.npz", ".capture.csv")
METADATA_KEYS = ("equipment", "point", "captured_at", "sample_rate_hz", "unit", "speed_rpm", "label")
#: Spacing of a time column may wander this much (relative) before the file is refused.
TIME_JITTER = 0.01


@dataclass(frozen=True)
class WaveformRecord:
    """One capture as connectors hand it over. ``captured_at`` is time-zone aware (or None when
    neither file nor caller gave it; the service refuses that with a clear error)."""

    equipment: str
    point: str
    captured_at: datetime | None
    sample_rate_hz: float
    samples: np.ndarray = field(repr=False)
    unit: str = "g"
    speed_rpm: float | None = None
    label: str = ""
    origin: str = ""


def is_capture_file(name: str | Path) -> bool:
    return str(name).lower().endswith(CAPTURE_SUFFIXES)


def _text(value: object) -> str:
    if isinstance(value, np.ndarray):
        value = value.item() if value.ndim == 0 or value.size == 1 else value
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


def _number(value: object, *, key: str, file: str) -> float | None:
    text = _text(value)
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        raise FileFormatError(f"{key} must be a number, got {text[:40]!r}", file=file, column=key) from None
    if not math.isfinite(number):
        raise FileFormatError(f"{key} must be finite, got {text[:40]!r}", file=file, column=key)
    return number


def _time(value: object, *, file: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    text = _text(value)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FileFormatError(f"captured_at must be ISO 8601 with a time zone, got {text[:40]!r}", file=file, column="captured_at") from None
    if moment.tzinfo is None:
        raise FileFormatError(f"captured_at {text!r} has no time zone", file=file, column="captured_at")
    return moment


def _record(samples: np.ndarray, metadata: Mapping[str, object], *, file: str) -> WaveformRecord:
    rate = _number(metadata.get("sample_rate_hz", ""), key="sample_rate_hz", file=file)
    if rate is None:
        raise FileFormatError("sample_rate_hz is not given (in the file or by the caller)", file=file, column="sample_rate_hz")
    speed = _number(metadata.get("speed_rpm", ""), key="speed_rpm", file=file)
    return WaveformRecord(
        equipment=_text(metadata.get("equipment", "")), point=_text(metadata.get("point", "")),
        captured_at=_time(metadata.get("captured_at"), file=file), sample_rate_hz=rate,
        samples=samples, unit=_text(metadata.get("unit", "")) or "g", speed_rpm=speed,
        label=_text(metadata.get("label", "")), origin=file,
    )


def _merged(file_metadata: Mapping[str, object], defaults: Mapping[str, object] | None) -> dict[str, object]:
    merged = {k: v for k, v in (defaults or {}).items() if v not in (None, "")}
    merged.update({k: v for k, v in file_metadata.items() if _text(v) != ""})
    return merged


def read_capture_npz(source: str | Path | io.BytesIO, *, name: str, array: str | None = None,
                     defaults: Mapping[str, object] | None = None, max_decoded_bytes: int | None = None) -> WaveformRecord:
    """The capture in an ``.npz`` archive (never unpickled; its declared size checked before loading)."""
    if max_decoded_bytes is not None:
        # A few hundred KB of compressed zeros can declare hundreds of MB: read the headers first.
        declared = _npz_decoded_bytes(source)  # type: ignore[arg-type]  # zipfile reads paths and file objects alike
        if declared > max_decoded_bytes:
            raise FileTooLarge(f"the data decodes to {declared:,} bytes; the limit is {max_decoded_bytes:,}", file=name)
        if hasattr(source, "seek"):
            source.seek(0)
    try:
        archive = np.load(source, allow_pickle=False)
    except Exception as exc:  # zipfile/ValueError/OSError variants for bytes that are no npz
        raise FileFormatError(f"not a readable .npz archive: {exc}", file=name) from exc
    with archive:
        keys = list(archive.files)
        wanted = array or "samples"
        if wanted not in keys:
            raise FileFormatError(f"no array {wanted!r} in the archive (it has {', '.join(keys) or 'none'}); name the samples array", file=name)
        try:
            samples = archive[wanted]
            metadata = {key: archive[key] for key in METADATA_KEYS if key in keys}
        except ValueError as exc:  # object arrays need pickle: refused
            raise FileFormatError(f"cannot read the archive without unpickling: {exc}", file=name) from exc
    if samples.ndim == 2 and 1 in samples.shape:
        samples = samples.ravel()
    if samples.ndim != 1:
        raise FileFormatError(f"array {wanted!r} must be 1-D (or n x 1), got shape {samples.shape}", file=name, column=wanted)
    if not np.issubdtype(samples.dtype, np.number) or np.issubdtype(samples.dtype, np.complexfloating):
        raise FileFormatError(f"array {wanted!r} must hold real numbers, got {samples.dtype}", file=name, column=wanted)
    return _record(samples.astype(np.float64, copy=False), _merged(metadata, defaults), file=name)


def read_capture_csv(text: str, *, name: str, defaults: Mapping[str, object] | None = None) -> WaveformRecord:
    """The capture in CSV text: one column of samples, or ``time,value`` (seconds)."""
    metadata: dict[str, object] = {}
    lines = text.splitlines()
    body_start = 0
    for body_start, line in enumerate(lines):
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        key, sep, value = stripped.lstrip("#").partition(":")
        if sep and key.strip() in METADATA_KEYS:
            metadata[key.strip()] = value.strip()
    else:
        body_start = len(lines)
    rows = [row for row in csv.reader(lines[body_start:]) if row and any(cell.strip() for cell in row)]
    if not rows:
        raise FileFormatError("no samples", file=name)
    header = None
    try:
        [float(cell) for cell in rows[0]]
    except ValueError:
        header, rows = rows[0], rows[1:]
    width = len(header) if header else len(rows[0]) if rows else 0
    if width not in (1, 2):
        raise FileFormatError(f"expected one column of samples or two (time,value), got {width}", file=name, row=0)
    values = np.empty((len(rows), width))
    for index, row in enumerate(rows):
        if len(row) != width:
            raise FileFormatError(f"expected {width} fields, got {len(row)}", file=name, row=index + 1)
        for column, cell in enumerate(row):
            try:
                values[index, column] = float(cell)
            except ValueError:
                label = header[column] if header else f"column {column + 1}"
                raise FileFormatError(f"not a number: {cell[:40]!r}", file=name, row=index + 1, column=label) from None
    if width == 2:
        spacing = np.diff(values[:, 0])
        if len(spacing) < 1 or not (spacing > 0).all():
            raise FileFormatError("time column must increase", file=name, column=header[0] if header else "column 1")
        step = float(np.median(spacing))
        if np.abs(spacing - step).max() > TIME_JITTER * step:
            raise FileFormatError(f"time column is not uniformly spaced (median {step:g} s): a capture needs a fixed rate",
                                  file=name, column=header[0] if header else "column 1")
        metadata.setdefault("sample_rate_hz", 1.0 / step)
    return _record(values[:, -1], _merged(metadata, defaults), file=name)


def read_capture_file(path: str | Path, *, array: str | None = None, defaults: Mapping[str, object] | None = None,
                      max_decoded_bytes: int | None = None) -> WaveformRecord:
    """A capture file on disk (``*.capture.npz`` / ``*.capture.csv``, or any .npz/.csv given directly)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_capture_npz(path, name=path.name, array=array, defaults=defaults, max_decoded_bytes=max_decoded_bytes)
    if suffix == ".csv":
        if max_decoded_bytes is not None:
            check_decoded_size(path, max_decoded_bytes)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise FileFormatError(f"not UTF-8 text: {exc}", file=path.name) from None
        return read_capture_csv(text, name=path.name, defaults=defaults)
    raise FileFormatError(f"a capture file is .npz or .csv, not {suffix or 'no suffix'}", file=path.name)


def with_defaults(record: WaveformRecord, **values) -> WaveformRecord:
    """``record`` with empty fields filled from ``values`` (e.g. the connector's equipment)."""
    return replace(record, **{k: v for k, v in values.items() if v not in (None, "") and getattr(record, k) in (None, "")})
