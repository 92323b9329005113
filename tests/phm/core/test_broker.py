"""The embedded filesystem broker under concurrent producers and a consumer."""

from __future__ import annotations

import threading

from kombu import Connection, Exchange, Queue

import phm.broker


def transport_options(tmp_path) -> dict:
    for sub in ("queue", "processed", "control"):
        (tmp_path / sub).mkdir()
    return {
        "data_folder_in": str(tmp_path / "queue"),
        "data_folder_out": str(tmp_path / "queue"),
        "processed_folder": str(tmp_path / "processed"),
        "control_folder": str(tmp_path / "control"),
        "polling_interval": 0.01,
    }


def test_filesystem_alias_uses_the_atomic_transport():
    phm.broker.register()
    with Connection("filesystem://") as connection:
        assert isinstance(connection.transport, phm.broker.Transport)


def test_a_message_is_never_visible_half_written(tmp_path):
    phm.broker.register()
    options = transport_options(tmp_path)
    queue = Queue("stress", Exchange("stress", type="direct"), routing_key="stress")
    sent, producers = 600, 3
    errors: list[BaseException] = []

    def produce(worker: int) -> None:
        with Connection("filesystem://", transport_options=options) as connection:
            producer = connection.Producer()
            for i in range(sent // producers):
                producer.publish({"n": worker * 1000 + i, "pad": "x" * 20_000}, exchange=queue.exchange, routing_key="stress", declare=[queue])

    received: list[int] = []
    threads = [threading.Thread(target=produce, args=(w,)) for w in range(producers)]
    with Connection("filesystem://", transport_options=options) as connection:
        simple = connection.SimpleQueue(queue)
        for thread in threads:
            thread.start()
        try:
            while len(received) < sent:
                message = simple.get(timeout=30)  # a half-written file would raise JSONDecodeError here
                received.append(message.payload["n"])
                message.ack()
        except BaseException as exc:  # noqa: BLE001 - report any failure after joining the producers
            errors.append(exc)
        for thread in threads:
            thread.join()
    assert not errors, errors
    assert len(set(received)) == sent
