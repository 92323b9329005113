"""Sparkplug B payload codec (Eclipse Sparkplug 3.0, ``org.eclipse.tahu.protobuf.Payload``).

Why this and not a package: the maintained Python Sparkplug packages (``pysparkplug``,
``mqtt-spb-wrapper``) pin ``paho-mqtt<2``, which conflicts with paho-mqtt 2 used here. The wire
format is a small, stable protobuf schema defined by the specification, so we declare exactly
that schema with the ``protobuf`` package's descriptor API (no generated code to keep in sync
with the protobuf runtime) and let protobuf do all encoding and decoding. Field numbers and
types follow the specification's ``sparkplug_b.proto``; DataSet, Template and metadata fields
are not declared and are kept by protobuf as unknown fields (metrics of those types are
reported as unsupported by the connector, not misread).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "org.eclipse.tahu.protobuf"


class DataType(IntEnum):
    """Sparkplug B metric data types (specification 6.4.16)."""

    Unknown = 0
    Int8 = 1
    Int16 = 2
    Int32 = 3
    Int64 = 4
    UInt8 = 5
    UInt16 = 6
    UInt32 = 7
    UInt64 = 8
    Float = 9
    Double = 10
    Boolean = 11
    String = 12
    DateTime = 13
    Text = 14
    UUID = 15
    DataSet = 16
    Bytes = 17
    File = 18
    Template = 19
    PropertySet = 20
    PropertySetList = 21


_F = descriptor_pb2.FieldDescriptorProto
_SIGNED_BITS = {DataType.Int8: 8, DataType.Int16: 16, DataType.Int32: 32, DataType.Int64: 64}
NUMERIC_TYPES = frozenset(
    {
        DataType.Int8,
        DataType.Int16,
        DataType.Int32,
        DataType.Int64,
        DataType.UInt8,
        DataType.UInt16,
        DataType.UInt32,
        DataType.UInt64,
        DataType.Float,
        DataType.Double,
        DataType.Boolean,
        DataType.DateTime,
    }
)


def _message(
    name: str, fields: Iterable[tuple[str, int, int, int, str | None, int | None]]
) -> descriptor_pb2.DescriptorProto:
    """fields: (name, number, type, label, type_name, oneof_index)."""
    message = descriptor_pb2.DescriptorProto(name=name)
    for field_name, number, field_type, label, type_name, oneof_index in fields:
        field = message.field.add(name=field_name, number=number, type=field_type, label=label)
        if type_name:
            field.type_name = type_name
        if oneof_index is not None:
            field.oneof_index = oneof_index
    return message


def _build_payload_class():
    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    file = descriptor_pb2.FileDescriptorProto(name="phm_sparkplug_b.proto", package=PACKAGE, syntax="proto2")
    property_value = _message(
        "PropertyValue",
        [
            ("type", 1, _F.TYPE_UINT32, opt, None, None),
            ("is_null", 2, _F.TYPE_BOOL, opt, None, None),
            ("int_value", 3, _F.TYPE_UINT32, opt, None, 0),
            ("long_value", 4, _F.TYPE_UINT64, opt, None, 0),
            ("float_value", 5, _F.TYPE_FLOAT, opt, None, 0),
            ("double_value", 6, _F.TYPE_DOUBLE, opt, None, 0),
            ("boolean_value", 7, _F.TYPE_BOOL, opt, None, 0),
            ("string_value", 8, _F.TYPE_STRING, opt, None, 0),
        ],
    )
    property_value.oneof_decl.add(name="value")
    property_set = _message(
        "PropertySet",
        [
            ("keys", 1, _F.TYPE_STRING, rep, None, None),
            ("values", 2, _F.TYPE_MESSAGE, rep, f".{PACKAGE}.Payload.PropertyValue", None),
        ],
    )
    metric = _message(
        "Metric",
        [
            ("name", 1, _F.TYPE_STRING, opt, None, None),
            ("alias", 2, _F.TYPE_UINT64, opt, None, None),
            ("timestamp", 3, _F.TYPE_UINT64, opt, None, None),
            ("datatype", 4, _F.TYPE_UINT32, opt, None, None),
            ("is_historical", 5, _F.TYPE_BOOL, opt, None, None),
            ("is_transient", 6, _F.TYPE_BOOL, opt, None, None),
            ("is_null", 7, _F.TYPE_BOOL, opt, None, None),
            ("properties", 9, _F.TYPE_MESSAGE, opt, f".{PACKAGE}.Payload.PropertySet", None),
            ("int_value", 10, _F.TYPE_UINT32, opt, None, 0),
            ("long_value", 11, _F.TYPE_UINT64, opt, None, 0),
            ("float_value", 12, _F.TYPE_FLOAT, opt, None, 0),
            ("double_value", 13, _F.TYPE_DOUBLE, opt, None, 0),
            ("boolean_value", 14, _F.TYPE_BOOL, opt, None, 0),
            ("string_value", 15, _F.TYPE_STRING, opt, None, 0),
            ("bytes_value", 16, _F.TYPE_BYTES, opt, None, 0),
        ],
    )
    metric.oneof_decl.add(name="value")
    payload = _message(
        "Payload",
        [
            ("timestamp", 1, _F.TYPE_UINT64, opt, None, None),
            ("metrics", 2, _F.TYPE_MESSAGE, rep, f".{PACKAGE}.Payload.Metric", None),
            ("seq", 3, _F.TYPE_UINT64, opt, None, None),
            ("uuid", 4, _F.TYPE_STRING, opt, None, None),
            ("body", 5, _F.TYPE_BYTES, opt, None, None),
        ],
    )
    payload.nested_type.extend([property_value, property_set, metric])
    file.message_type.append(payload)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.Payload"))


Payload = _build_payload_class()


class PayloadError(ValueError):
    """The bytes are not a Sparkplug B payload."""


def decode_payload(data: bytes):
    payload = Payload()
    try:
        payload.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise PayloadError(f"not a Sparkplug B protobuf payload: {exc}") from exc
    return payload


@dataclass(frozen=True, slots=True)
class MetricValue:
    """A metric as the connector needs it: numeric value (or None), datatype, quality."""

    value: float | None
    datatype: DataType
    quality: int | None  # the "Quality" property when present (OPC DA style code)


def metric_value(metric, datatype: DataType) -> MetricValue:
    """Decode one metric's value to a float for numeric types; ``None`` for null or non-numeric."""
    quality = _quality_property(metric)
    if metric.is_null or metric.WhichOneof("value") is None:
        return MetricValue(None, datatype, quality)
    kind = metric.WhichOneof("value")
    raw = getattr(metric, kind)
    if datatype not in NUMERIC_TYPES or kind in ("string_value", "bytes_value"):
        return MetricValue(None, datatype, quality)
    if datatype in _SIGNED_BITS:
        bits = _SIGNED_BITS[datatype]
        raw = int(raw) & ((1 << bits) - 1)  # both sign-extended and plain encodings occur
        if raw >= 1 << (bits - 1):
            raw -= 1 << bits
    return MetricValue(float(raw), datatype, quality)


