"""A device that stops answering in the middle of a poll costs its bus one timeout (and its retries),
not one per remaining item: the rest of the poll is marked `error` without asking, the values it did
answer are kept, and (DL/T 645) the clock check and back-fill wait for a poll it answers through.

This is what starved a live meter behind a dead one in the fault rig: the dead meter went silent just
after its first items, and each of its remaining items held the bus for a timeout plus a retry while
the live meter waited its turn (about 8 s at the default 0.6 s timeout and one retry)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from firmware_sim.device import SimReply
from firmware_sim.devices.dlt645 import Dlt645Meter
from firmware_sim.devices.modbus import ModbusPrepaidMeter
from gateway.bus import Bus
from gateway.drivers.base import DriverContext
from gateway.drivers.dlt645.config import Dlt645Device
from gateway.drivers.dlt645.driver import Dlt645Driver
from gateway.drivers.modbus.config import ModbusDevice
from gateway.drivers.modbus.driver import ModbusDriver
from gateway.line import LineSettings
from tests.gateway.helpers import sim_line

pytestmark = pytest.mark.integration

A1 = "000000000001"
TIMEOUT_MS = 300


class GoesSilent:
    """Answers its first `answers` requests, then nothing (a meter losing its supply mid-poll)."""

    def __init__(self, answers: int) -> None:
        self.left = answers
        self.asked = 0

    def wrap(self, device: Dlt645Meter | ModbusPrepaidMeter) -> None:
        respond = device.respond

        def silent_after(request: bytes, now: float) -> SimReply | None:
            reply = respond(request, now)
            if reply is None:
                return None
            self.asked += 1
            if self.left <= 0:
                return None
            self.left -= 1
            return reply

        device.respond = silent_after  # type: ignore[method-assign]


def context(tmp_path: Path) -> DriverContext:
    return DriverContext("gw", lambda: int(time.time() * 1000), tmp_path, logging.getLogger("test"))


async def test_dlt645_meter_silent_mid_poll_costs_one_timeout(tmp_path: Path) -> None:
    meter = Dlt645Meter(A1, seed=1, start_time=time.time())
    gone = GoesSilent(answers=2)
    gone.wrap(meter)
    items = [
        "energy_import_kwh",
        "voltage_a_v",
        "current_a_a",
        "power_active_kw",
        "balance_cny",
        "status_word_3",
    ]
    config = Dlt645Device(
        kind="dlt645", id=A1, address=A1, items=items, reply_timeout_ms=TIMEOUT_MS, retries=1
    )
    async with (
        sim_line([meter], baud=9600, parity="E") as (path, _line),
        Bus("b", path, LineSettings(9600, 8, "E", 1)) as bus,
    ):
        driver = Dlt645Driver(config, bus, context(tmp_path))
        started = time.monotonic()
        result = await driver.poll()
        elapsed = time.monotonic() - started
    sample = result.samples[0]
    assert {"energy_import_kwh", "voltage_a_v"} <= set(sample.values)  # what it answered is kept
    silent = {"current_a_a", "power_active_kw", "balance_cny"}
    assert silent <= {k for k, q in sample.quality.items() if q == "error"}
    assert not silent & set(sample.values)
    # asked: two answered items, then one item with its retry; never the three after it, nor the clock
    assert gone.asked == 4, f"{gone.asked} requests reached the meter"
    assert bus.stats.timeouts == 2
    assert elapsed < 2 * (2 * TIMEOUT_MS / 1000) + 0.5, f"{elapsed:.2f} s: one timeout per remaining item?"


async def test_modbus_meter_silent_mid_poll_costs_one_timeout(tmp_path: Path) -> None:
    meter = ModbusPrepaidMeter(7, seed=1, start_time=time.time())
    config = ModbusDevice(
        kind="modbus", id="mb-7", unit=7, map="gridedge-prepaid", reply_timeout_ms=TIMEOUT_MS, retries=1
    )
    gone = GoesSilent(answers=1)
    gone.wrap(meter)
    async with (
        sim_line([meter], baud=9600) as (path, _line),
        Bus("b", path, LineSettings(9600, 8, "N", 1)) as bus,
    ):
        driver = ModbusDriver(config, bus, context(tmp_path))
        assert len(driver.blocks) >= 3, "the test needs a map read in several blocks"
        result = await driver.poll()
    sample = result.samples[0]
    first, *rest = driver.blocks
    assert {p.name for p in first.points} <= set(sample.values)
    for block in rest:
        for point in block.points:
            assert sample.quality.get(point.name) == "error", point.name
    assert gone.asked == 3, f"{gone.asked} requests reached the meter"  # one block, then one and its retry
    assert bus.stats.timeouts == 2
