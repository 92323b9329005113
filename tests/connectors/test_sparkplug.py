from __future__ import annotations

import threading
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from connectors.mqtt import BrokerConfig, SparkplugHostConnector
from connectors.records import Quality
from connectors.sink import MemorySink
from connectors.sparkplug_b import DataType, decode_payload, encode_metric, new_payload

T0 = 1_714_557_600_000  # 2024-05-01T10:00:00Z in ms


class EdgeNode:
    """A minimal Sparkplug B edge node publishing through a real paho client."""

    def __init__(self, client: mqtt.Client, group: str, node: str):
        self.client, self.group, self.node = client, group, node
        self.seq = 0
        self.commands: list = []
        self.got_command = threading.Event()
        client.message_callback_add(f"spBv1.0/{group}/NCMD/{node}", self._on_command)
        client.subscribe(f"spBv1.0/{group}/NCMD/{node}", qos=0)

    def _on_command(self, client, userdata, message):
        self.commands.append(decode_payload(message.payload))
        self.got_command.set()

    def send(self, kind: str, metrics: list[dict], *, device: str | None = None, seq: int | None = None, ts: int = T0):
        payload = new_payload(timestamp_ms=ts, seq=self.seq if seq is None else seq)
        self.seq = ((self.seq if seq is None else seq) + 1) % 256
        for metric in metrics:
            encode_metric(payload, **metric)
        topic = f"spBv1.0/{self.group}/{kind}/{self.node}" + (f"/{device}" if device else "")
        self.client.publish(topic, payload.SerializeToString(), qos=1).wait_for_publish(5)

    def birth(self, bdseq: int = 1):
        self.seq = 0
        self.send(
            "NBIRTH",
            [
                {"name": "bdSeq", "datatype": DataType.Int64, "value": bdseq},
                {"name": "Node Control/Rebirth", "datatype": DataType.Boolean, "value": False},
                {"name": "Supply/Voltage", "alias": 1, "datatype": DataType.Float, "value": 230.0},
            ],
        )

    def device_birth(self, device: str):
        self.send(
            "DBIRTH",
            [
                {"name": "Temperature", "alias": 2, "datatype": DataType.Double, "value": 40.0},
                {"name": "Vibration", "alias": 3, "datatype": DataType.Int16, "value": -3, "quality": 192},
            ],
            device=device,
        )


@pytest.fixture
def edge(mosquitto):
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"edge-{uuid.uuid4().hex[:8]}")
    client.connect(*mosquitto)
    client.loop_start()
    node = EdgeNode(client, group=f"g{uuid.uuid4().hex[:6]}", node="edge1")
    yield node
    client.disconnect()
    client.loop_stop()


def host(mosquitto, edge, sink):
    broker = BrokerConfig(host=mosquitto[0], port=mosquitto[1], client_id=f"host-{uuid.uuid4().hex[:8]}", clean_session=True)
    return SparkplugHostConnector("spb", sink, broker, group_id=edge.group)


def values(sink, tag):
    return sorted((r.ts, r.value, r.quality) for r in sink.readings.values() if r.sensor == tag)


def test_births_define_aliases_and_data_by_alias_becomes_readings(mosquitto, edge, running, wait_for):
    sink = MemorySink()
    connector = host(mosquitto, edge, sink)
    with running(connector):
        assert wait_for(lambda: connector.status().connected)
        edge.birth()
        edge.device_birth("pump1")
        edge.send("NDATA", [{"alias": 1, "datatype": DataType.Float, "value": 231.5, "timestamp_ms": T0 + 1000}])
        edge.send("DDATA", [{"alias": 3, "datatype": DataType.Int16, "value": -7, "timestamp_ms": T0 + 1000}], device="pump1")
        assert wait_for(lambda: len(sink.readings) == 5)
    g = edge.group
    assert [v for _, v, _ in values(sink, f"{g}/edge1/Supply/Voltage")] == [230.0, 231.5]
    assert [v for _, v, _ in values(sink, f"{g}/edge1/pump1/Vibration")] == [-3.0, -7.0]
    assert values(sink, f"{g}/edge1/pump1/Temperature")[0][1] == 40.0
    assert not any("Node Control" in r.sensor or "bdSeq" in r.sensor for r in sink.readings.values())
    assert connector.status().rejected == 0 and connector.sequence_gaps == 0


def test_sequence_gap_requests_a_rebirth(mosquitto, edge, running, wait_for):
    sink = MemorySink()
    connector = host(mosquitto, edge, sink)
    with running(connector):
        assert wait_for(lambda: connector.status().connected)
        edge.birth()
        edge.send("NDATA", [{"alias": 1, "datatype": DataType.Float, "value": 1.0, "timestamp_ms": T0 + 1}], seq=5)
        assert edge.got_command.wait(5)
    command = edge.commands[0]
    assert command.metrics[0].name == "Node Control/Rebirth" and command.metrics[0].boolean_value is True
    assert connector.sequence_gaps == 1
    assert "sequence gap" in connector.status().last_error


def test_data_before_birth_is_quarantined_and_triggers_rebirth(mosquitto, edge, running, wait_for):
    sink = MemorySink()
    connector = host(mosquitto, edge, sink)
    with running(connector):
        assert wait_for(lambda: connector.status().connected)
        edge.send("NDATA", [{"alias": 1, "datatype": DataType.Float, "value": 1.0}], seq=4)
        assert edge.got_command.wait(5)
        assert wait_for(lambda: connector.status().rejected == 1)
    assert "without a current NBIRTH" in connector.quarantined[0].reason
    assert len(sink.readings) == 0


def test_node_death_marks_its_metrics_stale_with_bad_quality(mosquitto, edge, running, wait_for):
    sink = MemorySink()
    connector = host(mosquitto, edge, sink)
    g = edge.group
    with running(connector):
        assert wait_for(lambda: connector.status().connected)
        edge.birth(bdseq=4)
        edge.device_birth("pump1")
        assert wait_for(lambda: len(sink.readings) == 3)
        edge.send("NDEATH", [{"name": "bdSeq", "datatype": DataType.Int64, "value": 3}], ts=T0 + 5000)  # old session
        edge.send("NDEATH", [{"name": "bdSeq", "datatype": DataType.Int64, "value": 4}], ts=T0 + 9000)
        assert wait_for(lambda: len(sink.readings) == 6)
    assert connector.stale_tags == {f"{g}/edge1/Supply/Voltage", f"{g}/edge1/pump1/Temperature", f"{g}/edge1/pump1/Vibration"}
    last_voltage = values(sink, f"{g}/edge1/Supply/Voltage")[-1]
    assert last_voltage[1:] == (230.0, Quality.BAD)
    assert last_voltage[0].timestamp() == (T0 + 9000) / 1000  # the matching death, not the stale one
    assert connector.status().extra["nodes_online"] == 0


def test_garbage_payload_is_quarantined(mosquitto, edge, running, wait_for):
    sink = MemorySink()
    connector = host(mosquitto, edge, sink)
    with running(connector):
        assert wait_for(lambda: connector.status().connected)
        edge.client.publish(f"spBv1.0/{edge.group}/NDATA/edge1", b"\xff\xff\xff", qos=1).wait_for_publish(5)
        assert wait_for(lambda: connector.status().rejected == 1)
    assert "not a Sparkplug B protobuf payload" in connector.quarantined[0].reason