def _quality_property(metric) -> int | None:
    if not metric.HasField("properties"):
        return None
    for key, value in zip(metric.properties.keys, metric.properties.values, strict=False):
        if key.lower() == "quality" and value.WhichOneof("value") in ("int_value", "long_value"):
            return int(getattr(value, value.WhichOneof("value")))
    return None


# -- encoding (edge-node side: used to request rebirths, by tests and by the bench) -----------


def encode_metric(
    payload,
    *,
    name: str | None = None,
    alias: int | None = None,
    datatype: DataType = DataType.Double,
    value: float | int | bool | str | None = None,
    timestamp_ms: int | None = None,
    quality: int | None = None,
):
    """Append a metric to ``payload`` (a :data:`Payload`) with the value in the field its type uses."""
    metric = payload.metrics.add()
    if name is not None:
        metric.name = name
    if alias is not None:
        metric.alias = alias
    if timestamp_ms is not None:
        metric.timestamp = timestamp_ms
    metric.datatype = int(datatype)
    if value is None:
        metric.is_null = True
    elif datatype in (DataType.Int8, DataType.Int16, DataType.Int32, DataType.UInt8, DataType.UInt16, DataType.UInt32):
        metric.int_value = int(value) & 0xFFFFFFFF
    elif datatype in (DataType.Int64, DataType.UInt64, DataType.DateTime):
        metric.long_value = int(value) & 0xFFFFFFFFFFFFFFFF
    elif datatype == DataType.Float:
        metric.float_value = float(value)
    elif datatype == DataType.Double:
        metric.double_value = float(value)
    elif datatype == DataType.Boolean:
        metric.boolean_value = bool(value)
    elif datatype in (DataType.String, DataType.Text, DataType.UUID):
        metric.string_value = str(value)
    else:
        raise ValueError(f"encode_metric does not encode {datatype.name}")
    if quality is not None:
        metric.properties.keys.append("Quality")
        metric.properties.values.add(type=int(DataType.Int32), int_value=quality)
    return metric


def new_payload(*, timestamp_ms: int, seq: int | None = None):
    payload = Payload(timestamp=timestamp_ms)
    if seq is not None:
        payload.seq = seq
    return payload
