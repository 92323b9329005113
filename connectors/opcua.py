"""OPC UA subscriptions (asyncua): data change notifications for configured node ids become
readings, the status code becomes ``quality``, and a lost server is reconnected and resubscribed.

The client runs in its own asyncio loop inside the connector's thread. Each session: connect,
create one subscription, monitor every node; then watch the connection (asyncua's keep-alive
watchdog plus ``check_connection``). When the server goes away (restart, network), the session
is dropped and rebuilt after a backoff; the new subscription's initial notifications deliver
the current values, so the data resumes without a manual step.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from asyncua import Client, ua

from connectors.base import Backoff, Connector, utcnow
from connectors.records import Quality, Reading
from connectors.sink import Sink

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeSpec:
    node_id: str  # e.g. "ns=2;s=Pump101.Temperature" or "ns=2;i=1005"
    tag: str
    scale: float = 1.0
    offset: float = 0.0

    @classmethod
    def from_dict(cls, config: Mapping) -> NodeSpec:
        return cls(**config)


def quality_from_status(status: ua.StatusCode | int) -> int:
    """OPC UA severity (the top two bits of the status code) onto Good/Uncertain/Bad."""
    code = status.value if isinstance(status, ua.StatusCode) else int(status)
    severity = (code >> 30) & 0b11
    return {0: Quality.GOOD, 1: Quality.UNCERTAIN}.get(severity, Quality.BAD)


class _Handler:
    """asyncua subscription handler: called in the client's event loop."""

    def __init__(self, connector: OpcUaConnector):
        self.connector = connector

    def datachange_notification(self, node, value, data) -> None:
        self.connector._on_data_change(node, data.monitored_item.Value)

    def status_change_notification(self, status) -> None:
        self.connector.note_error(f"subscription status changed: {status}")


class OpcUaConnector(Connector):
    kind = "opcua"

    def __init__(
        self,
        name: str,
        sink: Sink,
        *,
        url: str,
        nodes: Sequence[NodeSpec],
        publishing_interval_ms: float = 250.0,
        sampling_interval_ms: float = 100.0,
        timeout_s: float = 4.0,
        flush_interval_s: float = 0.1,
        reconnect_max_s: float = 10.0,
        **kwargs,
    ):
        super().__init__(name, sink, **kwargs)
        if not nodes:
            raise ValueError("an OPC UA connector needs at least one node id")
        self.url = url
        self.nodes = list(nodes)
        self.publishing_interval_ms = publishing_interval_ms
        self.sampling_interval_ms = sampling_interval_ms
        self.timeout_s = timeout_s
        self.flush_interval_s = flush_interval_s
        self.reconnect_max_s = reconnect_max_s
        self._by_node_id: dict[str, NodeSpec] = {}
        self._last_value: dict[str, float] = {}
        self._buffer: list[Reading] = []
        self.sessions = 0  # successful (re)subscriptions; > 1 means it resumed after a loss

    def run(self, stop: threading.Event) -> None:
        asyncio.run(self._run(stop))

    async def _run(self, stop: threading.Event) -> None:
        backoff = Backoff(initial=0.5, maximum=self.reconnect_max_s)
        self.set_state("connecting")
        try:
            while not stop.is_set():
                try:
                    await self._session(stop)
                    backoff.reset()
                except (OSError, asyncio.TimeoutError, ua.UaError, ConnectionError) as exc:
                    self.note_reconnect(exc)
                await self._flush()
                if stop.is_set():
                    break
                await _sleep_unless_stopped(stop, backoff.next_delay())
        finally:
            await self._flush()
            self.set_state("stopped", connected=False)

    async def _session(self, stop: threading.Event) -> None:
        client = Client(self.url, timeout=self.timeout_s, watchdog_intervall=1.0)
        await client.connect()
        try:
            subscription = await client.create_subscription(self.publishing_interval_ms, _Handler(self))
            nodes = []
            self._by_node_id = {}
            for spec in self.nodes:
                node = client.get_node(spec.node_id)
                nodes.append(node)
                self._by_node_id[node.nodeid.to_string()] = spec
            results = await subscription.subscribe_data_change(nodes, sampling_interval=self.sampling_interval_ms)
            for spec, result in zip(self.nodes, results if isinstance(results, list) else [results], strict=True):
                if isinstance(result, ua.StatusCode):  # e.g. BadNodeIdUnknown: that node only
                    self.quarantine(spec.node_id, f"cannot monitor node: {result.name if hasattr(result, 'name') else result}")
            self.sessions += 1
            self.set_extra(sessions=self.sessions)
            self.set_state("running", connected=True)
            while not stop.is_set():
                await asyncio.sleep(self.flush_interval_s)
                await self._flush()
                await client.check_connection()  # raises once the keep-alive watchdog saw a loss
        finally:
            try:
                await asyncio.wait_for(client.disconnect(), timeout=2)
            except Exception:  # the server is usually gone already; the session is dropped anyway
                pass

    def _on_data_change(self, node, data_value: ua.DataValue) -> None:
        self.note_messages()
        node_id = node.nodeid.to_string()
        spec = self._by_node_id.get(node_id)
        if spec is None:
            self.quarantine(node_id, "notification for a node that is not configured")
            return
        quality = quality_from_status(data_value.StatusCode)
        raw = data_value.Value.Value if data_value.Value is not None else None
        if isinstance(raw, bool):
            raw = float(raw)
        if raw is None and quality == Quality.BAD and spec.tag in self._last_value:
            value = self._last_value[spec.tag]  # bad status without a value: keep the last one, flag it
        elif isinstance(raw, (int, float)):
            value = float(raw) * spec.scale + spec.offset
        elif raw is None:
            status = data_value.StatusCode.name if data_value.StatusCode else "?"
            self.quarantine(node_id, f"status {status} without a value, and no earlier value to flag")
            return
        else:
            self.quarantine(node_id, f"value {raw!r} ({type(raw).__name__}) is not a number", repr(data_value)[:300])
            return
        if not math.isfinite(value):
            self.quarantine(node_id, f"value {value!r} is not finite")
            return
        ts = data_value.SourceTimestamp or data_value.ServerTimestamp
        ts = _aware(ts) if ts is not None else utcnow()
        self._last_value[spec.tag] = value
        self._buffer.append(Reading(spec.tag, ts, value, quality))

    async def _flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            # The sink blocks (a database write): keep the event loop free for keep-alives.
            await asyncio.to_thread(self.deliver_readings, batch, origin=self.url)
        except Exception as exc:  # sink down without a spool: keep the readings for the next flush
            self.note_error(exc)
            self._buffer = batch + self._buffer


async def _sleep_unless_stopped(stop: threading.Event, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not stop.is_set() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
