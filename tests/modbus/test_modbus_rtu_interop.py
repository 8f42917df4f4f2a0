"""Interop over Modbus RTU on a pseudo-terminal: the simulator devices behind firmware_sim.line (real
9600 8N1 wire timing) are read by pymodbus's serial client and by the Debian `mbpoll` tool, and both
see the values the simulator model reports; two unit ids share the line."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusSerialClient

from firmware_sim.devices.modbus import ModbusPrepaidMeter
from firmware_sim.line import Line, Wire

pytestmark = pytest.mark.integration

T0 = 1_760_000_000.0


@pytest.fixture
async def line() -> AsyncIterator[tuple[str, dict[int, ModbusPrepaidMeter]]]:
    meters = {u: ModbusPrepaidMeter(u, seed=5, start_time=T0) for u in (1, 2)}
    sim_line = Line(list(meters.values()), Wire(baud=9600, bits_per_char=10), clock=lambda: T0 + 30)
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(sim_line.serve_pty(ready.set_result), name="test-modbus-rtu-line")
    try:
        yield await asyncio.wait_for(ready, 5), meters
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_pymodbus_serial_client_reads_two_units(line) -> None:
    path, meters = line
    client = AsyncModbusSerialClient(path, baudrate=9600, parity="N", timeout=2, retries=0)
    assert await client.connect()
    try:
        for unit, meter in meters.items():
            expected = meter.values(T0 + 30)
            rr = await client.read_input_registers(0, count=35, device_id=unit)
            assert not rr.isError(), rr
            assert [r / 10 for r in rr.registers[:3]] == [expected[f"voltage_{p}_v"] for p in "abc"]
            current = client.convert_from_registers(rr.registers[4:6], client.DATATYPE.FLOAT32)
            assert current == pytest.approx(expected["current_a_a"], rel=1e-6)
        rr = await client.read_holding_registers(0x0FFF, count=2, device_id=1)
        assert rr.isError() and rr.exception_code == 2
    finally:
        client.close()
        await asyncio.sleep(0)


async def test_mbpoll_reads_over_rtu(line) -> None:
    path, meters = line
    proc = await asyncio.create_subprocess_exec(
        shutil.which("mbpoll") or "mbpoll",
        *("-m", "rtu", "-b", "9600", "-P", "none", "-a", "2", "-0", "-1", "-o", "2"),
        *("-t", "3", "-r", "0", "-c", "4", path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, out.decode()
    values = {int(r): int(v) for r, v in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", out.decode(), re.MULTILINE)}
    expected = meters[2].values(T0 + 30)
    assert [values[i] / 10 for i in range(3)] == [expected[f"voltage_{p}_v"] for p in "abc"]
    assert values[3] / 100 == expected["frequency_hz"]
