from __future__ import annotations

import asyncio
import threading

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from connectors.modbus import ModbusConnector, RegisterSpec, plan_reads
from connectors.records import Quality
from connectors.sink import MemorySink

C = ModbusTcpClient


def holding_registers() -> list[int]:
    regs = [0] * 20
    regs[0:1] = C.convert_to_registers(-5, C.DATATYPE.INT16)
    regs[1:2] = C.convert_to_registers(65000, C.DATATYPE.UINT16)
    regs[2:4] = C.convert_to_registers(-123456, C.DATATYPE.INT32, word_order="little")
    regs[4:6] = C.convert_to_registers(12.5, C.DATATYPE.FLOAT32)
    return regs


class ModbusServer:
    """A real pymodbus TCP server on loopback in its own event-loop thread."""

    def __init__(self, port: int):
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = None

    def start(self) -> None:
        device = SimDevice(
            id=1,
            simdata=(
                [SimData(0, values=[True, False, True], datatype=DataType.BITS)],  # coils
                [SimData(0, values=[False], datatype=DataType.BITS)],  # discrete inputs
                [SimData(0, values=holding_registers(), datatype=DataType.REGISTERS)],  # holding
                [SimData(0, values=[1000, 2000], datatype=DataType.REGISTERS)],  # input
            ),
        )

        async def serve():
            self.server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
            await self.server.listen()

        asyncio.run_coroutine_threadsafe(serve(), self.loop).result(5)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(5)

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def modbus_server():
    from socket import socket

    with socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ModbusServer(port)
    server.start()
    yield server
    server.close()


REGISTER_MAP = [
    RegisterSpec("pump.int16", 0, dtype="int16"),
    RegisterSpec("pump.uint16", 1, dtype="uint16"),
    RegisterSpec("pump.int32", 2, dtype="int32", word_order="little"),
    RegisterSpec("pump.float", 4, dtype="float32", scale=2.0, offset=1.0),
    RegisterSpec("pump.input", 1, table="input", scale=0.1),
    RegisterSpec("pump.running", 2, table="coil", dtype="bool"),
]


def test_register_map_is_decoded_with_types_word_order_scale_and_offset(modbus_server, running, wait_for):
    sink = MemorySink()
    connector = ModbusConnector("plc", sink, host="127.0.0.1", port=modbus_server.port, registers=REGISTER_MAP, period_s=0.1)
    with running(connector):
        assert wait_for(lambda: connector.polls >= 1)
    first = {}
    for reading in sorted(sink.readings.values(), key=lambda r: r.ts, reverse=True):
        first[reading.sensor] = reading.value
    assert first == {
        "pump.int16": -5.0,
        "pump.uint16": 65000.0,
        "pump.int32": -123456.0,
        "pump.float": 26.0,
        "pump.input": 200.0,
        "pump.running": 1.0,
    }
    assert all(r.quality == Quality.GOOD for r in sink.readings.values())


def test_polls_at_the_period_and_sees_new_values(modbus_server, running, wait_for):
    sink = MemorySink()
    connector = ModbusConnector(
        "plc", sink, host="127.0.0.1", port=modbus_server.port, registers=[RegisterSpec("t", 1)], period_s=0.05
    )
    with running(connector):
        assert wait_for(lambda: connector.polls >= 3)
        writer = ModbusTcpClient("127.0.0.1", port=modbus_server.port)
        writer.connect()
        assert not writer.write_register(1, 42, device_id=1).isError()
        writer.close()
        assert wait_for(lambda: any(r.value == 42.0 for r in sink.readings.values()))
    stamps = sorted(r.ts for r in sink.readings.values())
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])]
    assert min(gaps) > 0.02  # a schedule, not a busy loop


def test_refused_block_is_quarantined_and_other_blocks_still_deliver(modbus_server, running, wait_for):
    sink = MemorySink()
    registers = [RegisterSpec("ok", 0, dtype="int16"), RegisterSpec("missing", 500, table="input")]
    connector = ModbusConnector("plc", sink, host="127.0.0.1", port=modbus_server.port, registers=registers, period_s=0.1)
    with running(connector):
        assert wait_for(lambda: connector.polls >= 1)
    assert {r.sensor for r in sink.readings.values()} == {"ok"}
    assert connector.quarantined[0].origin.endswith("(missing)")
    assert "refused" in connector.quarantined[0].reason


def test_reconnects_after_the_server_restarts(modbus_server, running, wait_for):
    sink = MemorySink()
    connector = ModbusConnector(
        "plc", sink, host="127.0.0.1", port=modbus_server.port, registers=[RegisterSpec("t", 0, dtype="int16")], period_s=0.05
    )
    with running(connector):
        assert wait_for(lambda: connector.polls >= 1)
        modbus_server.stop()
        assert wait_for(lambda: connector.status().reconnects >= 1, timeout=10)
        polls_while_down = connector.polls
        modbus_server.start()
        assert wait_for(lambda: connector.polls > polls_while_down + 2, timeout=15)
    assert connector.status().last_error is not None


def test_plan_reads_merges_neighbours_and_respects_limits():
    specs = [RegisterSpec(f"r{i}", i * 2, dtype="float32") for i in range(100)]  # 200 registers
    blocks = plan_reads(specs + [RegisterSpec("far", 1000)])
    assert [(b.start, b.count) for b in blocks] == [(0, 124), (124, 76), (1000, 1)]


def test_bad_register_spec_says_what_is_wrong():
    with pytest.raises(ValueError, match="coil values are bits"):
        RegisterSpec("x", 0, table="coil", dtype="int16")
