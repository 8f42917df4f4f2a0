"""Interop with Modbus masters no one here wrote: pymodbus's AsyncModbusTcpClient and the Debian
`mbpoll` tool read (and write) the simulator through firmware_sim/devices/modbus_tcp.py on a free
loopback port, and get the values the simulator model reports."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient

from firmware_sim.devices.modbus import ModbusPrepaidMeter
from firmware_sim.devices.modbus.tcp import serve_modbus_tcp
from firmware_sim.prepaid import RELAY_SETTLE_S
from protocols.modbus import MbapSplitter, build_mbap

pytestmark = pytest.mark.integration

T0 = 1_760_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, dict[int, ModbusPrepaidMeter], Clock]]:
    meters = {u: ModbusPrepaidMeter(u, seed=11, start_time=T0) for u in (3, 4)}
    clock = Clock(T0 + 100)
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_modbus_tcp(list(meters.values()), "127.0.0.1", 0, ready.set_result, clock=clock),
        name="test-modbus-tcp-server",
    )
    try:
        address = await asyncio.wait_for(ready, 5)
        assert address.startswith("tcp://127.0.0.1:")
        yield int(address.rsplit(":", 1)[1]), meters, clock
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def client(server) -> AsyncIterator[AsyncModbusTcpClient]:
    port, _, _ = server
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert await client.connect()
    try:
        yield client
    finally:
        client.close()
        await asyncio.sleep(0)


async def test_pymodbus_reads_the_simulator(server, client: AsyncModbusTcpClient) -> None:
    _, meters, clock = server
    expected = meters[3].values(clock.now)
    convert, dt = client.convert_from_registers, client.DATATYPE
    rr = await client.read_input_registers(0, count=35, device_id=3)
    assert not rr.isError(), rr
    regs = rr.registers
    assert convert(regs[0:1], dt.UINT16) / 10 == expected["voltage_a_v"]
    assert convert(regs[4:6], dt.FLOAT32) == pytest.approx(expected["current_a_a"], rel=1e-6)
    assert convert(regs[10:12], dt.FLOAT32) == pytest.approx(expected["power_active_kw"], rel=1e-6)
    assert convert(regs[12:13], dt.INT16) / 1000 == expected["power_factor"]
    assert convert(regs[14:16], dt.UINT32, word_order="little") / 100 == expected["energy_import_kwh"]
    assert convert(regs[24:26], dt.UINT32) / 100 == expected["balance_cny"]
    assert convert(regs[31:35], dt.UINT64) == expected["meter_time_s"]
    rr = await client.read_holding_registers(0x100C, count=4, device_id=3)
    assert convert(rr.registers, dt.FLOAT64) == expected["purchase_total_cny"]
    rr = await client.read_discrete_inputs(0, count=2, device_id=3)
    assert rr.bits[:2] == [expected["relay"] == "closed", expected["pre_trip_alarm"]]
    other = await client.read_input_registers(0, count=1, device_id=4)
    assert other.registers[0] / 10 == meters[4].values(clock.now)["voltage_a_v"]


async def test_pymodbus_writes_the_relay_coil(server, client: AsyncModbusTcpClient) -> None:
    _, meters, clock = server
    rr = await client.write_coil(0, False, device_id=3)
    assert not rr.isError(), rr
    clock.now += RELAY_SETTLE_S
    bits = (await client.read_discrete_inputs(0, count=1, device_id=3)).bits
    current = (await client.read_input_registers(4, count=2, device_id=3)).registers
    assert bits[0] is False and current == [0, 0]
    assert meters[3].values(clock.now)["relay"] == "open"
    assert meters[4].values(clock.now)["relay"] == "closed"


async def test_pymodbus_sees_named_exceptions(server, client: AsyncModbusTcpClient) -> None:
    _, meters, _ = server
    rr = await client.read_input_registers(0x0100, count=1, device_id=3)
    assert rr.isError() and rr.exception_code == 2  # ILLEGAL_DATA_ADDRESS
    rr = await client.read_input_registers(0, count=1, device_id=9)
    assert rr.isError() and rr.exception_code == 0x0B  # no such unit behind this gateway
    meters[3].inject("busy", count=1)
    rr = await client.read_input_registers(0, count=1, device_id=3)
    assert rr.isError() and rr.exception_code == 6  # SERVER_DEVICE_BUSY
    assert not (await client.read_input_registers(0, count=1, device_id=3)).isError()


async def mbpoll(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        shutil.which("mbpoll") or "mbpoll",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def mbpoll_values(output: str) -> dict[int, str]:
    return {int(ref): value for ref, value in re.findall(r"^\[(\d+)\]:\s+(\S+)", output, re.MULTILINE)}


async def test_mbpoll_reads_and_writes_the_simulator(server) -> None:
    port, meters, clock = server
    expected = meters[3].values(clock.now)
    common = ("-m", "tcp", "-p", str(port), "-a", "3", "-0", "-1", "-o", "2")
    volts = mbpoll_values(await mbpoll(*common, "-t", "3", "-r", "0", "-c", "3", "127.0.0.1"))
    assert [int(volts[i]) / 10 for i in range(3)] == [expected[f"voltage_{p}_v"] for p in "abc"]
    floats = mbpoll_values(await mbpoll(*common, "-t", "3:float", "-B", "-r", "4", "-c", "2", "127.0.0.1"))
    assert float(floats[4]) == pytest.approx(expected["current_a_a"], rel=1e-5)
    assert float(floats[6]) == pytest.approx(expected["current_b_a"], rel=1e-5)
    energy = mbpoll_values(await mbpoll(*common, "-t", "3:int", "-r", "14", "-c", "1", "127.0.0.1"))
    assert int(energy[14]) / 100 == expected["energy_import_kwh"]  # mbpoll's default: low word first
    await mbpoll(*common, "-t", "0", "-r", "1", "127.0.0.1", "1")  # keep-power coil on
    assert meters[3].values(clock.now)["keep_power"] is True
    coils = mbpoll_values(await mbpoll(*common, "-t", "0", "-r", "0", "-c", "2", "127.0.0.1"))
    assert coils == {0: "1", 1: "1"}


async def test_raw_mbap_broadcast_pipelining_and_bad_header(server) -> None:
    port, meters, clock = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        # unit 0: broadcast write (keep-power on) -> applied by both meters, no reply; then two
        # pipelined reads in one segment are both answered, in order, with their transaction ids
        writer.write(build_mbap(7, 0, bytes.fromhex("05 0001 FF00")))
        writer.write(
            build_mbap(8, 3, bytes.fromhex("01 0001 0001")) + build_mbap(9, 4, bytes.fromhex("01 0001 0001"))
        )
        await writer.drain()
        frames = MbapSplitter().feed(await asyncio.wait_for(reader.readexactly(2 * 10), 5))
        assert [(f.transaction_id, f.unit, f.pdu) for f in frames] == [
            (8, 3, b"\x01\x01\x01"),
            (9, 4, b"\x01\x01\x01"),
        ]
        assert all(m.values(clock.now)["keep_power"] is True for m in meters.values())
        writer.write(bytes.fromhex("0001 0002 0006 03 04 0000 0001"))  # protocol id 2: not Modbus
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the server drops the connection
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
