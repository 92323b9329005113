"""Shared helpers for connector tests: run a connector in a thread, wait for conditions, and
find the Mosquitto broker on loopback (tests that need it skip when it is not there)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

BROKER_HOST = "127.0.0.1"
BROKER_PORT = 1883


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


@contextmanager
def running(connector) -> Iterator[threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=connector.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(15)
        assert not thread.is_alive(), f"connector {connector.name} did not stop"


@pytest.fixture
def mosquitto() -> tuple[str, int]:
    if not port_open(BROKER_HOST, BROKER_PORT):
        pytest.skip("no MQTT broker on 127.0.0.1:1883 (start: mosquitto -d -c /etc/mosquitto/mosquitto.conf)")
    return BROKER_HOST, BROKER_PORT


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., bool]:
    return wait_for


@pytest.fixture(name="running")
def running_fixture():
    return running
