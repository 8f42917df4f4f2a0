"""The DL/T 698.45 driver against the simulator (`firmware_sim.devices.dlt698`) on a paced pty at 2400
8E1 through a real Bus: values as the meter's physics has them, a meter without a wallet (DAR on one
object), GET-Next blocks from a meter with a small APDU size, a silent meter, a garbled reply, trip and
close with the relay read back, the meter's MAC passed on, ciphertext relayed and the meter's refusal
returned unchanged, and the daily freezes of a gap back-filled from the simulator's history."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.devices.dlt698 import Dlt698Meter, fake_mac
from firmware_sim.meter_history import local_timestamp
from firmware_sim.prepaid import RELAY_SETTLE_S
from gateway.bus import Bus
from gateway.drivers.base import DriverContext
from gateway.drivers.dlt698.backfill import DAY_MS
from gateway.drivers.dlt698.config import Dlt698Device
from gateway.drivers.dlt698.driver import Dlt698Driver
from gateway.errors import BusFrameError, DeviceError, ResponseTimeout
from gateway.line import LineSettings
from protocols.dlt698 import SecurityRequest, SecurityResponse, Sid, Verify, parse_apdu, parse_frame
from tests.gateway.helpers import sim_line

pytestmark = pytest.mark.integration

A1 = "000000000001"
LINE = LineSettings(2400, 8, "E", 1)


def driver(bus: Bus, tmp_path: Path, **extra: Any) -> Dlt698Driver:
    config = Dlt698Device(kind="dlt698", id="m1", address=A1, **extra)
    ctx = DriverContext(
        "gw", lambda: int(time.time() * 1000), tmp_path, logging.getLogger("test"), lambda: True
    )
    return Dlt698Driver(config, bus, ctx)


async def test_poll_reads_what_the_meter_has_in_one_list(tmp_path: Path) -> None:
    meter = Dlt698Meter(A1, seed=3, start_time=time.time())
    async with sim_line([meter], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        result = await driver(bus, tmp_path, clock_check_s=0, backfill=False).poll()
        truth = meter.physics.values(time.time())
    assert bus.stats.transactions == 1
    values = result.samples[0].values
    assert values["energy_import_kwh"] == pytest.approx(truth["energy_import_kwh"], abs=0.02)
    assert values["voltage_a_v"] == pytest.approx(truth["voltage_a_v"], abs=2)
    assert values["balance_cny"] == pytest.approx(truth["balance_cny"], abs=0.02)
    assert values["relay"] == "closed" and values["keep_power"] is False
    assert result.samples[0].quality == {}


async def test_a_meter_without_wallet_marks_only_the_wallet(tmp_path: Path) -> None:
    meter = Dlt698Meter(A1, seed=3, start_time=time.time(), cost_control="remote")
    async with sim_line([meter], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        result = await driver(bus, tmp_path, clock_check_s=0, backfill=False).poll()
    sample = result.samples[0]
    assert "balance_cny" in sample.quality and sample.quality["balance_cny"] == "error"
    assert "energy_import_kwh" in sample.values and "balance_cny" not in sample.values


async def test_get_next_blocks_from_a_meter_with_a_small_apdu_size(tmp_path: Path) -> None:
    small = Dlt698Meter(A1, seed=3, start_time=time.time(), apdu_size=64)
    async with sim_line([small], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        d = driver(bus, tmp_path, clock_check_s=0, backfill=False)
        result = await d.poll()
    assert d.session.blocks >= 1 and bus.stats.transactions == 1 + d.session.blocks
    assert {"energy_import_kwh", "voltage_a_v", "relay", "keep_power"} <= set(result.samples[0].values)
    assert result.samples[0].quality == {}


async def test_silent_refusing_and_garbling_meters(tmp_path: Path) -> None:
    meter = Dlt698Meter(A1, seed=3, start_time=time.time())
    async with sim_line([meter], baud=2400, parity="E") as (path, line), Bus("b", path, LINE) as bus:
        d = driver(bus, tmp_path, retries=0, reply_timeout_ms=300, clock_check_s=0, backfill=False)
        meter.inject("silent", 1)
        with pytest.raises(ResponseTimeout):
            await d.poll()
        meter.inject("refuse", 1)
        with pytest.raises(DeviceError, match="refused every object"):
            await d.poll()
        line.faults.corrupt = 1.0
        with pytest.raises(BusFrameError):
            await d.poll()
        line.faults.corrupt = 0.0
        assert (await d.poll()).samples[0].quality == {}


async def test_trip_and_close_with_the_relay_read_back(tmp_path: Path) -> None:
    meter = Dlt698Meter(A1, seed=3, start_time=time.time())
    async with sim_line([meter], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        d = driver(bus, tmp_path, control=True, backfill=False)
        trip = await d.execute("trip", {})
        assert trip.status == "done", trip.reason
        assert trip.state["relay_commanded"] == "open"
        assert meter.physics.commanded_closed is False
        keep = await d.execute("keep_power_on", {})
        assert keep.status == "done" and keep.state["keep_power"] is True
        assert (await d.execute("keep_power_off", {})).status == "done"
        close = await d.execute("close", {})
        assert close.status == "done" and close.state["relay_commanded"] == "closed"
        meter.tick(time.time() + RELAY_SETTLE_S + 0.1)
        assert meter.physics.actual_closed is True


async def test_the_meters_mac_is_passed_on_and_ciphertext_is_relayed_unchanged(tmp_path: Path) -> None:
    meter = Dlt698Meter(A1, seed=3, start_time=time.time())
    master = SecurityRequest(
        bytes.fromhex("8899aabbccdd"),
        ciphered=True,
        verify=Verify.SID_MAC,
        sid=Sid(1, b"\x00"),
        mac=b"\x01\x02\x03\x04",
    ).encode()
    async with sim_line([meter], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        d = driver(bus, tmp_path, control=True, backfill=False)
        read = await d.execute("read", {"oad": "00100200", "secured": True})
        assert read.status == "done", read.reason
        wire = parse_apdu(parse_frame(bytes(bus.last_reply)).data)
        relayed = await d.execute("raw_control", {"apdu": master.hex()})
    # the MAC is the meter's own over RN + its plaintext answer, passed on with that plaintext
    assert isinstance(wire, SecurityResponse) and wire.mac is not None
    rn = bytes.fromhex(read.answer["rn"])
    assert read.answer["apdu"] == wire.apdu.hex()
    assert read.answer["mac"] == wire.mac.hex() == fake_mac(meter.mac_key, rn, wire.apdu).hex()
    assert read.answer["mac_verified"] is False
    # the simulator has no ESAM: it refuses the ciphertext with 90 02 DAR 28, returned unchanged
    assert relayed.status == "failed" and "symmetric_decrypt_error" in relayed.reason
    assert relayed.answer["apdu"] == SecurityResponse(dar=28).encode().hex()


async def test_backfill_of_the_daily_freezes_of_a_gap(tmp_path: Path) -> None:
    meter = Dlt698Meter(A1, seed=5, start_time=time.time())
    now_ms = int(time.time() * 1000)
    gap_start = now_ms - 3 * DAY_MS - 1_800_000
    state = {"version": 1, "last_live_ms": gap_start, "done_ms": gap_start, "scan": None}
    (tmp_path / "dlt698-backfill-m1.json").write_text(json.dumps(state))
    async with sim_line([meter], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        d = driver(bus, tmp_path, clock_check_s=0, objects=["energy_import_kwh"])
        frozen = []
        for _ in range(4):
            result = await d.poll()
            frozen += [s for s in result.samples if s.source == "frozen"]
            if d.backfill is not None and not d.backfill.pending:
                break
    freezes = {
        int(local_timestamp(dt.datetime.combine(day, dt.time())) * 1000): e
        for day, e in meter.history.daily_freezes()
    }
    expected = sorted(t for t in freezes if gap_start < t <= now_ms)
    assert len(expected) in (3, 4)
    assert [s.ts for s in frozen] == expected
    for sample in frozen:
        assert sample.values["energy_import_kwh"] == pytest.approx(sum(freezes[sample.ts]), abs=0.011)


async def test_secured_objects_publish_the_meters_mac_in_an_event(tmp_path: Path) -> None:
    meter = Dlt698Meter(A1, seed=3, start_time=time.time())
    async with sim_line([meter], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        d = driver(bus, tmp_path, clock_check_s=0, backfill=False, secured_objects=["balance_cny"])
        result = await d.poll()
    assert bus.stats.transactions == 2, "the list, then the secured object"
    assert "balance_cny" in result.samples[0].values and result.samples[0].quality == {}
    (event,) = [e for e in result.events if e.kind.value == "secured_read"]
    data = event.data
    assert data["oad"] == "202C0201" and data["mac_verified"] is False
    rn, plain = bytes.fromhex(str(data["rn"])), bytes.fromhex(str(data["apdu"]))
    assert data["mac"] == fake_mac(meter.mac_key, rn, plain).hex(), "the meter's MAC, as it sent it"
    plain_only = Dlt698Device(kind="dlt698", id="m1", address=A1)
    secured = Dlt698Device(kind="dlt698", id="m1", address=A1, secured_objects=["balance_cny"])
    assert Dlt698Driver.poll_airtime_s(secured, LINE) > Dlt698Driver.poll_airtime_s(plain_only, LINE)
