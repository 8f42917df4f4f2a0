"""The DL/T 645 driver on a real pty against paced simulated meters at 2400 8E1: values, quality,
commands (trip / keep-power refusal / close), follow-up frames, and a silent meter."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from firmware_sim.devices.dlt645 import Dlt645Meter
from gateway.bus import Bus
from gateway.drivers.base import DriverContext
from gateway.drivers.dlt645.config import Dlt645Device
from gateway.drivers.dlt645.driver import Dlt645Driver
from gateway.errors import GatewayError, ResponseTimeout
from gateway.line import LineSettings
from protocols.dlt645 import Credentials
from tests.gateway.helpers import sim_line

pytestmark = pytest.mark.integration

A1, A2 = "000000000001", "000000000002"


def driver(bus: Bus, address: str, tmp_path: Path, **extra) -> Dlt645Driver:
    config = Dlt645Device(kind="dlt645", id=address, address=address, reply_timeout_ms=400, **extra)
    ctx = DriverContext("gw", lambda: int(time.time() * 1000), tmp_path, logging.getLogger("test"))
    return Dlt645Driver(config, bus, ctx)


async def test_poll_reads_canonical_values_and_marks_refused_items(tmp_path: Path) -> None:
    meters = [Dlt645Meter(a, seed=i, start_time=time.time()) for i, a in enumerate((A1, A2))]
    async with (
        sim_line(meters, baud=2400, parity="E") as (path, _line),
        Bus("b", path, LineSettings(2400, 8, "E", 1)) as bus,
    ):
        items = ["energy_import_kwh", "voltage_a_v", "balance_cny", "status_word_3", "00900100"]
        d1 = driver(bus, A1, tmp_path, items=items)
        started = time.monotonic()
        result = await d1.poll()
        elapsed = time.monotonic() - started
        values = result.samples[0].values
        truth = meters[0].values(time.time())
        assert values["energy_import_kwh"] == pytest.approx(truth["energy_import_kwh"], abs=0.02)
        assert values["voltage_a_v"] == pytest.approx(truth["voltage_a_v"], abs=0.2)
        assert values["balance_cny"] == pytest.approx(truth["balance_cny"], abs=0.02)
        assert values["relay"] == "closed" and values["keep_power"] is False
        # 00900100 (remaining kWh) is not kept by a money meter: "no requested data", only it is an error
        assert result.samples[0].quality == {"balance_kwh": "error"}
        # honest timing: five request/reply pairs at 2400 baud cannot take less than their wire time
        assert elapsed >= Dlt645Driver.poll_airtime_s(d1.cfg, bus.line) * 0.5
        meters[0].inject("refuse", 1)
        result = await d1.poll()
        assert result.samples[0].quality == {"energy_import_kwh": "error", "balance_kwh": "error"}
        assert "voltage_a_v" in result.samples[0].values


async def test_trip_keep_power_and_close(tmp_path: Path) -> None:
    creds = Credentials(2, "123456")
    meter = Dlt645Meter(A1, seed=3, start_time=time.time(), credentials=creds)
    async with (
        sim_line([meter], baud=2400, parity="E") as (path, _line),
        Bus("b", path, LineSettings(2400, 8, "E", 1)) as bus,
    ):
        d = driver(bus, A1, tmp_path, control=True, password="123456", password_level=2)
        outcome = await d.execute("trip", {})
        assert outcome.status == "done", outcome.reason
        assert outcome.state["relay_commanded"] == "open"
        assert (await d.execute("keep_power_on", {})).status == "done"
        assert (await d.execute("close", {})).status == "done"
        refused = await d.execute("trip", {})
        assert refused.status == "failed" and "refused" in refused.reason
        wrong = driver(bus, A1, tmp_path, control=True, password="000000", password_level=2)
        denied = await wrong.execute("keep_power_off", {})
        assert denied.status == "failed" and "unauthorized" in denied.reason
        no_control = driver(bus, A1, tmp_path)
        with pytest.raises(Exception, match="not enabled"):
            no_control.check_command("trip", {})


async def test_a_silent_meter_fails_fast(tmp_path: Path) -> None:
    meters = [Dlt645Meter(A1, seed=1, start_time=time.time())]
    async with (
        sim_line(meters, baud=2400, parity="E") as (path, _line),
        Bus("b", path, LineSettings(2400, 8, "E", 1)) as bus,
    ):
        d2 = driver(bus, A2, tmp_path, retries=0)
        started = time.monotonic()
        with pytest.raises(ResponseTimeout):
            await d2.poll()
        assert time.monotonic() - started < 1.5, "one timeout, not one per item"


@pytest.mark.parametrize("blocks", [True, False], ids=["meter-serves-blocks", "meter-without-blocks"])
async def test_block_items_fall_back_to_single_items(tmp_path: Path, blocks: bool) -> None:
    meter = Dlt645Meter(A1, seed=5, start_time=time.time(), blocks=blocks)
    line = LineSettings(2400, 8, "E", 1)
    async with sim_line([meter], baud=2400, parity="E") as (path, _line), Bus("b", path, line) as bus:
        d = driver(bus, A1, tmp_path, items=["0201FF00", "0001FF00", "balance_cny"])
        first = await d.poll()
        after_first = bus.stats.transactions
        second = await d.poll()
        per_poll = bus.stats.transactions - after_first
    for result in (first, second):
        values = result.samples[0].values
        expected = {
            "voltage_a_v",
            "voltage_b_v",
            "voltage_c_v",
            "energy_import_kwh",
            "energy_import_t1_kwh",
            "energy_import_t4_kwh",
            "balance_cny",
        }
        assert expected <= set(values), values
        assert not result.samples[0].quality
    if blocks:
        assert per_poll == 3 and meter.stats["unknown_di"] == 0
    else:
        # 3 voltages + total and 4 tariffs + balance, and the blocks are not asked again
        assert per_poll == 9 and meter.stats["unknown_di"] == 2


async def test_read_set_time_and_raw_control_actions(tmp_path: Path) -> None:
    meter = Dlt645Meter(A1, seed=6, start_time=time.time())
    meter.physics.clock_skew_s = 40.0
    line = LineSettings(2400, 8, "E", 1)
    async with sim_line([meter], baud=2400, parity="E") as (path, _line), Bus("b", path, line) as bus:
        d = driver(bus, A1, tmp_path, control=True, password="123456")
        read = await d.execute("read", {"di": "00010000"})
        assert read.status == "done" and read.answer["di"] == "00010000"
        assert read.answer["values"]["energy_import_kwh"] == pytest.approx(
            meter.values(time.time())["energy_import_kwh"], abs=0.02
        )
        with pytest.raises(Exception, match="neither"):
            d.check_command("read", {"item": "no_such_item"})
        assert (await d.execute("set_time", {})).status == "done"
        await asyncio.sleep(0.6)
        assert abs(meter.physics.clock_skew_s) < 2, "the meter took the gateway's time"
        raw = await d.execute("raw_control", {"ciphertext": "00" * 16, "level": 98})
        assert raw.status == "failed" and "refused" in raw.reason  # a plaintext meter has no ESAM


@pytest.mark.parametrize("synchronised", [True, False], ids=["ntp-synced", "clock-unknown"])
async def test_meter_clock_skew_is_published_and_corrected_only_from_a_synced_clock(
    tmp_path: Path, synchronised: bool
) -> None:
    meter = Dlt645Meter(A1, seed=8, start_time=time.time())
    meter.physics.clock_skew_s = 125.0
    meter.physics.drift_s_per_day = 0.0
    line = LineSettings(2400, 8, "E", 1)
    async with sim_line([meter], baud=2400, parity="E") as (path, _line), Bus("b", path, line) as bus:
        config = Dlt645Device(
            kind="dlt645",
            id=A1,
            address=A1,
            items=["energy_import_kwh"],
            clock_check_s=1,
            reply_timeout_ms=400,
        )
        ctx = DriverContext(
            "gw",
            lambda: int(time.time() * 1000),
            tmp_path,
            logging.getLogger("test"),
            clock_synchronised=lambda: synchronised,
        )
        d = Dlt645Driver(config, bus, ctx)
        first = await d.poll()
        assert first.samples[0].values["meter_clock_skew_s"] == pytest.approx(125, abs=2)
        events = [e.kind.value for e in first.events]
        assert events == (["clock_set"] if synchronised else [])
        await asyncio.sleep(1.5)
        second = await d.poll()
    expected = 0 if synchronised else 125
    assert second.samples[0].values["meter_clock_skew_s"] == pytest.approx(expected, abs=2)
    assert not second.events


async def test_a_meter_answering_for_another_address_is_never_taken_for_it(tmp_path: Path) -> None:
    """issue 11: a device that answers for another address (wrong address programmed, two meters on one
    address). Its replies must not be booked to the meter asked, nor to the one they name."""
    meter = Dlt645Meter(A1, seed=5, start_time=time.time())
    line = LineSettings(2400, 8, "E", 1)
    async with sim_line([meter], baud=2400, parity="E") as (path, _line), Bus("b", path, line) as bus:
        d = driver(bus, A1, tmp_path, retries=0, items=["energy_import_kwh", "voltage_a_v"])
        meter.inject("impostor")
        with pytest.raises(GatewayError, match=A1):  # a clear error naming the meter polled
            await d.poll()
        assert meter.stats["impostor"] >= 1
        meter.clear("impostor")
        result = await d.poll()  # the meter itself answers again: values are its own
        assert result.samples[0].values["energy_import_kwh"] == pytest.approx(
            meter.values(time.time())["energy_import_kwh"], abs=0.02
        )
