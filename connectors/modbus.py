"""Modbus TCP polling (pymodbus): a register map read at a fixed period.

Registers of one device and table are merged into as few requests as the protocol allows
(125 registers / 2000 bits per read, short gaps bridged), decoded with pymodbus'
``convert_from_registers`` (int16/uint16/int32/uint32/int64/uint64/float32/float64, big or
little word order) and turned into readings ``raw * scale + offset``. A read that the device
refuses (an exception response such as "illegal data address") quarantines the registers of
that block with the reason; the other blocks still deliver. A lost connection is retried with
backoff.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from connectors.base import Backoff, Connector, utcnow
from connectors.records import Quality, Reading
from connectors.sink import Sink

Table = Literal["holding", "input", "coil", "discrete"]
Dtype = Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool"]

REGISTER_COUNT = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4, "float32": 2, "float64": 4}
MAX_REGISTERS_PER_READ = 125  # Modbus application protocol limit for function codes 3/4
MAX_BITS_PER_READ = 2000  # ... and for function codes 1/2
MAX_GAP = 8  # read across up to this many unused addresses rather than issue another request


@dataclass(frozen=True)
class RegisterSpec:
    """One value in the device's register map."""

    tag: str
    address: int  # 0-based protocol address (register 40001 is holding address 0)
    table: Table = "holding"
    dtype: Dtype = "uint16"
    word_order: Literal["big", "little"] = "big"  # which register holds the high word
    scale: float = 1.0
    offset: float = 0.0
    device_id: int = 1

    def __post_init__(self) -> None:
        if self.table not in ("holding", "input", "coil", "discrete"):
            raise ValueError(f"register {self.tag!r}: unknown table {self.table!r}")
        bit_table = self.table in ("coil", "discrete")
        if bit_table and self.dtype != "bool":
            raise ValueError(f"register {self.tag!r}: {self.table} values are bits, dtype must be 'bool'")
        if not bit_table and self.dtype not in REGISTER_COUNT:
            raise ValueError(f"register {self.tag!r}: unknown dtype {self.dtype!r}; use one of {sorted(REGISTER_COUNT)}")
        if self.word_order not in ("big", "little"):
            raise ValueError(f"register {self.tag!r}: word_order must be 'big' or 'little'")
        if not 0 <= self.address <= 65535:
            raise ValueError(f"register {self.tag!r}: address {self.address} outside 0..65535")

    @property
    def width(self) -> int:
        return 1 if self.dtype == "bool" else REGISTER_COUNT[self.dtype]

    @classmethod
    def from_dict(cls, config: Mapping) -> RegisterSpec:
        return cls(**config)


@dataclass(frozen=True)
class ReadBlock:
    """One Modbus request covering several register specs."""

    device_id: int
    table: Table
    start: int
    count: int
    specs: tuple[RegisterSpec, ...]

    def describe(self) -> str:
        return f"device {self.device_id} {self.table} {self.start}..{self.start + self.count - 1}"


def plan_reads(specs: Sequence[RegisterSpec]) -> list[ReadBlock]:
    """Group specs into the fewest requests the protocol limits allow."""
    blocks: list[ReadBlock] = []
    groups: dict[tuple[int, str], list[RegisterSpec]] = {}
    for spec in specs:
        groups.setdefault((spec.device_id, spec.table), []).append(spec)
    for (device_id, table), members in sorted(groups.items()):
        limit = MAX_BITS_PER_READ if table in ("coil", "discrete") else MAX_REGISTERS_PER_READ
        members.sort(key=lambda s: s.address)
        current: list[RegisterSpec] = []
        start = end = 0
        for spec in members:
            spec_end = spec.address + spec.width
            if current and spec.address - end <= MAX_GAP and spec_end - start <= limit:
                current.append(spec)
                end = max(end, spec_end)
                continue
            if current:
                blocks.append(ReadBlock(device_id, table, start, end - start, tuple(current)))
            current, start, end = [spec], spec.address, spec_end
        if current:
            blocks.append(ReadBlock(device_id, table, start, end - start, tuple(current)))
    return blocks


