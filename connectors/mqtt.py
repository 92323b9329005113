"""MQTT connectors (paho-mqtt 2): plain JSON topics with a topic->tag mapping, and a Sparkplug B
host application (births, aliases, sequence numbers, deaths, rebirth requests).

Both share :class:`MqttConnector`: paho's network thread parses each message into readings and
appends them to a bounded buffer; the connector's own thread flushes the buffer to the sink in
batches (so a slow database never stalls the socket, and the database sees few large writes).
paho reconnects by itself with exponential backoff (``reconnect_delay_set``) and the connector
resubscribes in ``on_connect``; a persistent session (``clean_session=False``, fixed client id)
makes the broker keep QoS 1 messages published while the connector was away.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from connectors.base import Backoff, Connector, utcnow
from connectors.mqtt_client import BufferedClient
from connectors.records import Quality, Reading
from connectors.sink import Sink
from connectors.sparkplug_b import DataType, PayloadError, decode_payload, encode_metric, metric_value, new_payload
from connectors.timeparse import from_epoch_ms, parse_timestamp

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str | None = None  # default: "phm-<connector name>" (stable, for the persistent session)
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line or status
    keepalive: int = 30
    clean_session: bool = False
    qos: int = 1
    reconnect_min_delay: float = 1.0
    reconnect_max_delay: float = 30.0
    flush_interval: float = 0.05  # seconds between sink writes
    max_batch: int = 20_000  # readings per sink write
    max_buffered: int = 200_000  # backpressure: the network thread waits past this many readings

    @classmethod
    def from_dict(cls, config: Mapping) -> BrokerConfig:
        return cls(**{k: v for k, v in config.items() if k in cls.__dataclass_fields__})


class MqttConnector(Connector):
    """Shared client, buffering and flushing. Subclasses say what to subscribe to and how a
    message becomes readings (:meth:`handle_message`)."""

    kind = "mqtt"

    def __init__(self, name: str, sink: Sink, broker: BrokerConfig, **kwargs):
        super().__init__(name, sink, **kwargs)
        self.broker = broker
        self._buffer: list[Reading] = []
        self._buffer_cond = threading.Condition()
        self._client: mqtt.Client | None = None
        self._stopping = False

    # -- subclass hooks ---------------------------------------------------------------------

    def subscriptions(self) -> list[tuple[str, int]]:
        raise NotImplementedError

    def handle_message(self, topic: str, payload: bytes, received_at: datetime) -> list[Reading]:
        """Readings from one message; call :meth:`quarantine` for anything unusable in it."""
        raise NotImplementedError

    def configure_client(self, client: mqtt.Client) -> None:
        """Before connecting (e.g. a last will)."""

    def after_connect(self, client: mqtt.Client) -> None:
        """After each (re)connection and resubscription."""

    # -- running ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self._stopping = False
        client = BufferedClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.broker.client_id or f"phm-{self.name}",
            clean_session=self.broker.clean_session,
        )
        if self.broker.username:
            client.username_pw_set(self.broker.username, self.broker.password)
        client.reconnect_delay_set(int(max(1, self.broker.reconnect_min_delay)), int(max(1, self.broker.reconnect_max_delay)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_open = _no_delay
        self.configure_client(client)
        self._client = client
        self.set_state("connecting")
        client.connect_async(self.broker.host, self.broker.port, self.broker.keepalive)
        client.loop_start()  # paho's thread connects, retries the first connection and reconnects
        backoff = Backoff(initial=0.2, maximum=10.0)
        try:
            while not stop.wait(self.broker.flush_interval):
                if not self._flush():
                    backoff.wait(stop)
                else:
                    backoff.reset()
        finally:
            self._stopping = True
            self._flush()
            client.disconnect()
            client.loop_stop()
            self.set_state("stopped", connected=False)

    def _flush(self) -> bool:
        """Write the buffered readings; on a sink error keep them (in order) and say False."""
        with self._buffer_cond:
            batch = self._buffer
            self._buffer = []
            self._buffer_cond.notify_all()
        if not batch:
            return True
        sent = 0
        try:
            while sent < len(batch):
                chunk = batch[sent : sent + self.broker.max_batch]
                self.deliver_readings(chunk, origin="mqtt")
                sent += len(chunk)
        except Exception as exc:  # sink down and no spool around it: keep the data, retry later
            self.note_error(exc)
            with self._buffer_cond:
                self._buffer = batch[sent:] + self._buffer
            return False
        return True

    def buffered(self) -> int:
        with self._buffer_cond:
            return len(self._buffer)

    # -- paho callbacks (network thread) ----------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.note_error(f"broker refused the connection: {reason_code}")
            return
        client.subscribe(self.subscriptions())
        self.set_state("running", connected=True)
        self.after_connect(client)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._stopping:
            return
        self.note_reconnect(f"disconnected from broker: {reason_code}")

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        received_at = utcnow()
        self.note_messages(at=received_at)
        try:
            readings = self.handle_message(message.topic, message.payload, received_at)
        except Exception as exc:  # a bug or a payload nobody foresaw: quarantine, keep running
            logger.exception("connector %s: handling a message on %s failed", self.name, message.topic)
            self.quarantine(message.topic, f"unexpected error: {type(exc).__name__}: {exc}", message.payload)
            return
        if not readings:
            return
        with self._buffer_cond:
            while len(self._buffer) >= self.broker.max_buffered and not self._stopping:
                self._buffer_cond.wait(1.0)  # backpressure: the broker queues meanwhile
            self._buffer.extend(readings)


# ----------------------------------------------------------------------------------------------
# Plain JSON topics


@dataclass(frozen=True)
class TopicMapping:
    """Which topics to read and how their payloads become readings.

    Accepted payloads: a bare number (``21.5``); an object ``{"value": 21.5, "ts": ...,
    "quality": 192}``; an object with several values ``{"ts": ..., "values": {"a": 1, "b": 2}}``;
    or a JSON array of such objects. Missing ``ts`` means the time of receipt.

    ``tag`` is a template with ``{topic}`` (the topic with ``/`` turned into ``.``),
    ``{levels[i]}`` (topic levels) and ``{key}`` (the key inside ``values``); the default is
    ``{topic}`` for single values and ``{topic}.{key}`` for several.
    """

    topic: str
    tag: str | None = None
    value_field: str = "value"
    values_field: str = "values"
    ts_field: str = "ts"
    quality_field: str = "quality"
    scale: float = 1.0
    offset: float = 0.0

    @classmethod
    def from_dict(cls, config: Mapping) -> TopicMapping:
        return cls(**config)


TOPIC_CACHE_SIZE = 100_000
TAG_CACHE_SIZE = 1_000_000


class PayloadProblem(ValueError):
    """One message (or one value in it) that cannot become a reading; the text says why."""


class MqttJsonConnector(MqttConnector):
    kind = "mqtt_json"

    def __init__(self, name: str, sink: Sink, broker: BrokerConfig, mappings: Sequence[TopicMapping], **kwargs):
        super().__init__(name, sink, broker, **kwargs)
        if not mappings:
            raise ValueError("an MQTT JSON connector needs at least one topic mapping")
        self.mappings = list(mappings)
        # Hot-path caches (a plant has a bounded set of topics and keys): matching a topic
        # against filters and formatting a tag template cost more than the rest of a message.
        self._mapping_cache: dict[str, TopicMapping | None] = {}
        self._tag_cache: dict[tuple[int, str, str | None], str] = {}

    def subscriptions(self) -> list[tuple[str, int]]:
        return [(m.topic, self.broker.qos) for m in self.mappings]

    def mapping_for(self, topic: str) -> TopicMapping | None:
        try:
            return self._mapping_cache[topic]
        except KeyError:
            pass
        found = next((m for m in self.mappings if mqtt.topic_matches_sub(m.topic, topic)), None)
        if len(self._mapping_cache) < TOPIC_CACHE_SIZE:
            self._mapping_cache[topic] = found
        return found

    def handle_message(self, topic: str, payload: bytes, received_at: datetime) -> list[Reading]:
        mapping = self.mapping_for(topic)
        if mapping is None:
            self.quarantine(topic, "no topic mapping matches this topic", payload)
            return []
        try:
            document = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.quarantine(topic, f"payload is not JSON: {exc}", payload)
            return []
        items = document if isinstance(document, list) else [document]
        readings: list[Reading] = []
        for position, item in enumerate(items):
            try:
                readings.extend(self._readings_from_item(mapping, topic, item, received_at))
            except PayloadProblem as exc:
                where = f"{topic}[{position}]" if isinstance(document, list) else topic
                self.quarantine(where, str(exc), json.dumps(item)[:300] if not isinstance(item, bytes) else item)
        return readings

    def _readings_from_item(self, mapping: TopicMapping, topic: str, item: object, received_at: datetime) -> list[Reading]:
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            return [self._reading(mapping, topic, None, item, received_at, Quality.GOOD)]
        if not isinstance(item, dict):
            raise PayloadProblem(f"expected a number or an object, got {type(item).__name__}")
        ts = received_at
        if mapping.ts_field in item:
            try:
                ts = parse_timestamp(item[mapping.ts_field])
            except ValueError as exc:
                raise PayloadProblem(f"field {mapping.ts_field!r}: {exc}") from exc
        quality = self._quality(mapping, item)
        if mapping.values_field in item:
            values = item[mapping.values_field]
            if not isinstance(values, dict) or not values:
                raise PayloadProblem(f"field {mapping.values_field!r} must be a non-empty object of key: number")
            readings = []
            problems = []
            for key, value in values.items():
                try:
                    readings.append(self._reading(mapping, topic, str(key), value, ts, quality))
                except PayloadProblem as exc:
                    problems.append(f"{key}: {exc}")
            for problem in problems:
                self.quarantine(topic, f"field {mapping.values_field!r} {problem}", json.dumps(values)[:300])
            return readings
        if mapping.value_field in item:
            return [self._reading(mapping, topic, None, item[mapping.value_field], ts, quality)]
        raise PayloadProblem(f"object has neither {mapping.value_field!r} nor {mapping.values_field!r}")

    def _quality(self, mapping: TopicMapping, item: dict) -> int:
        raw = item.get(mapping.quality_field, Quality.GOOD)
        if isinstance(raw, str):
            named = {"good": Quality.GOOD, "uncertain": Quality.UNCERTAIN, "bad": Quality.BAD}.get(raw.lower())
            if named is None:
                raise PayloadProblem(f"field {mapping.quality_field!r}: unknown quality {raw!r}")
            return named
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 255:
            raise PayloadProblem(f"field {mapping.quality_field!r}: quality {raw!r} is not 0..255 or good/uncertain/bad")
        return int(raw)

    def _reading(self, mapping: TopicMapping, topic: str, key: str | None, value: object, ts: datetime, quality: int) -> Reading:
        kind = type(value)
        if kind is not float and kind is not int:
            if kind is bool:
                value = float(value)
            else:
                raise PayloadProblem(f"value {value!r} is not a number")
        number = value * mapping.scale + mapping.offset if (mapping.scale != 1.0 or mapping.offset) else float(value)
        if not math.isfinite(number):
            raise PayloadProblem(f"value {value!r} is not finite")
        return Reading(self._tag(mapping, topic, key), ts, number, quality)

    def _tag(self, mapping: TopicMapping, topic: str, key: str | None) -> str:
        cache_key = (id(mapping), topic, key)
        tag = self._tag_cache.get(cache_key)
        if tag is None:
            tag = self._format_tag(mapping, topic, key)
            if len(self._tag_cache) < TAG_CACHE_SIZE:
                self._tag_cache[cache_key] = tag
        return tag

    def _format_tag(self, mapping: TopicMapping, topic: str, key: str | None) -> str:
        template = mapping.tag or ("{topic}" if key is None else "{topic}.{key}")
        try:
            tag = template.format(topic=topic.replace("/", "."), levels=topic.split("/"), key=key)
        except (IndexError, KeyError, AttributeError) as exc:
            raise PayloadProblem(f"tag template {template!r} does not fit topic {topic!r}: {exc}") from exc
        if not tag:
            raise PayloadProblem(f"tag template {template!r} gave an empty tag")
        return tag


# ----------------------------------------------------------------------------------------------
# Sparkplug B


SPARKPLUG_NAMESPACE = "spBv1.0"
CONTROL_PREFIXES = ("Node Control/", "Device Control/", "Properties/")
REBIRTH_METRIC = "Node Control/Rebirth"
REBIRTH_MIN_INTERVAL = 5.0  # seconds between rebirth requests to the same edge node


@dataclass
class _MetricState:
    tag: str
    datatype: DataType
    last_value: float | None = None


@dataclass
class _NodeState:
    bdseq: int | None = None
    next_seq: int | None = None
    online: bool = False
    aliases: dict[int, tuple[str | None, str]] = field(default_factory=dict)  # alias -> (device, metric)
    metrics: dict[tuple[str | None, str], _MetricState] = field(default_factory=dict)
    devices_online: set[str] = field(default_factory=set)
    last_rebirth_request: float = 0.0


class SparkplugHostConnector(MqttConnector):
    """A Sparkplug B host application: turns NBIRTH/DBIRTH/NDATA/DDATA into readings, tracks
    aliases and sequence numbers per edge node, marks metrics stale (a BAD-quality reading with
    the last value) on NDEATH/DDEATH, and asks an edge node to rebirth (NCMD
    ``Node Control/Rebirth``) when its sequence has a gap or it sends data we cannot place.

    Tags are ``group/node/metric`` or ``group/node/device/metric`` unless ``metric_map`` maps
    that path to another tag.
    """

    kind = "sparkplug_b"

    def __init__(
        self,
        name: str,
        sink: Sink,
        broker: BrokerConfig,
        *,
        group_id: str = "+",
        host_id: str | None = None,
        metric_map: Mapping[str, str] | None = None,
        **kwargs,
    ):
        super().__init__(name, sink, broker, **kwargs)
        self.group_id = group_id
        self.host_id = host_id
        self.metric_map = dict(metric_map or {})
        self.nodes: dict[tuple[str, str], _NodeState] = {}
        self.stale_tags: set[str] = set()
        self.sequence_gaps = 0
        self.rebirth_requests = 0
        self._state_lock = threading.Lock()

    def subscriptions(self) -> list[tuple[str, int]]:
        return [(f"{SPARKPLUG_NAMESPACE}/{self.group_id}/#", self.broker.qos)]

    def configure_client(self, client: mqtt.Client) -> None:
        if self.host_id:
            # Sparkplug 3.0 primary host STATE: edge nodes wait for "online" before publishing.
            client.will_set(self._state_topic(), json.dumps({"online": False, "timestamp": _now_ms()}), qos=1, retain=True)

    def after_connect(self, client: mqtt.Client) -> None:
        if self.host_id:
            client.publish(self._state_topic(), json.dumps({"online": True, "timestamp": _now_ms()}), qos=1, retain=True)

    def _state_topic(self) -> str:
        return f"{SPARKPLUG_NAMESPACE}/STATE/{self.host_id}"

    def tag_for(self, group: str, node: str, device: str | None, metric: str) -> str:
        path = "/".join(part for part in (group, node, device, metric) if part is not None)
        return self.metric_map.get(path, path)

    # -- message handling -------------------------------------------------------------------

    def handle_message(self, topic: str, payload: bytes, received_at: datetime) -> list[Reading]:
        parts = topic.split("/")
        if len(parts) < 4 or parts[0] != SPARKPLUG_NAMESPACE or parts[1] == "STATE":
            return []  # STATE and foreign topics are not data
        group, message_type, node = parts[1], parts[2], parts[3]
        device = "/".join(parts[4:]) or None
        if message_type in ("NCMD", "DCMD"):
            return []  # commands (including our own rebirth requests) carry no readings
        if message_type not in ("NBIRTH", "NDEATH", "DBIRTH", "DDEATH", "NDATA", "DDATA"):
            self.quarantine(topic, f"unknown Sparkplug message type {message_type!r}", payload)
            return []
        try:
            decoded = decode_payload(payload)
        except PayloadError as exc:
            self.quarantine(topic, str(exc), payload)
            return []
        with self._state_lock:
            handler = getattr(self, f"_on_{message_type.lower()}")
            readings = handler(topic, group, node, device, decoded, received_at)
            self.set_extra(
                stale_tags=len(self.stale_tags),
                nodes_online=sum(1 for state in self.nodes.values() if state.online),
                sequence_gaps=self.sequence_gaps,
                rebirth_requests=self.rebirth_requests,
            )
        return readings

    def _on_nbirth(self, topic, group, node, device, payload, received_at) -> list[Reading]:
        state = _NodeState(online=True)
        for metric in payload.metrics:
            if metric.name == "bdSeq":
                state.bdseq = int(metric.long_value or metric.int_value)
        state.next_seq = (int(payload.seq) + 1) % 256
        if int(payload.seq) != 0:
            self.note_error(f"{topic}: NBIRTH with seq {payload.seq}, expected 0")
        self.nodes[(group, node)] = state
        self._clear_stale(group, node, None)
        return self._birth_metrics(topic, group, node, None, state, payload, received_at)

    def _on_dbirth(self, topic, group, node, device, payload, received_at) -> list[Reading]:
        state = self._known_node(topic, group, node, payload)
        if state is None:
            return []
        self._check_seq(topic, group, node, state, payload)
        for key in [key for key in state.metrics if key[0] == device]:
            del state.metrics[key]  # a device rebirth replaces its metric definitions
        state.aliases = {alias: owner for alias, owner in state.aliases.items() if owner[0] != device}
        state.devices_online.add(device)
        self._clear_stale(group, node, device)
        return self._birth_metrics(topic, group, node, device, state, payload, received_at)

    def _on_ndata(self, topic, group, node, device, payload, received_at) -> list[Reading]:
        state = self._known_node(topic, group, node, payload)
        if state is None:
            return []
        self._check_seq(topic, group, node, state, payload)
        return self._data_metrics(topic, group, node, None, state, payload, received_at)

    def _on_ddata(self, topic, group, node, device, payload, received_at) -> list[Reading]:
        state = self._known_node(topic, group, node, payload)
        if state is None:
            return []
        self._check_seq(topic, group, node, state, payload)
        if device not in state.devices_online:
            self.quarantine(topic, f"DDATA from device {device!r} before its DBIRTH", payload.SerializeToString())
            self._request_rebirth(group, node, state, reason="data from an unborn device")
            return []
        return self._data_metrics(topic, group, node, device, state, payload, received_at)

    def _on_ndeath(self, topic, group, node, device, payload, received_at) -> list[Reading]:
        state = self.nodes.get((group, node))
        if state is None or not state.online:
            return []
        bdseq = next((int(m.long_value or m.int_value) for m in payload.metrics if m.name == "bdSeq"), None)
        if state.bdseq is not None and bdseq is not None and bdseq != state.bdseq:
            # A will from an older session of this node arriving late: the current session lives.
            logger.info("%s: NDEATH bdSeq %s does not match birth bdSeq %s; ignored", topic, bdseq, state.bdseq)
            return []
        state.online = False
        state.devices_online.clear()
        state.next_seq = None
        return self._mark_stale(state, None, _payload_time(payload, received_at), whole_node=True)

    def _on_ddeath(self, topic, group, node, device, payload, received_at) -> list[Reading]:
        state = self.nodes.get((group, node))
        if state is None or device not in state.devices_online:
            return []
        self._check_seq(topic, group, node, state, payload)
        state.devices_online.discard(device)
        return self._mark_stale(state, device, _payload_time(payload, received_at), whole_node=False)

    # -- helpers ----------------------------------------------------------------------------

    def _known_node(self, topic, group, node, payload) -> _NodeState | None:
        state = self.nodes.get((group, node))
        if state is None or not state.online:
            self.quarantine(topic, "message from an edge node without a current NBIRTH", payload.SerializeToString())
            state = self.nodes.setdefault((group, node), _NodeState())
            self._request_rebirth(group, node, state, reason="data before birth")
            return None
        return state

    def _check_seq(self, topic, group, node, state: _NodeState, payload) -> None:
        if not payload.HasField("seq"):
            self.note_error(f"{topic}: payload without seq")
            return
        seq = int(payload.seq)
        if state.next_seq is not None and seq != state.next_seq:
            self.sequence_gaps += 1
            self.note_error(f"{topic}: sequence gap, got seq {seq}, expected {state.next_seq}")
            self._request_rebirth(group, node, state, reason="sequence gap")
        state.next_seq = (seq + 1) % 256

    def _request_rebirth(self, group: str, node: str, state: _NodeState, *, reason: str) -> None:
        now = time.monotonic()
        if now - state.last_rebirth_request < REBIRTH_MIN_INTERVAL or self._client is None:
            return
        state.last_rebirth_request = now
        command = new_payload(timestamp_ms=_now_ms())
        encode_metric(command, name=REBIRTH_METRIC, datatype=DataType.Boolean, value=True)
        self._client.publish(f"{SPARKPLUG_NAMESPACE}/{group}/NCMD/{node}", command.SerializeToString(), qos=0)
        self.rebirth_requests += 1
        logger.info("requested a rebirth from %s/%s (%s)", group, node, reason)

    def _birth_metrics(self, topic, group, node, device, state: _NodeState, payload, received_at) -> list[Reading]:
        readings: list[Reading] = []
        for metric in payload.metrics:
            if not metric.name:
                self.quarantine(topic, "birth metric without a name", metric.SerializeToString())
                continue
            if metric.name == "bdSeq" or metric.name.startswith(CONTROL_PREFIXES):
                continue
            try:
                datatype = DataType(metric.datatype)
            except ValueError:
                self.quarantine(topic, f"metric {metric.name!r}: unknown datatype {metric.datatype}", metric.SerializeToString())
                continue
            metric_state = _MetricState(self.tag_for(group, node, device, metric.name), datatype)
            state.metrics[(device, metric.name)] = metric_state
            if metric.HasField("alias"):
                state.aliases[int(metric.alias)] = (device, metric.name)
            reading = self._reading(topic, metric, metric_state, payload, received_at)
            if reading is not None:
                readings.append(reading)
        return readings

    def _data_metrics(self, topic, group, node, device, state: _NodeState, payload, received_at) -> list[Reading]:
        readings: list[Reading] = []
        for metric in payload.metrics:
            if metric.name:
                key = (device, metric.name)
            elif metric.HasField("alias") and int(metric.alias) in state.aliases:
                key = state.aliases[int(metric.alias)]
            else:
                self.quarantine(topic, f"metric alias {metric.alias} was not defined in a birth", metric.SerializeToString())
                self._request_rebirth(group, node, state, reason="unknown alias")
                continue
            metric_state = state.metrics.get(key)
            if metric_state is None:
                if key[1].startswith(CONTROL_PREFIXES):
                    continue
                self.quarantine(topic, f"metric {key[1]!r} was not defined in a birth", metric.SerializeToString())
                self._request_rebirth(group, node, state, reason="unknown metric")
                continue
            reading = self._reading(topic, metric, metric_state, payload, received_at)
            if reading is not None:
                readings.append(reading)
        return readings

    def _reading(self, topic, metric, metric_state: _MetricState, payload, received_at) -> Reading | None:
        datatype = DataType(metric.datatype) if metric.datatype else metric_state.datatype
        value = metric_value(metric, datatype)
        if value.value is None:
            reason = "metric is null" if metric.is_null else f"datatype {datatype.name} is not numeric"
            self.quarantine(topic, f"metric {metric_state.tag!r}: {reason}", metric.SerializeToString())
            return None
        if not math.isfinite(value.value):
            self.quarantine(topic, f"metric {metric_state.tag!r}: value {value.value!r} is not finite", metric.SerializeToString())
            return None
        metric_state.last_value = value.value
        self.stale_tags.discard(metric_state.tag)
        ts = from_epoch_ms(metric.timestamp) if metric.timestamp else _payload_time(payload, received_at)
        return Reading(metric_state.tag, ts, value.value, _quality(value.quality))

    def _mark_stale(self, state: _NodeState, device: str | None, ts: datetime, *, whole_node: bool) -> list[Reading]:
        readings = []
        for (metric_device, _name), metric_state in state.metrics.items():
            if not whole_node and metric_device != device:
                continue
            self.stale_tags.add(metric_state.tag)
            if metric_state.last_value is not None:
                # The historian convention: the last value, now with BAD quality, at death time.
                readings.append(Reading(metric_state.tag, ts, metric_state.last_value, Quality.BAD))
        return readings

    def _clear_stale(self, group: str, node: str, device: str | None) -> None:
        prefix = "/".join(p for p in (group, node, device) if p is not None) + "/"
        self.stale_tags = {tag for tag in self.stale_tags if not tag.startswith(prefix)}


def _no_delay(client, userdata, sock) -> None:
    """Disable Nagle: PUBACKs are tiny, and Nagle may hold one back until the peer's delayed ACK,
    which stalls the broker's small QoS 1 in-flight window."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (e.g. websockets wrapper): nothing to tune
        pass


def _quality(code: int | None) -> int:
    """Sparkplug "Quality" property (OPC DA style) onto our three levels."""
    if code is None:
        return Quality.GOOD
    if 0 <= code <= 255:
        return {0xC0: Quality.GOOD, 0x40: Quality.UNCERTAIN}.get(code & 0xC0, Quality.BAD)
    return Quality.BAD  # e.g. Ignition's 500 "stale" and other vendor codes above 255


def _payload_time(payload, received_at: datetime) -> datetime:
    return from_epoch_ms(payload.timestamp) if payload.timestamp else received_at


def _now_ms() -> int:
    return int(time.time() * 1000)
