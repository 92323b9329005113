"""BufferedClient (paho with fewer system calls) against the real Mosquitto broker: every QoS 1
message of a burst arrives once, in order, and is acknowledged (the broker sends nothing again
to a persistent session that reconnects); and the paho internals it overrides still exist."""

from __future__ import annotations

import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from connectors.mqtt_client import OVERRIDDEN, BufferedClient


def test_the_paho_internals_it_overrides_exist():
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    missing = [name for name in OVERRIDDEN if not hasattr(client, name)]
    assert not missing, f"paho changed: {missing} are gone; re-check connectors/mqtt_client.py against the new version"


def _subscriber(client_id: str, topic: str, received: list, done: threading.Event, expected: int) -> BufferedClient:
    client = BufferedClient(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)

    def on_message(_client, _userdata, message):
        received.append(int(message.payload))
        if len(received) >= expected:
            done.set()

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    return client


def test_a_qos1_burst_arrives_once_in_order_and_is_acknowledged(mosquitto):
    topic, client_id, n = f"burst/{uuid.uuid4().hex[:8]}", f"buffered-{uuid.uuid4().hex[:8]}", 900  # under the shared broker's max_queued_messages (1000)
    received: list[int] = []
    done = threading.Event()
    subscriber = _subscriber(client_id, topic, received, done, n)
    subscriber.connect(*mosquitto)
    subscriber.loop_start()
    publisher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    publisher.max_inflight_messages_set(100)
    publisher.connect(*mosquitto)
    publisher.loop_start()
    try:
        for _ in range(50):  # subscribed before the burst starts
            if subscriber.is_connected():
                break
            threading.Event().wait(0.1)
        threading.Event().wait(0.3)
        infos = [publisher.publish(topic, str(i), qos=1) for i in range(n)]
        for info in infos:
            info.wait_for_publish(10)
        assert done.wait(30), f"received {len(received)} of {n}"
        assert received == list(range(n))
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()
        publisher.disconnect()
        publisher.loop_stop()
    # Same persistent session again: had any PUBACK been lost, the broker would redeliver now.
    again: list[int] = []
    redelivered = threading.Event()
    second = _subscriber(client_id, topic, again, redelivered, 1)
    second.connect(*mosquitto)
    second.loop_start()
    try:
        assert not redelivered.wait(1.5), f"the broker redelivered {len(again)} unacknowledged messages"
    finally:
        second.disconnect()
        second.loop_stop()
        cleaner = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        cleaner.connect(*mosquitto)
        cleaner.disconnect()


def test_per_filter_callbacks_still_get_their_topics(mosquitto):
    """The fast dispatch skips topic matching only while no per-filter callback is registered."""
    prefix = f"disp/{uuid.uuid4().hex[:8]}"
    general: list[str] = []
    filtered: list[str] = []
    both = threading.Event()
    client = BufferedClient(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"disp-{uuid.uuid4().hex[:8]}")

    def note(into: list[str]):
        def callback(_client, _userdata, message):
            into.append(message.topic)
            if general and filtered:
                both.set()
        return callback

    client.on_message = note(general)
    client.message_callback_add(f"{prefix}/alarms/#", note(filtered))
    client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/#", qos=1)
    client.connect(*mosquitto)
    client.loop_start()
    publisher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    publisher.connect(*mosquitto)
    publisher.loop_start()
    try:
        for _ in range(50):
            if client.is_connected():
                break
            threading.Event().wait(0.1)
        threading.Event().wait(0.3)
        publisher.publish(f"{prefix}/alarms/p101", b"1", qos=1).wait_for_publish(5)
        publisher.publish(f"{prefix}/values/p101", b"2", qos=1).wait_for_publish(5)
        assert both.wait(10)
        assert filtered == [f"{prefix}/alarms/p101"] and general == [f"{prefix}/values/p101"]
    finally:
        for c in (client, publisher):
            c.disconnect()
            c.loop_stop()
