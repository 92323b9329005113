"""Ingestion of vibration waveform captures: the one door for every entry point (page upload, API,
historian-file upload, watched folder, simulator).

A capture is validated (equipment known, point known or created by name, rate, sample count and
duration within the ``PHM_CAPTURE_*`` limits, finite values, known unit, a time with a zone), then
stored as one row with its samples as a float32 blob. It is idempotent on (point, captured_at): a
capture delivered twice is stored once. A refused capture is quarantined (telemetry
``QuarantinedRecord`` of kind ``capture``, its metadata and a few samples, not the whole waveform)
and the error names the file or client reference and the field.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.dateparse import parse_datetime

from connectors.records import IngestResult, Rejection
from connectors.waveforms import WaveformRecord
from models.vibration import ACCELERATION_TO_M_S2, VELOCITY_UNITS, velocity_rms_mm_s
from phm.assets.models import Equipment, MeasurementPoint
from phm.condition.models import CaptureSource, WaveformCapture, WaveformUnit
from phm.telemetry.models import QuarantinedRecord, RecordKind

POINT_NAME = re.compile(r"^[-a-zA-Z0-9_]{1,64}$")
#: Samples kept in a quarantined capture's payload: enough to see what came, not the whole waveform.
QUARANTINE_SAMPLES = 16


class CaptureRejected(ValueError):
    """A capture that cannot be stored; ``field`` names what is wrong, the text says where and why."""

    def __init__(self, message: str, *, field: str, origin: str = ""):
        self.field = field
        self.origin = origin
        self.message = message
        where = f"{origin}: " if origin else ""
        super().__init__(f"{where}{field}: {message}")


@dataclass(frozen=True)
class CaptureOutcome:
    capture: WaveformCapture
    created: bool  # False: the same (point, captured_at) was already stored


@dataclass(frozen=True)
class CaptureLimits:
    min_rate_hz: float
    max_rate_hz: float
    min_samples: int
    max_samples: int
    min_duration_s: float
    max_duration_s: float

    @classmethod
    def from_settings(cls) -> CaptureLimits:
        return cls(
            settings.PHM_CAPTURE_MIN_RATE_HZ, settings.PHM_CAPTURE_MAX_RATE_HZ, settings.PHM_CAPTURE_MIN_SAMPLES,
            settings.PHM_CAPTURE_MAX_SAMPLES, settings.PHM_CAPTURE_MIN_DURATION_S, settings.PHM_CAPTURE_MAX_DURATION_S,
        )


def _check(record: WaveformRecord, limits: CaptureLimits) -> np.ndarray:
    """The samples as float32, or CaptureRejected naming the first problem."""
    origin = record.origin

    def refuse(field: str, message: str) -> CaptureRejected:
        return CaptureRejected(message, field=field, origin=origin)

    if not record.equipment:
        raise refuse("equipment", "no equipment tag given")
    if not record.point:
        raise refuse("point", "no measurement point given")
    if not POINT_NAME.match(record.point):
        raise refuse("point", f"{record.point[:70]!r} is not a point name (letters, digits, - and _, at most 64)")
    if not isinstance(record.captured_at, datetime):
        raise refuse("captured_at", "no capture time given (ISO 8601 with a time zone)")
    if record.captured_at.tzinfo is None:
        raise refuse("captured_at", f"{record.captured_at.isoformat()} has no time zone")
    if record.unit not in WaveformUnit.values:
        raise refuse("unit", f"{record.unit[:20]!r} is not one of {', '.join(WaveformUnit.values)}")
    rate = record.sample_rate_hz
    if not (isinstance(rate, int | float) and math.isfinite(rate)):
        raise refuse("sample_rate_hz", f"must be a finite number, got {rate!r}")
    if not limits.min_rate_hz <= rate <= limits.max_rate_hz:
        raise refuse("sample_rate_hz", f"{rate:g} Hz is outside {limits.min_rate_hz:g}-{limits.max_rate_hz:g} Hz "
                                       "(PHM_CAPTURE_MIN_RATE_HZ / PHM_CAPTURE_MAX_RATE_HZ)")
    if record.speed_rpm is not None and not (math.isfinite(record.speed_rpm) and 0 < record.speed_rpm <= 100_000):
        raise refuse("speed_rpm", f"must be a positive number of rpm up to 100,000, got {record.speed_rpm!r}")
    if len(record.label) > 64:
        raise refuse("label", f"at most 64 characters, got {len(record.label)}")
    samples = np.asarray(record.samples)
    if samples.ndim != 1:
        raise refuse("samples", f"must be one-dimensional, got shape {samples.shape}")
    n = len(samples)
    if not limits.min_samples <= n <= limits.max_samples:
        raise refuse("samples", f"{n:,} samples is outside {limits.min_samples:,}-{limits.max_samples:,} "
                                "(PHM_CAPTURE_MIN_SAMPLES / PHM_CAPTURE_MAX_SAMPLES)")
    duration = n / rate
    if not limits.min_duration_s <= duration <= limits.max_duration_s:
        raise refuse("samples", f"{duration:g} s at {rate:g} Hz is outside {limits.min_duration_s:g}-{limits.max_duration_s:g} s "
                                "(PHM_CAPTURE_MIN_DURATION_S / PHM_CAPTURE_MAX_DURATION_S)")
    try:
        with np.errstate(over="ignore"):  # values beyond float32 become inf: reported just below
            values = samples.astype("<f4")
    except (TypeError, ValueError) as exc:
        raise refuse("samples", f"not numbers: {exc}") from None
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise refuse("samples", f"{int(bad.sum()):,} samples are NaN, infinite or beyond float32 (first at index {first})")
    return values


def _quarantine(record: WaveformRecord, error: CaptureRejected, *, channel: str, using: str = "default") -> None:
    samples = np.asarray(record.samples).ravel()
    head = [float(v) if np.isfinite(v) else repr(float(v)) for v in samples[:QUARANTINE_SAMPLES].astype(float, copy=False)] \
        if np.issubdtype(samples.dtype, np.number) else []
    payload = {
        "equipment": record.equipment[:100], "point": record.point[:100],
        "captured_at": record.captured_at.isoformat() if isinstance(record.captured_at, datetime) else None,
        "sample_rate_hz": record.sample_rate_hz if isinstance(record.sample_rate_hz, int | float) and math.isfinite(record.sample_rate_hz) else repr(record.sample_rate_hz),
        "unit": record.unit[:20], "speed_rpm": record.speed_rpm if record.speed_rpm is None or math.isfinite(record.speed_rpm) else repr(record.speed_rpm),
        "label": record.label[:64], "origin": record.origin[:300], "n_samples": int(samples.size), "first_samples": head,
    }
    QuarantinedRecord.objects.using(using).create(kind=RecordKind.CAPTURE, channel=channel[:200], payload=payload, error=str(error))


def _velocity_rms(values: np.ndarray, rate: float, unit: str) -> float | None:
    if unit not in ACCELERATION_TO_M_S2 and unit not in VELOCITY_UNITS:
        return None  # displacement: no ISO 10816 velocity severity from it
    high = min(1000.0, rate / 2.56)  # keep the band below the anti-alias roll-off
    return velocity_rms_mm_s(values, rate, unit=unit, band_hz=(10.0, high)) if high > 10.0 else None


def ingest_capture(*, record: WaveformRecord, source: str = CaptureSource.API, channel: str = "api",
                   limits: CaptureLimits | None = None, using: str = "default") -> CaptureOutcome:
    """Validate and store one capture; CaptureRejected (after quarantining it) when it is refused."""
    limits = limits or CaptureLimits.from_settings()
    try:
        values = _check(record, limits)
        equipment = Equipment.objects.using(using).filter(tag=record.equipment).first()
        if equipment is None:
            raise CaptureRejected(f"no equipment with tag {record.equipment[:70]!r}", field="equipment", origin=record.origin)
    except CaptureRejected as exc:
        _quarantine(record, exc, channel=channel, using=using)
        raise
    with transaction.atomic(using=using):
        return _store(record=record, equipment=equipment, values=values, source=source, using=using)


def _store(*, record: WaveformRecord, equipment: Equipment, values: np.ndarray, source: str, using: str) -> CaptureOutcome:
    point, _ = MeasurementPoint.objects.using(using).get_or_create(equipment=equipment, name=record.point)
    existing = WaveformCapture.objects.using(using).filter(point=point, captured_at=record.captured_at).first()
    if existing is not None:
        return CaptureOutcome(existing, created=False)
    capture = WaveformCapture(
        equipment=equipment, point=point, captured_at=record.captured_at, sample_rate_hz=float(record.sample_rate_hz),
        unit=record.unit, n_samples=len(values), samples=WaveformCapture.pack(values), speed_rpm=record.speed_rpm,
        label=record.label, source=source, origin=record.origin[:500],
        velocity_rms_mm_s=_velocity_rms(values, float(record.sample_rate_hz), record.unit),
    )
    try:
        with transaction.atomic(using=using):  # a savepoint: a concurrent twin makes this a duplicate, not an error
            capture.save(using=using)
    except IntegrityError:
        return CaptureOutcome(WaveformCapture.objects.using(using).get(point=point, captured_at=record.captured_at), created=False)
    return CaptureOutcome(capture, created=True)


def ingest_captures(*, records: Sequence[WaveformRecord], source: str, channel: str, using: str = "default") -> IngestResult:
    """Many captures (a connector's batch): each stored, counted as duplicate, or rejected by index
    (and quarantined); one bad capture never stops the others."""
    result = IngestResult()
    limits = CaptureLimits.from_settings()
    for index, record in enumerate(records):
        try:
            outcome = ingest_capture(record=record, source=source, channel=channel, limits=limits, using=using)
        except CaptureRejected as exc:
            result.rejected += 1
            result.rejections.append(Rejection(index, str(exc)))
            continue
        if outcome.created:
            result.accepted += 1
        else:
            result.duplicate += 1
    return result


# --- JSON bodies (API) ----------------------------------------------------------------------------


def _json_samples(body: Mapping, origin: str) -> np.ndarray:
    has_list, has_b64 = "samples" in body, "samples_b64" in body
    if has_list == has_b64:
        raise CaptureRejected("give exactly one of 'samples' (a list of numbers) or 'samples_b64' (base64 float32 little-endian)",
                              field="samples", origin=origin)
    if has_b64:
        raw = body["samples_b64"]
        if not isinstance(raw, str):
            raise CaptureRejected(f"must be a base64 string, got {type(raw).__name__}", field="samples_b64", origin=origin)
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CaptureRejected(f"not valid base64: {exc}", field="samples_b64", origin=origin) from None
        if len(data) % 4:
            raise CaptureRejected(f"{len(data)} bytes is not a whole number of float32 samples", field="samples_b64", origin=origin)
        return np.frombuffer(data, dtype="<f4")
    values = body["samples"]
    if not isinstance(values, list):
        raise CaptureRejected(f"must be a list of numbers, got {type(values).__name__}", field="samples", origin=origin)
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CaptureRejected(f"item {index} is {type(value).__name__} {str(value)[:20]!r}, not a number", field="samples", origin=origin)
    return np.asarray(values, dtype=np.float64)


def record_from_json(body: object, *, origin: str = "api") -> WaveformRecord:
    """A WaveformRecord from an API body ``{equipment, point, captured_at, sample_rate_hz, unit,
    speed_rpm, label, samples | samples_b64}``; CaptureRejected naming the field otherwise."""
    if not isinstance(body, Mapping):
        raise CaptureRejected(f"expected a JSON object, got {type(body).__name__}", field="body", origin=origin)
    origin = str(body.get("origin") or origin)[:300]
    allowed = {"equipment", "point", "captured_at", "sample_rate_hz", "unit", "speed_rpm", "label", "samples", "samples_b64", "origin"}
    unknown = sorted(set(map(str, body)) - allowed)
    if unknown:
        raise CaptureRejected(f"unknown field(s) {', '.join(k[:40] for k in unknown[:5])}; allowed: {', '.join(sorted(allowed))}",
                              field=unknown[0][:40], origin=origin)
    for key in ("equipment", "point", "unit", "label"):
        if key in body and not isinstance(body[key], str):
            raise CaptureRejected(f"must be a string, got {type(body[key]).__name__}", field=key, origin=origin)
    captured_at = body.get("captured_at")
    try:
        moment = parse_datetime(captured_at) if isinstance(captured_at, str) else None
    except ValueError:  # well-formed but impossible, e.g. month 13
        moment = None
    if moment is None:
        raise CaptureRejected(f"must be ISO 8601 with a time zone, got {str(captured_at)[:40]!r}", field="captured_at", origin=origin)
    numbers = {}
    for key in ("sample_rate_hz", "speed_rpm"):
        value = body.get(key)
        if value is None and key == "speed_rpm":
            numbers[key] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CaptureRejected(f"must be a number, got {str(value)[:20]!r}", field=key, origin=origin)
        numbers[key] = float(value)
    return WaveformRecord(
        equipment=body.get("equipment", ""), point=body.get("point", ""), captured_at=moment,
        sample_rate_hz=numbers["sample_rate_hz"], samples=_json_samples(body, origin), unit=body.get("unit") or "g",
        speed_rpm=numbers["speed_rpm"], label=body.get("label", ""), origin=origin,
    )


def with_equipment(record: WaveformRecord, tag: str) -> WaveformRecord:
    """``record`` for equipment ``tag`` (a page upload belongs to the page's machine)."""
    from dataclasses import replace

    return replace(record, equipment=tag)


def reject_unparsed(*, error: CaptureRejected, channel: str, metadata: Mapping[str, object] | None = None, using: str = "default") -> None:
    """Quarantine a capture that failed before it became a record (an unreadable file, a bad body)."""
    payload = {str(k)[:40]: str(v)[:200] for k, v in (metadata or {}).items()}
    payload["origin"] = error.origin[:300]
    QuarantinedRecord.objects.using(using).create(kind=RecordKind.CAPTURE, channel=channel[:200], payload=payload, error=str(error))


# --- files (page upload, API multipart) ---------------------------------------------------------


def record_from_file(*, name: str, content: bytes, fields: Mapping[str, object]) -> WaveformRecord:
    """A WaveformRecord from an uploaded ``.npz`` or CSV file plus form fields (equipment, point,
    captured_at, sample_rate_hz, unit, speed_rpm, label, and ``array``: the npz array's name).
    Size checked against ``PHM_UPLOAD_MAX_CAPTURE_BYTES`` (file and what an npz decodes to)."""
    import io

    from connectors.files import FileFormatError
    from connectors.waveforms import read_capture_csv, read_capture_npz
    from phm.uploads import check_upload_size, upload_limit

    check_upload_size(kind="capture", name=name, size=len(content))
    defaults = {k: v for k, v in fields.items() if k != "array"}
    array = str(fields.get("array") or "") or None
    lowered = name.lower()
    try:
        if lowered.endswith(".npz"):
            record = read_capture_npz(io.BytesIO(content), name=name, array=array, defaults=defaults,
                                      max_decoded_bytes=upload_limit("capture"))
        elif lowered.endswith((".csv", ".txt")):
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FileFormatError(f"not UTF-8 text: {exc}", file=name) from None
            record = read_capture_csv(text, name=name, defaults=defaults)
        else:
            raise FileFormatError("a capture file is .npz or .csv", file=name)
    except FileFormatError as exc:
        raise CaptureRejected(str(exc).replace(f" (file {name})", "").replace(f"file {name}, ", ""),
                              field=exc.column or "file", origin=name) from None
    return record
