"""The gateway's Modbus driver against a pymodbus server (code no one here wrote), over Modbus TCP:
block reads decode to the documented values, an unmapped address is a named, counted device error, and
a coil write (relay command) lands in pymodbus's datastore."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from pathlib import Path

import pytest
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusTcpServer

from gateway.bus import Bus
from gateway.drivers.base import CommandRejected, DriverContext
from gateway.drivers.modbus.config import ModbusDevice
from gateway.drivers.modbus.driver import ModbusDriver
from gateway.errors import DeviceError
from gateway.line import LineSettings
from gridedge.services import free_port

pytestmark = pytest.mark.integration

MAP = """
model: test-meter
points:
  - {name: voltage_a_v, table: holding, address: 0, type: u16, scale: 0.1, unit: V}
  - {name: energy_import_kwh, table: holding, address: 2, type: f32, unit: kWh}
  - {name: balance_cny, table: holding, address: 4, type: u32, scale: 0.01, unit: CNY}
  - {name: relay_commanded, table: coil, address: 0, type: bit, unit: "", writable: true,
     values: {closed: 1, open: 0}}
"""


def registers() -> list[int]:
    energy = struct.unpack(">HH", struct.pack(">f", 1234.5))
    balance = 8850  # 88.50 CNY
    return [2301, 0, *energy, balance >> 16, balance & 0xFFFF]


@contextlib.asynccontextmanager
async def pymodbus_server(port: int):
    # pymodbus's datastore is 1-based: a block starting at 1 puts its first value at PDU address 0
    device = ModbusDeviceContext(
        hr=ModbusSequentialDataBlock(1, registers()), co=ModbusSequentialDataBlock(1, [True] * 8)
    )
    context = ModbusServerContext(devices={7: device}, single=False)
    server = ModbusTcpServer(context, address=("127.0.0.1", port))
    task = asyncio.create_task(server.serve_forever(), name="pymodbus:server")
    await asyncio.sleep(0.3)
    try:
        yield server
    finally:
        await server.shutdown()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_driver_reads_and_writes_a_pymodbus_server(tmp_path: Path) -> None:
    (tmp_path / "map.yaml").write_text(MAP)
    port = free_port()
    config = ModbusDevice(kind="modbus", id="pm-7", unit=7, map=str(tmp_path / "map.yaml"), framing="tcp")
    ctx = DriverContext("gw", lambda: int(time.time() * 1000), tmp_path, logging.getLogger("test"))
    async with pymodbus_server(port) as server, Bus("tcp", f"tcp://127.0.0.1:{port}", LineSettings(0)) as bus:
        driver = ModbusDriver(config, bus, ctx)
        result = await driver.poll()
        values = result.samples[0].values
        assert values["voltage_a_v"] == pytest.approx(230.1)
        assert values["energy_import_kwh"] == pytest.approx(1234.5)
        assert values["balance_cny"] == pytest.approx(88.5)
        assert values["relay_commanded"] == "closed"
        outcome = await driver.execute("trip", {})
        assert outcome.status == "done"
        assert await server.async_getValues(7, 1, 0, 1) == [False]  # coils, PDU address 0, in pymodbus
        assert outcome.state["relay_commanded"] == "open"
        # an address pymodbus does not hold: exception 02, named, and the bus keeps serving
        bad = ModbusDevice(kind="modbus", id="pm-bad", unit=7, map=str(tmp_path / "map.yaml"), framing="tcp")
        other = ModbusDriver(bad, bus, ctx)
        from protocols.modbus import ReadRequest

        with pytest.raises(DeviceError, match="ILLEGAL_DATA_ADDRESS"):
            await other.transact(ReadRequest(3, 500, 2))
        assert (await driver.poll()).samples[0].values["voltage_a_v"] == pytest.approx(230.1)


async def test_write_action_checks_the_point_before_the_bus(tmp_path: Path) -> None:
    (tmp_path / "map.yaml").write_text(MAP)
    port = free_port()
    config = ModbusDevice(kind="modbus", id="pm-7", unit=7, map=str(tmp_path / "map.yaml"), framing="tcp")
    ctx = DriverContext("gw", lambda: int(time.time() * 1000), tmp_path, logging.getLogger("test"))
    async with pymodbus_server(port) as server, Bus("tcp", f"tcp://127.0.0.1:{port}", LineSettings(0)) as bus:
        driver = ModbusDriver(config, bus, ctx)
        with pytest.raises(CommandRejected, match="not writable"):
            driver.check_command("write", {"point": "voltage_a_v", "value": 1.0})
        with pytest.raises(CommandRejected, match="no point"):
            driver.check_command("write", {"point": "nope", "value": 1})
        outcome = await driver.execute("write", {"point": "relay_commanded", "value": "open"})
        assert outcome.status == "done" and outcome.state["relay_commanded"] == "open"
        assert await server.async_getValues(7, 1, 0, 1) == [False]
