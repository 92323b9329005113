"""Ingestion services: validate, deduplicate and bulk-write telemetry.

``ingest_readings`` is the one door for sensor values, whatever the channel (REST, MQTT, files,
the demo simulator). It is idempotent on (sensor, ts), stores every good record of a batch,
and puts every bad one in quarantine with its raw payload and the reason.
"""

from __future__ import annotations

import gc
import hashlib
import math
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from numbers import Real

import numpy as np

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from connectors.records import ImageRecord, IngestResult, LogRecord, Reading, Rejection
from phm.assets.models import Equipment, Sensor
from phm.telemetry.models import (
    InspectionImage,
    LogEvent,
    LogTemplate,
    QuarantinedRecord,
    Quality,
    RecordKind,
)
from phm.telemetry.store import get_store

VALID_QUALITIES = frozenset(int(q) for q in Quality)
GOOD, UNCERTAIN = int(Quality.GOOD), int(Quality.UNCERTAIN)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _SensorInfo:
    id: int
    range_low: float | None
    range_high: float | None
    enabled: bool


class RecordError(ValueError):
    """A single record is invalid; the message says which field and why."""


# --- readings ---------------------------------------------------------------------------------


def ingest_readings(
    *, readings: Sequence[Reading | Mapping], channel: str = "api", using: str = "default"
) -> IngestResult:
    """Store a batch of readings; return accepted / duplicate / rejected counts.

    ``readings`` holds :class:`connectors.records.Reading` objects or mappings shaped like the
    REST payload (``{"sensor": tag, "ts": ISO-8601 with zone, "value": number, "quality": int}``).
    A value outside the sensor's instrument range is stored with quality downgraded to
    *uncertain* rather than dropped: a sensor pinned at its range limit is itself evidence.
    """
    with _collection_paused():
        return _ingest_readings(readings, channel=channel, using=using)


def _ingest_readings(readings: Sequence[Reading | Mapping], *, channel: str, using: str) -> IngestResult:
    result = IngestResult()
    sensors = _load_sensors(_tags_of(readings), using=using)
    quarantined: list[QuarantinedRecord] = []
    rows = _clean_batch_rows(readings, sensors)
    if rows is None:  # something in the batch needs a closer look: check record by record
        rows = []
        for index, record in enumerate(readings):
            try:
                rows.append(_validated_row(record, sensors))
            except RecordError as exc:
                result.rejected += 1
                result.rejections.append(Rejection(index, str(exc)))
                quarantined.append(_quarantine_reading(record, index, str(exc), channel))
    with transaction.atomic(using=using):
        # Repeats inside the batch and rows stored earlier are both left out by the store, so
        # every valid row that was not inserted is a duplicate. The SQL store writes readings,
        # roll-ups and latest values in this transaction; the ClickHouse store writes its own
        # tables (idempotently: a retry after a failure here stores nothing twice).
        inserted = get_store(using).write(rows)
        result.accepted = inserted
        result.duplicate = len(rows) - inserted
        if quarantined:
            QuarantinedRecord.objects.using(using).bulk_create(quarantined)
    return result


def _tags_of(readings: Sequence[Reading | Mapping]) -> set[str]:
    try:
        return {record.sensor for record in readings}  # the common case: all Reading objects
    except AttributeError:
        pass
    tags: set[str] = set()
    for record in readings:
        tag = record.sensor if isinstance(record, Reading) else record.get("sensor") if isinstance(record, Mapping) else None
        if isinstance(tag, str):
            tags.add(tag)
    return tags


def _load_sensors(tags: set[str], *, using: str) -> dict[str, _SensorInfo]:
    found: dict[str, _SensorInfo] = {}
    tag_list = [tag for tag in tags if _encodable(tag)]  # such a tag is unknown; the query would fail
    for start in range(0, len(tag_list), 500):  # stay under SQLite's bound-parameter limit
        for tag, sensor_id, low, high, enabled in Sensor.objects.using(using).filter(tag__in=tag_list[start : start + 500]).values_list("tag", "id", "range_low", "range_high", "enabled"):
            found[tag] = _SensorInfo(sensor_id, low, high, enabled)
    return found