class ModbusConnector(Connector):
    kind = "modbus"

    def __init__(
        self,
        name: str,
        sink: Sink,
        *,
        host: str,
        registers: Sequence[RegisterSpec],
        port: int = 502,
        period_s: float = 1.0,
        timeout_s: float = 2.0,
        **kwargs,
    ):
        super().__init__(name, sink, **kwargs)
        if not registers:
            raise ValueError("a Modbus connector needs at least one register")
        if period_s <= 0:
            raise ValueError(f"period_s must be positive, got {period_s}")
        tags = [spec.tag for spec in registers]
        if len(set(tags)) != len(tags):
            raise ValueError("register tags must be unique")
        self.host = host
        self.port = port
        self.period_s = period_s
        self.timeout_s = timeout_s
        self.registers = list(registers)
        self.blocks = plan_reads(self.registers)
        self.polls = 0

    def run(self, stop: threading.Event) -> None:
        backoff = Backoff(initial=0.5, maximum=30.0)
        # pymodbus' own retries are off: reconnecting is this loop's job, with our backoff.
        client = ModbusTcpClient(self.host, port=self.port, timeout=self.timeout_s, retries=0)
        self.set_state("connecting")
        try:
            while not stop.is_set():
                if not client.connected and not client.connect():
                    self.note_reconnect(f"cannot connect to {self.host}:{self.port}")
                    if backoff.wait(stop):
                        return
                    continue
                self.set_state("running", connected=True)
                backoff.reset()
                next_poll = time.monotonic()
                while not stop.is_set():
                    try:
                        self.poll_once(client)
                    except (ModbusException, OSError) as exc:
                        client.close()
                        self.note_reconnect(exc)
                        break
                    # A fixed schedule, not "sleep period after the poll": polls do not drift.
                    next_poll += self.period_s
                    delay = next_poll - time.monotonic()
                    if delay < 0:
                        next_poll = time.monotonic()  # fell behind: skip the missed slots
                        delay = 0
                    if stop.wait(delay):
                        return
                if backoff.wait(stop):
                    return
        finally:
            client.close()
            self.set_state("stopped", connected=False)

    def poll_once(self, client: ModbusTcpClient) -> list[Reading]:
        """Read every block once and deliver; raises ModbusException/OSError on a lost link."""
        readings: list[Reading] = []
        for block in self.blocks:
            ts = utcnow()
            response = self._read(client, block)
            self.note_messages()
            if response.isError():
                for spec in block.specs:
                    self.quarantine(f"{block.describe()} ({spec.tag})", f"device refused the read: {response}")
                continue
            readings.extend(self._decode(client, block, response, ts))
        self.polls += 1
        self.set_extra(polls=self.polls)
        self.deliver_readings(readings, origin=f"modbus {self.host}:{self.port}")
        return readings

    def _read(self, client: ModbusTcpClient, block: ReadBlock):
        readers = {
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
            "coil": client.read_coils,
            "discrete": client.read_discrete_inputs,
        }
        return readers[block.table](block.start, count=block.count, device_id=block.device_id)

    def _decode(self, client: ModbusTcpClient, block: ReadBlock, response, ts) -> list[Reading]:
        readings = []
        for spec in block.specs:
            lo = spec.address - block.start
            if spec.dtype == "bool":
                raw = float(bool(response.bits[lo]))
            else:
                words = response.registers[lo : lo + spec.width]
                datatype = getattr(client.DATATYPE, spec.dtype.upper())
                raw = float(client.convert_from_registers(words, datatype, word_order=spec.word_order))
            value = raw * spec.scale + spec.offset
            if not math.isfinite(value):
                self.quarantine(f"{block.describe()} ({spec.tag})", f"decoded value {raw!r} is not finite")
                continue
            readings.append(Reading(spec.tag, ts, value, Quality.GOOD))
        return readings
