from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from connectors.mqtt import BrokerConfig, MqttJsonConnector, TopicMapping
from connectors.records import Quality
from connectors.sink import MemorySink


@pytest.fixture
def publisher(mosquitto):
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect(*mosquitto)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def make_connector(mosquitto, prefix: str, mappings, sink=None):
    broker = BrokerConfig(host=mosquitto[0], port=mosquitto[1], client_id=f"test-{uuid.uuid4().hex[:8]}", clean_session=True)
    return MqttJsonConnector("json-test", sink or MemorySink(), broker, mappings)


def publish(client, topic: str, payload) -> None:
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    client.publish(topic, body, qos=1).wait_for_publish(5)


def test_single_and_multi_value_payloads_map_topics_to_tags(mosquitto, publisher, running, wait_for):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    sink = MemorySink()
    connector = make_connector(
        mosquitto,
        prefix,
        [
            TopicMapping(topic=f"{prefix}/+/temp", tag="{levels[1]}.temperature"),
            TopicMapping(topic=f"{prefix}/+/bulk", tag="{levels[1]}.{key}", scale=2.0),
        ],
        sink,
    )
    with running(connector):
        assert wait_for(lambda: connector.status().connected)
        publish(publisher, f"{prefix}/P101/temp", {"ts": "2024-05-01T10:00:00Z", "value": 41.5, "quality": 64})
        publish(publisher, f"{prefix}/P101/bulk", {"ts": 1714557600000, "values": {"flow": 3, "rpm": 1500}})
        publish(publisher, f"{prefix}/P102/temp", "12.5")
        assert wait_for(lambda: len(sink.readings) == 4)
    got = {(r.sensor, r.value, r.quality) for r in sink.readings.values()}
    assert ("P101.temperature", 41.5, Quality.UNCERTAIN) in got
    assert ("P101.flow", 6.0, Quality.GOOD) in got and ("P101.rpm", 3000.0, Quality.GOOD) in got
    assert any(tag == "P102.temperature" for tag, _, _ in got)
    ts = {r.sensor: r.ts for r in sink.readings.values()}
    assert ts["P101.flow"] == datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)


def test_malformed_payloads_are_quarantined_with_reason_and_the_connector_keeps_going(mosquitto, publisher, running, wait_for):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    sink = MemorySink()
    connector = make_connector(mosquitto, prefix, [TopicMapping(topic=f"{prefix}/#")], sink)
    with running(connector):
        assert wait_for(lambda: connector.status().connected)
        publish(publisher, f"{prefix}/a", b"{not json")
        publish(publisher, f"{prefix}/a", {"value": "high"})
        publish(publisher, f"{prefix}/a", {"ts": "yesterday", "value": 1})
        publish(publisher, f"{prefix}/a", {"value": 7})
        assert wait_for(lambda: len(sink.readings) == 1 and connector.status().rejected == 3)
    reasons = [item.reason for item in connector.quarantined]
    assert "not JSON" in reasons[0]
    assert "'high' is not a number" in reasons[1]
    assert "'ts'" in reasons[2]
    assert list(sink.readings.values())[0].value == 7.0
    assert connector.status().messages == 4


def test_redelivered_messages_collapse_as_duplicates(mosquitto, publisher, running, wait_for):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    sink = MemorySink()
    connector = make_connector(mosquitto, prefix, [TopicMapping(topic=f"{prefix}/x")], sink)
    with running(connector):
        assert wait_for(lambda: connector.status().connected)
        for _ in range(3):  # at-least-once delivery can hand us the same message again
            publish(publisher, f"{prefix}/x", {"ts": "2024-05-01T10:00:00Z", "value": 1})
        assert wait_for(lambda: connector.status().duplicate == 2)
    assert connector.status().accepted == 1 and len(sink.readings) == 1