@contextmanager
def _collection_paused():
    """A batch creates tens of thousands of short-lived tuples and ints; each automatic garbage
    collection would walk all of them (measured: validation 4x slower). None is cyclic, so the
    collector waits until the batch is written."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _clean_batch_rows(readings: Sequence[Reading | Mapping], sensors: Mapping[str, _SensorInfo]) -> list[tuple[int, int, float, int]] | None:
    """Column-wise validation for the common case (Reading objects from a connector, all valid):
    a few list comprehensions and numpy checks instead of a function call per record. Returns
    None as soon as anything is unusual; the caller then validates record by record, which
    produces the per-record errors."""
    try:
        infos = [sensors[r.sensor] for r in readings]  # AttributeError: not Reading; KeyError: unknown tag
        values = [r.value for r in readings]
        qualities = [r.quality for r in readings]
        deltas = [r.ts - EPOCH for r in readings]  # TypeError for naive timestamps
    except (AttributeError, KeyError, TypeError):
        return None
    if not all(type(v) is float for v in values):
        return None
    value_array = np.fromiter(values, dtype=np.float64, count=len(values))
    if not np.isfinite(value_array).all() or not set(qualities) <= VALID_QUALITIES:
        return None
    distinct = {id(info): info for info in infos}.values()
    if not all(info.enabled for info in distinct):
        return None
    ts_us = [(d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds for d in deltas]
    ids = [info.id for info in infos]
    if any(info.range_low is not None or info.range_high is not None for info in distinct):
        qualities = _downgrade_out_of_range(ids, value_array, qualities, distinct)
    return list(zip(ids, ts_us, values, qualities, strict=True))


def _downgrade_out_of_range(ids: list[int], values: np.ndarray, qualities: list[int], infos) -> list[int]:
    """Quality becomes at most *uncertain* where a value is outside its sensor's range."""
    table = sorted(infos, key=lambda info: info.id)
    table_ids = np.array([info.id for info in table])
    low = np.array([-np.inf if info.range_low is None else info.range_low for info in table])
    high = np.array([np.inf if info.range_high is None else info.range_high for info in table])
    position = np.searchsorted(table_ids, np.fromiter(ids, dtype=np.int64, count=len(ids)))
    outside = (values < low[position]) | (values > high[position])
    if not outside.any():
        return qualities
    return [min(q, UNCERTAIN) if bad else q for q, bad in zip(qualities, outside.tolist(), strict=True)]


def _validated_row(record: Reading | Mapping, sensors: Mapping[str, _SensorInfo]) -> tuple[int, int, float, int]:
    # This runs once per reading on the hot path: cheap exact-type checks first, the general
    # (ABC) checks only when they fail.
    if type(record) is Reading:
        tag, ts, value, quality = record.sensor, record.ts, record.value, record.quality
    elif isinstance(record, Reading):
        tag, ts, value, quality = record.sensor, record.ts, record.value, record.quality
    elif isinstance(record, Mapping):
        tag, ts, value, quality = record.get("sensor"), record.get("ts"), record.get("value"), record.get("quality", GOOD)
    else:
        raise RecordError(f"expected an object with sensor, ts and value, got {type(record).__name__}")
    info = sensors.get(tag) if type(tag) is str else None
    if info is None:
        if not isinstance(tag, str) or not tag:
            raise RecordError("'sensor' is missing or not a string")
        raise RecordError(f"unknown sensor {tag!r}")
    if not info.enabled:
        raise RecordError(f"sensor {tag!r} is disabled")
    ts_us = _timestamp_us(ts)
    if type(value) is not float:
        if isinstance(value, bool) or not isinstance(value, Real):
            raise RecordError(f"'value' must be a number, got {_describe(value)}")
        try:
            value = float(value)
        except OverflowError:  # an int of hundreds of digits
            raise RecordError(f"'value' is too large for a 64-bit float ({len(str(abs(value)))} digits)") from None
    if value - value != 0.0:  # true for inf and nan, without a function call
        raise RecordError(f"'value' {value} is not finite")
    if quality not in VALID_QUALITIES or type(quality) is bool:
        raise RecordError(f"'quality' must be one of {sorted(VALID_QUALITIES)} (bad, uncertain, good), got {quality!r}")
    if (info.range_low is not None and value < info.range_low) or (info.range_high is not None and value > info.range_high):
        quality = min(quality, UNCERTAIN)
    return info.id, ts_us, value, int(quality)


def _timestamp_us(ts: object) -> int:
    if type(ts) is datetime or isinstance(ts, datetime):
        parsed = ts
    elif isinstance(ts, str):
        try:
            parsed = datetime.fromisoformat(ts)
        except ValueError:
            raise RecordError(f"'ts' {ts!r} is not an ISO 8601 timestamp") from None
    else:
        raise RecordError(f"'ts' must be an ISO 8601 string, got {_describe(ts)}")
    offset = parsed.utcoffset()
    if offset is None:
        raise RecordError(f"'ts' {ts!s} has no time zone (add Z or +hh:mm)")
    # Exact integer arithmetic (floats would round some microseconds).
    delta = parsed - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"


