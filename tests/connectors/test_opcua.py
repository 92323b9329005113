from __future__ import annotations

import asyncio
import logging
import threading
from socket import socket

import pytest
from asyncua import Server, ua

from connectors.opcua import NodeSpec, OpcUaConnector, quality_from_status
from connectors.records import Quality
from connectors.sink import MemorySink

NAMESPACE = "urn:phm:test"


class OpcUaTestServer:
    """A real asyncua server on loopback, in its own event-loop thread, restartable with the
    same node ids (as a PLC restart would be)."""

    def __init__(self, port: int):
        self.url = f"opc.tcp://127.0.0.1:{port}/phm/"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: Server | None = None
        self.temperature = None
        self.pressure = None

    def call(self, coroutine, timeout: float = 20):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self) -> None:
        if self.server is not None:
            # A restart of the endpoint: asyncua's address space is kept (building it takes
            # seconds), the sessions and subscriptions of all clients are gone, as after a PLC reboot.
            self.call(self.server.start())
            return

        async def start():
            server = Server()
            await server.init()
            server.set_endpoint(self.url)
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            idx = await server.register_namespace(NAMESPACE)
            pump = await server.nodes.objects.add_object(ua.NodeId("Pump101", idx), "Pump101")
            self.temperature = await pump.add_variable(ua.NodeId("Pump101.Temperature", idx), "Temperature", 20.0)
            self.pressure = await pump.add_variable(ua.NodeId("Pump101.Pressure", idx), "Pressure", 1.0)
            await server.start()
            self.server = server

        self.call(start())

    def write(self, variable, value: float, status=ua.StatusCodes.Good) -> None:
        data_value = ua.DataValue(ua.Variant(value, ua.VariantType.Double), StatusCode=ua.StatusCode(status))
        self.call(self.server.write_attribute_value(variable.nodeid, data_value))

    def stop(self) -> None:
        self.call(self.server.stop())

    def close(self) -> None:
        async def cancel_leftovers():
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.stop()
            self.call(cancel_leftovers())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


@pytest.fixture(scope="module")
def opcua_server_module():
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    with socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = OpcUaTestServer(port)
    server.start()
    yield server
    server.close()


@pytest.fixture
def opcua(opcua_server_module):
    # The server outlives each test: put its variables back to a known good state.
    opcua_server_module.write(opcua_server_module.temperature, 20.0)
    opcua_server_module.write(opcua_server_module.pressure, 1.0)
    return opcua_server_module


NODES = [
    NodeSpec("ns=2;s=Pump101.Temperature", "P101.temperature"),
    NodeSpec("ns=2;s=Pump101.Pressure", "P101.pressure", scale=100.0),
]


def connector_for(server, sink):
    return OpcUaConnector(
        "opcua-test", sink, url=server.url, nodes=NODES, publishing_interval_ms=50, sampling_interval_ms=20, timeout_s=2
    )


def values(sink, tag):
    return [(r.value, r.quality) for r in sorted(sink.readings.values(), key=lambda r: r.ts) if r.sensor == tag]


def test_data_changes_become_readings_with_status_as_quality(opcua, running, wait_for):
    sink = MemorySink()
    connector = connector_for(opcua, sink)
    with running(connector):
        assert wait_for(lambda: len(values(sink, "P101.pressure")) == 1)  # the initial value
        opcua.write(opcua.pressure, 1.0)
        opcua.write(opcua.temperature, 55.5)
        opcua.write(opcua.temperature, 56.0, ua.StatusCodes.UncertainLastUsableValue)
        opcua.write(opcua.pressure, 2.0, ua.StatusCodes.BadSensorFailure)
        assert wait_for(lambda: len(values(sink, "P101.temperature")) >= 3 and len(values(sink, "P101.pressure")) >= 2)
    assert values(sink, "P101.temperature")[-2:] == [(55.5, Quality.GOOD), (56.0, Quality.UNCERTAIN)]
    # A Bad status carries no usable value (the server sends none): the last value, flagged BAD.
    assert values(sink, "P101.pressure")[-1] == (100.0, Quality.BAD)


def test_subscription_resumes_after_the_server_restarts(opcua, running, wait_for):
    sink = MemorySink()
    connector = connector_for(opcua, sink)
    with running(connector):
        assert wait_for(lambda: connector.sessions == 1 and len(sink.readings) == 2)
        opcua.stop()
        assert wait_for(lambda: connector.status().reconnects >= 1, timeout=15)
        opcua.start()
        assert wait_for(lambda: connector.sessions >= 2, timeout=20)
        opcua.write(opcua.temperature, 77.0)
        assert wait_for(lambda: any(v == 77.0 for v, _ in values(sink, "P101.temperature")), timeout=10)
    assert connector.status().connected is False  # stopped at the end


def test_unknown_node_is_quarantined_and_the_others_still_deliver(opcua, running, wait_for):
    sink = MemorySink()
    nodes = [*NODES, NodeSpec("ns=2;s=NoSuchNode", "ghost")]
    connector = OpcUaConnector("opcua-test", sink, url=opcua.url, nodes=nodes, publishing_interval_ms=50)
    with running(connector):
        assert wait_for(lambda: len(sink.readings) == 2 and connector.status().rejected >= 1)
    assert connector.quarantined[0].origin == "ns=2;s=NoSuchNode"


def test_quality_from_status_severity():
    assert quality_from_status(ua.StatusCode(ua.StatusCodes.Good)) == Quality.GOOD
    assert quality_from_status(ua.StatusCode(ua.StatusCodes.UncertainInitialValue)) == Quality.UNCERTAIN
    assert quality_from_status(ua.StatusCode(ua.StatusCodes.BadCommunicationError)) == Quality.BAD
