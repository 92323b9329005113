"""Build connectors from stored definitions: ``kind`` + JSON ``config`` -> a ``connectors`` object.

Config per kind (keys not listed are refused, so typos fail on save, not at 3 a.m.):

- ``mqtt_json``: ``{"broker": BrokerConfig, "mappings": [TopicMapping, ...]}``
- ``sparkplug_b``: ``{"broker": BrokerConfig, "group_id": "+", "host_id": null, "metric_map": {path: tag}}``
- ``opcua``: ``{"url": "opc.tcp://...", "nodes": [NodeSpec, ...], "publishing_interval_ms": 250, "sampling_interval_ms": 100}``
- ``modbus``: ``{"host": ..., "port": 502, "period_s": 1.0, "timeout_s": 2.0, "registers": [RegisterSpec, ...]}``
- ``logfile``: ``{"path": ..., "source": ..., "format": LogLineFormat (omit: headers detected), "miner": MinerSettings (omit: the
  one default), "poll_interval_s": 0.5}``; template ids are ``<connector name>:<n>``, the miner state is kept per connector
- ``image_folder``: ``{"directory": ..., "source": ..., "limits": ImageLimits, "poll_interval_s": 2, "settle_s": 1}``
- ``file_folder``: ``{"directory": ..., "spec": FileSpec, "batch_size": 50000, "poll_interval_s": 5, "settle_s": 2,
  "capture_defaults": {"equipment", "point", "sample_rate_hz", "unit", "speed_rpm", "array"}}``; ``*.capture.npz`` /
  ``*.capture.csv`` files become vibration captures (``connectors.waveforms``), the rest readings

(The names are the dataclasses in ``connectors``; their fields are the JSON keys.)

Every path (``PATH_FIELDS``) must lie inside ``settings.PHM_CONNECTOR_ROOTS`` after symlinks are
resolved: checked when a definition is saved (``validate_config``) and again when it is built to
run, and the built connector checks each file it opens (``connectors.paths``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from connectors.base import Connector, QuarantinedPayload
from connectors.file_folder import HistorianFolderSource
from connectors.files import FileSpec
from connectors.images import ImageLimits, WatchedFolderSource
from connectors.logs import (
    LogFileFollower,
    LogLineFormat,
    MemoryMinerStateStore,
    MemoryOffsetStore,
    MinerSettings,
    MinerStateStore,
    OffsetStore,
    TemplateTagger,
)
from connectors.modbus import ModbusConnector, RegisterSpec
from connectors.mqtt import BrokerConfig, MqttJsonConnector, SparkplugHostConnector, TopicMapping
from connectors.opcua import NodeSpec, OpcUaConnector
from connectors.paths import PathNotAllowed, confine
from connectors.sink import MemorySink, Sink


CAPTURE_DEFAULT_KEYS = frozenset({"equipment", "point", "sample_rate_hz", "unit", "speed_rpm", "label", "array"})


class ConfigError(ValueError):
    """A connector definition that cannot be built; the text says which key and why."""


ALLOWED_KEYS: dict[str, set[str]] = {
    "mqtt_json": {"broker", "mappings"},
    "sparkplug_b": {"broker", "group_id", "host_id", "metric_map"},
    "opcua": {"url", "nodes", "publishing_interval_ms", "sampling_interval_ms", "timeout_s"},
    "modbus": {"host", "port", "period_s", "timeout_s", "registers"},
    "logfile": {"path", "source", "format", "miner", "poll_interval_s", "batch_lines"},
    "image_folder": {"directory", "source", "limits", "poll_interval_s", "settle_s"},
    "file_folder": {"directory", "spec", "batch_size", "poll_interval_s", "settle_s", "capture_defaults"},
}

#: Config keys that name a file or folder on the server, per kind.
PATH_FIELDS: dict[str, tuple[str, ...]] = {"logfile": ("path",), "image_folder": ("directory",), "file_folder": ("directory",)}


def connector_roots() -> tuple[Path, ...]:
    """The folders connectors may read (``PHM_CONNECTOR_ROOTS``), read at each call so a test or
    a reloaded setting takes effect."""
    from django.conf import settings

    return tuple(Path(root) for root in settings.PHM_CONNECTOR_ROOTS)


def check_paths(kind: str, config: Mapping[str, Any], roots: Sequence[Path]) -> None:
    """ConfigError naming the field and the roots when a path of ``config`` lies outside ``roots``."""
    for key in PATH_FIELDS.get(kind, ()):
        if key not in config:
            continue  # the builder reports the missing key
        value = config[key]
        if not isinstance(value, str):
            raise ConfigError(f"{kind}: {key!r} must be a string path, got {type(value).__name__}")
        try:
            confine(value, roots, field=key)
        except PathNotAllowed as exc:
            raise ConfigError(f"{kind}: {exc}") from None


def build_connector(
    *,
    name: str,
    kind: str,
    config: Mapping[str, Any],
    sink: Sink,
    offsets: OffsetStore | None = None,
    on_quarantine: Callable[[QuarantinedPayload], None] | None = None,
    miner_states: MinerStateStore | None = None,
    roots: Sequence[Path] | None = None,
) -> Connector:
    """The connector for a definition; ``roots`` (default ``PHM_CONNECTOR_ROOTS``) confine its paths."""
    if kind not in ALLOWED_KEYS:
        raise ConfigError(f"unknown connector kind {kind!r}; known: {sorted(ALLOWED_KEYS)}")
    if not isinstance(config, Mapping):
        raise ConfigError(f"config must be a JSON object, got {type(config).__name__}")
    unknown = set(config) - ALLOWED_KEYS[kind]
    if unknown:
        raise ConfigError(f"unknown keys for {kind}: {sorted(unknown)}; allowed: {sorted(ALLOWED_KEYS[kind])}")
    roots = tuple(roots) if roots is not None else connector_roots()
    check_paths(kind, config, roots)
    try:
        if kind == "logfile":
            return _logfile(name, dict(config), sink, offsets, on_quarantine, roots, miner_states=miner_states)
        return _BUILDERS[kind](name, dict(config), sink, offsets, on_quarantine, roots)
    except ConfigError:
        raise
    except KeyError as exc:
        raise ConfigError(f"{kind}: missing key {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{kind}: {exc}") from exc


def validate_config(kind: str, config: Mapping[str, Any], *, roots: Sequence[Path] | None = None) -> None:
    """Raise ConfigError if the definition cannot be built or names a path outside the roots
    (nothing connects, nothing is opened)."""
    build_connector(name="validation", kind=kind, config=config, sink=MemorySink(), offsets=MemoryOffsetStore(), roots=roots)


def _items(config: Mapping, key: str, factory) -> list:
    items = config.get(key)
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{key!r} must be a non-empty list")
    out = []
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ConfigError(f"{key}[{position}] must be an object")
        try:
            out.append(factory(item))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{key}[{position}]: {exc}") from exc
    return out


def _broker(config: Mapping) -> BrokerConfig:
    broker = config.get("broker", {})
    unknown = set(broker) - set(BrokerConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"broker: unknown keys {sorted(unknown)}")
    return BrokerConfig(**broker)


def _mqtt_json(name, config, sink, offsets, on_quarantine, roots) -> Connector:
    mappings = _items(config, "mappings", TopicMapping.from_dict)
    return MqttJsonConnector(name, sink, _broker(config), mappings, on_quarantine=on_quarantine)


def _sparkplug(name, config, sink, offsets, on_quarantine, roots) -> Connector:
    return SparkplugHostConnector(
        name,
        sink,
        _broker(config),
        group_id=config.get("group_id", "+"),
        host_id=config.get("host_id"),
        metric_map=config.get("metric_map") or {},
        on_quarantine=on_quarantine,
    )


def _opcua(name, config, sink, offsets, on_quarantine, roots) -> Connector:
    options = {k: config[k] for k in ("publishing_interval_ms", "sampling_interval_ms", "timeout_s") if k in config}
    return OpcUaConnector(
        name, sink, url=config["url"], nodes=_items(config, "nodes", NodeSpec.from_dict), on_quarantine=on_quarantine, **options
    )


def _modbus(name, config, sink, offsets, on_quarantine, roots) -> Connector:
    options = {k: config[k] for k in ("port", "period_s", "timeout_s") if k in config}
    return ModbusConnector(
        name,
        sink,
        host=config["host"],
        registers=_items(config, "registers", RegisterSpec.from_dict),
        on_quarantine=on_quarantine,
        **options,
    )


def template_id_prefix(name: str) -> str:
    """``<name>:``: template ids of different log connectors stay apart in the one LogTemplate
    table (64 characters: a long name is replaced by a hash of it)."""
    return (name if len(name) <= 40 else hashlib.sha1(name.encode()).hexdigest()[:16]) + ":"


def _logfile(name, config, sink, offsets, on_quarantine, roots, *, miner_states: MinerStateStore | None = None) -> Connector:
    if offsets is None:
        raise ConfigError("logfile connectors need an offset store")
    miner = MinerSettings.from_dict(config.get("miner", {}))
    if miner.state_path:
        # The app keeps miner state in its database (stable ids across restarts); a file named in
        # the definition would be a write anywhere the server may, outside the connector roots.
        raise ConfigError("logfile: 'miner.state_path' is not allowed here: the app keeps template state in its database")
    if miner_states is None:
        miner_states = MemoryMinerStateStore()
    tagger = TemplateTagger.restore(miner, store=miner_states, key=f"logfile:{name}", id_prefix=template_id_prefix(name))
    options = {k: config[k] for k in ("poll_interval_s", "batch_lines") if k in config}
    return LogFileFollower(
        name,
        sink,
        path=config["path"],
        offsets=offsets,
        source=config.get("source"),
        line_format=LogLineFormat.from_dict(config.get("format", {})),
        tagger=tagger,
        on_quarantine=on_quarantine,
        roots=roots,
        **options,
    )


def _image_folder(name, config, sink, offsets, on_quarantine, roots) -> Connector:
    options = {k: config[k] for k in ("poll_interval_s", "settle_s") if k in config}
    return WatchedFolderSource(
        name,
        sink,
        directory=config["directory"],
        source=config.get("source"),
        limits=ImageLimits.from_dict(config.get("limits", {})),
        on_quarantine=on_quarantine,
        roots=roots,
        **options,
    )


def _file_folder(name, config, sink, offsets, on_quarantine, roots) -> Connector:
    options = {k: config[k] for k in ("batch_size", "poll_interval_s", "settle_s") if k in config}
    defaults = config.get("capture_defaults", {})
    unknown = set(defaults) - CAPTURE_DEFAULT_KEYS if isinstance(defaults, dict) else None
    if unknown is None or unknown:
        raise ConfigError(f"file_folder: capture_defaults must be an object with keys among {', '.join(sorted(CAPTURE_DEFAULT_KEYS))}"
                          + (f"; unknown: {', '.join(sorted(map(str, unknown)))}" if unknown else ""))
    from django.conf import settings

    options["capture_defaults"] = defaults
    options["max_capture_bytes"] = settings.PHM_UPLOAD_MAX_CAPTURE_BYTES
    return HistorianFolderSource(
        name, sink, directory=config["directory"], spec=FileSpec.from_dict(config.get("spec", {})), on_quarantine=on_quarantine,
        roots=roots, **options
    )


_BUILDERS = {
    "mqtt_json": _mqtt_json,
    "sparkplug_b": _sparkplug,
    "opcua": _opcua,
    "modbus": _modbus,
    "logfile": _logfile,
    "image_folder": _image_folder,
    "file_folder": _file_folder,
}