def _quarantine_reading(record: object, index: int, error: str, channel: str) -> QuarantinedRecord:
    return QuarantinedRecord(kind=RecordKind.READING, channel=channel[:200], batch_index=index, payload=_quarantine_payload(record), error=error)


def _quarantine_payload(record: object) -> object:
    """The payload column is NOT NULL: a ``null`` record is kept as ``{"record": null}``."""
    payload = _jsonable(record)
    return {"record": None} if payload is None else payload


def _encodable(text: str) -> bool:
    """False for strings holding a lone surrogate (``"\\ud800"``), which no database can store."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable_text(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udXXX`` escapes, so a quarantined payload shows
    what was sent and still fits the database."""
    return text if _encodable(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _jsonable(record: object) -> object:
    """The raw payload as JSON, whatever shape it came in (datetimes as ISO, floats as text if non-finite)."""
    if isinstance(record, Reading | LogRecord):
        record = asdict(record)
    if isinstance(record, Mapping):
        return {_storable_text(str(k)): _jsonable(v) for k, v in record.items()}
    if isinstance(record, str):
        return _storable_text(record)
    if isinstance(record, list | tuple):
        return [_jsonable(v) for v in record]
    if isinstance(record, datetime):
        return record.isoformat()
    if isinstance(record, float) and not math.isfinite(record):
        return repr(record)
    if isinstance(record, str | int | float | bool) or record is None:
        return record
    if isinstance(record, bytes):
        return {"bytes": len(record)}
    return repr(record)


# --- log events -------------------------------------------------------------------------------


def ingest_logs(*, records: Sequence[LogRecord | Mapping], channel: str = "api", using: str = "default") -> IngestResult:
    """Store log events; the (source, ts, message) fingerprint makes replays duplicates."""
    result = IngestResult()
    equipment_ids = dict(Equipment.objects.using(using).values_list("tag", "id"))
    events: dict[str, LogEvent] = {}
    templates: dict[str, str] = {}
    quarantined: list[QuarantinedRecord] = []
    for index, record in enumerate(records):
        try:
            event, template = _log_event(record, equipment_ids)
        except RecordError as exc:
            result.rejected += 1
            result.rejections.append(Rejection(index, str(exc)))
            quarantined.append(QuarantinedRecord(kind=RecordKind.LOG, channel=channel[:200], batch_index=index, payload=_quarantine_payload(record), error=str(exc)))
            continue
        if event.fingerprint in events:
            result.duplicate += 1
            continue
        events[event.fingerprint] = event
        if template and event.template_id:
            templates[event.template_id] = template
    with transaction.atomic(using=using):
        existing = set()
        keys = list(events)
        for start in range(0, len(keys), 500):
            existing.update(LogEvent.objects.using(using).filter(fingerprint__in=keys[start : start + 500]).values_list("fingerprint", flat=True))
        new_events = [event for key, event in events.items() if key not in existing]
        LogEvent.objects.using(using).bulk_create(new_events, batch_size=2000, ignore_conflicts=True)
        result.accepted = len(new_events)
        result.duplicate += len(existing)
        if templates:
            LogTemplate.objects.using(using).bulk_create(
                [LogTemplate(template_id=k, template=v) for k, v in templates.items()],
                update_conflicts=True,
                unique_fields=["template_id"],
                update_fields=["template"],
            )
        if quarantined:
            QuarantinedRecord.objects.using(using).bulk_create(quarantined)
    return result


#: Column sizes of LogEvent.source / level; the message limit is a setting.
LOG_SOURCE_MAX, LOG_LEVEL_MAX = 128, 16
LOG_LIMIT_SETTINGS = {"message": " (PHM_LOG_MAX_MESSAGE_CHARS)"}


def log_field_limits() -> dict[str, int]:
    from django.conf import settings

    return {"source": LOG_SOURCE_MAX, "level": LOG_LEVEL_MAX, "message": settings.PHM_LOG_MAX_MESSAGE_CHARS}


def _log_event(record: LogRecord | Mapping, equipment_ids: Mapping[str, int]) -> tuple[LogEvent, str | None]:
    if isinstance(record, LogRecord):
        fields = asdict(record)
    elif isinstance(record, Mapping):
        fields = dict(record)
    else:
        raise RecordError(f"expected a log record, got {type(record).__name__}")
    source, message, level = fields.get("source"), fields.get("message"), fields.get("level") or "INFO"
    if not isinstance(source, str) or not source:
        raise RecordError("'source' is missing or not a string")
    if not isinstance(message, str) or not message.strip():
        raise RecordError("'message' is missing or empty")
    if not isinstance(level, str):
        raise RecordError("'level' must be a string")
    limits = log_field_limits()
    for name, text in (("source", source), ("level", level), ("message", message)):
        if len(text) > limits[name]:
            raise RecordError(f"'{name}' has {len(text):,} characters; the limit is {limits[name]:,}{LOG_LIMIT_SETTINGS.get(name, '')}")
        if not _encodable(text):
            raise RecordError(f"'{name}' holds a lone surrogate (invalid Unicode)")
    ts_us = _timestamp_us(fields.get("ts"))
    parameters = fields.get("parameters") or []
    if not isinstance(parameters, list):
        raise RecordError("'parameters' must be a list")
    parameters = [str(p) for p in parameters]
    if not all(_encodable(p) for p in parameters):
        raise RecordError("'parameters' holds a lone surrogate (invalid Unicode)")
    fingerprint = hashlib.sha1(f"{source}\x1f{ts_us}\x1f{message}".encode()).hexdigest()
    event = LogEvent(
        source=source,
        equipment_id=equipment_ids.get(source),
        ts=ts_us,
        level=level.upper(),
        message=message,
        template_id=(fields.get("template_id") or "")[:64],
        parameters=parameters,
        fingerprint=fingerprint,
    )
    return event, fields.get("template")


# --- images -----------------------------------------------------------------------------------

ALLOWED_IMAGE_TYPES = ("image/jpeg", "image/png")
MAX_IMAGE_BYTES = 25 * 1024 * 1024
THUMBNAIL_SIDE = 320


def ingest_images(*, records: Sequence[ImageRecord], channel: str = "api", using: str = "default") -> IngestResult:
    """Store inspection images after a real decode; identical bytes for the same equipment are duplicates."""
    result = IngestResult()
    equipment_by_tag = {e.tag: e for e in Equipment.objects.using(using).filter(tag__in={r.source for r in records})}
    for index, record in enumerate(records):
        try:
            stored = _store_image(record, equipment_by_tag, using=using)
        except RecordError as exc:
            result.rejected += 1
            result.rejections.append(Rejection(index, str(exc)))
            QuarantinedRecord.objects.using(using).create(
                kind=RecordKind.IMAGE, channel=channel[:200], batch_index=index,
                payload={"source": record.source, "ts": _jsonable(record.ts), "media_type": record.media_type,
                         "filename": record.filename, "bytes": len(record.content), "metadata": _jsonable(record.metadata)},
                error=str(exc),
            )
            continue
        if stored:
            result.accepted += 1
        else:
            result.duplicate += 1
    return result


def _store_image(record: ImageRecord, equipment_by_tag: Mapping[str, Equipment], *, using: str) -> bool:
    from connectors.images import MEDIA_TYPES, ImageLimits, ImageRejected, make_thumbnail, validate_image

    equipment = equipment_by_tag.get(record.source)
    if equipment is None:
        raise RecordError(f"unknown equipment {record.source!r}")
    if record.media_type not in ALLOWED_IMAGE_TYPES:
        raise RecordError(f"media type {record.media_type!r} is not accepted (use image/jpeg or image/png)")
    ts_us = _timestamp_us(record.ts)
    try:  # the same full decode and limits the image connectors use
        info = validate_image(record.content, ImageLimits(max_bytes=MAX_IMAGE_BYTES, min_side=1))
    except ImageRejected as exc:
        raise RecordError(f"{record.media_type} image refused: {exc}") from None
    if info.media_type != record.media_type:
        content_format = next(name for name, media_type in MEDIA_TYPES.items() if media_type == info.media_type)
        raise RecordError(f"content is {content_format}, but media type says {record.media_type}")
    digest = hashlib.sha256(record.content).hexdigest()
    if InspectionImage.objects.using(using).filter(equipment=equipment, sha256=digest).exists():
        return False
    image_row = InspectionImage(
        equipment=equipment, ts=ts_us, media_type=record.media_type, width=info.width, height=info.height,
        sha256=digest, metadata=_jsonable(record.metadata) or {},
    )
    image_row.file.save(record.filename or digest, ContentFile(record.content), save=False)
    image_row.thumbnail.save(f"{digest}.jpg", ContentFile(make_thumbnail(record.content, max_side=THUMBNAIL_SIDE)), save=False)
    try:
        with transaction.atomic(using=using):
            image_row.save(using=using)
    except IntegrityError:
        return False  # a concurrent upload of the same bytes won
    return True
