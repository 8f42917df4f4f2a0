"""The DL/T 698.45 driver through a real Bus on a pty (the simulator's paced Line at 2400 8E1) against
the test meter of `meter.py`: NormalList polls, a DAR marking one object, the fallback when the meter
refuses lists, a silent meter, a garbled reply, commands with the relay read back, plaintext + RN
reads with the meter's MAC, ciphertext relayed unchanged, the clock check, and back-fill after a gap."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.bus import Bus
from gateway.drivers.base import DriverContext
from gateway.drivers.dlt698.backfill import CST, DAY_MS
from gateway.drivers.dlt698.config import Dlt698Device
from gateway.drivers.dlt698.driver import Dlt698Driver
from gateway.errors import BusFrameError, DeviceError, ResponseTimeout
from gateway.line import LineSettings
from protocols.dlt698 import Oad, SecurityRequest, Sid, Verify
from tests.dlt698_gateway.meter import CIPHER_REPLY, MAC, Meter698
from tests.gateway.helpers import sim_line

pytestmark = pytest.mark.integration

A1, A2 = "000000000001", "000000000002"
LINE = LineSettings(2400, 8, "E", 1)


def driver(bus: Bus, address: str, tmp_path: Path, synced: bool = True, **extra: Any) -> Dlt698Driver:
    config = Dlt698Device(kind="dlt698", id=f"m{address[-2:]}", address=address, **extra)
    ctx = DriverContext(
        "gw", lambda: int(time.time() * 1000), tmp_path, logging.getLogger("test"), lambda: synced
    )
    return Dlt698Driver(config, bus, ctx)


async def test_one_normal_list_per_poll_and_honest_airtime(tmp_path: Path) -> None:
    meter = Meter698(A1)
    async with sim_line([meter], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        d = driver(bus, A1, tmp_path, clock_check_s=0, backfill=False)
        started = time.monotonic()
        result = await d.poll()
        elapsed = time.monotonic() - started
    assert bus.stats.transactions == 1, "nine objects, one GET-Request-NormalList"
    sample = result.samples[0]
    assert sample.values == {
        "energy_import_kwh": 1234.56,
        "voltage_a_v": 230.1,
        "current_a_a": 1.5,
        "power_active_kw": 0.345,
        "power_factor": 0.99,
        "balance_cny": 56.78,
        "overdraft_cny": 0,
        "relay": "closed",
        "keep_power": False,
    }
    assert sample.quality == {}
    airtime = Dlt698Driver.poll_airtime_s(d.cfg, LINE)
    # the budget counts the bytes really on the wire (within its upper estimates of value sizes)
    wire = LINE.wire_time(len(bus.last_request) + len(bus.last_reply))
    assert wire <= airtime - 0.06 - 0.02 + 1e-9 <= wire * 1.5
    assert elapsed >= wire, "paced at 2400 baud"


async def test_a_dar_marks_only_its_object(tmp_path: Path) -> None:
    meter = Meter698(A1, absent={Oad(0x202C, 2)})
    async with sim_line([meter], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        result = await driver(bus, A1, tmp_path, clock_check_s=0, backfill=False).poll()
    sample = result.samples[0]
    assert sample.quality == {"balance_cny": "error"}
    assert "balance_cny" not in sample.values and sample.values["energy_import_kwh"] == 1234.56


async def test_a_meter_refusing_lists_is_read_object_by_object(tmp_path: Path) -> None:
    meter = Meter698(A1, lists=False)
    objects = ["energy_import_kwh", "20000200", "balance_cny"]
    async with sim_line([meter], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        d = driver(bus, A1, tmp_path, objects=objects, clock_check_s=0, backfill=False)
        first = await d.poll()
        assert bus.stats.transactions == 1 + 3, "the refused list, then each object"
        second = await d.poll()
        assert bus.stats.transactions == 4 + 3, "lists are not tried again"
    for result in (first, second):
        values = result.samples[0].values
        assert values["voltage_c_v"] == 230.3 and values["balance_cny"] == 56.78
        assert result.samples[0].quality == {}


async def test_every_object_refused_is_a_device_error(tmp_path: Path) -> None:
    meter = Meter698(A1, absent={Oad(0x202C, 2), Oad(0x202D, 2)})
    async with sim_line([meter], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        d = driver(bus, A1, tmp_path, objects=["balance_cny", "overdraft_cny"], clock_check_s=0)
        with pytest.raises(DeviceError, match="refused every object"):
            await d.poll()


async def test_a_silent_meter_fails_fast_and_a_garbled_reply_is_a_frame_error(tmp_path: Path) -> None:
    meter = Meter698(A1)
    async with sim_line([meter], baud=2400, parity="E") as (path, line), Bus("b", path, LINE) as bus:
        silent = driver(bus, A2, tmp_path, retries=0, reply_timeout_ms=300)
        started = time.monotonic()
        with pytest.raises(ResponseTimeout, match="no reply"):
            await silent.poll()
        assert time.monotonic() - started < 1.0, "one timeout, not one per object"
        line.faults.corrupt = 1.0
        with pytest.raises(BusFrameError, match="bad"):
            await driver(bus, A1, tmp_path, retries=0).poll()
        assert bus.stats.frame_errors == 1


async def test_trip_keep_power_and_close_read_the_relay_back(tmp_path: Path) -> None:
    meter = Meter698(A1)
    async with sim_line([meter], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        d = driver(bus, A1, tmp_path, control=True)
        trip = await d.execute("trip", {})
        assert trip.status == "done", trip.reason
        assert trip.state == {"relay": "open", "relay_commanded": "open", "keep_power": False}
        assert meter.relay_open
        assert (await d.execute("close", {})).state["relay"] == "closed"
        assert (await d.execute("keep_power_on", {})).state["keep_power"] is True
        refused = await d.execute("trip", {})
        assert refused.status == "failed" and "read_write_denied" in refused.reason
        assert refused.state["relay"] == "closed"
        assert (await d.execute("alarm_on", {})).status == "done"
        meter.secured = True  # a utility meter: plaintext ACTION refused
        secured = await d.execute("keep_power_off", {})
        assert secured.status == "failed" and "security_mode_mismatch" in secured.reason
        with pytest.raises(Exception, match="not enabled"):
            driver(bus, A1, tmp_path).check_command("trip", {})
    actions = [a for a in meter.requests if type(a).__name__ == "ActionRequest"]
    # the trip APDU is dlt698.md §6 E4's (relay 1, no delay, until closed, no auto-close), PIID aside
    assert actions[0].encode()[3:] == bytes.fromhex(
        "80 00 81 00 01 01 02 04 51 F2 05 02 01 11 00 12 00 00 03 00 00"
    )


async def test_ciphertext_is_relayed_unchanged_and_rn_reads_keep_the_mac(tmp_path: Path) -> None:
    meter = Meter698(A1)
    master = SecurityRequest(
        bytes.fromhex("112233445566"),
        ciphered=True,
        verify=Verify.SID_MAC,
        sid=Sid(0x81000000, b"\x00\x01"),
        mac=bytes.fromhex("0a0b0c0d"),
    ).encode()
    async with sim_line([meter], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        d = driver(bus, A1, tmp_path, control=True)
        relayed = await d.execute("raw_apdu", {"apdu": master.hex()})
        assert relayed.status == "done", relayed.reason
        assert relayed.answer == {"apdu": CIPHER_REPLY.encode().hex(), "mac_verified": False}
        assert meter.requests[0] == SecurityRequest(
            bytes.fromhex("112233445566"),
            True,
            Verify.SID_MAC,
            mac=bytes.fromhex("0a0b0c0d"),
            sid=Sid(0x81000000, b"\x00\x01"),
        )
        assert meter.requests[0].encode() == master, "the master's APDU reached the meter byte for byte"
        read = await d.execute("read", {"item": "energy_import_kwh", "secured": True})
        assert read.status == "done", read.reason
        assert read.answer["values"] == {"energy_import_kwh": 1234.56}
        assert read.answer["mac"] == MAC.hex() and read.answer["mac_verified"] is False
        assert len(bytes.fromhex(read.answer["rn"])) == 16
        json.dumps(read.answer)  # a command result carries it as JSON
        with pytest.raises(Exception, match="not a SECURITY-Request"):
            d.check_command("raw_apdu", {"apdu": "0501010010020000"})


@pytest.mark.parametrize("synced", [True, False], ids=["ntp-synced", "clock-unknown"])
async def test_clock_skew_is_published_and_corrected_from_a_synced_clock(
    tmp_path: Path, synced: bool
) -> None:
    meter = Meter698(A1, clock_skew_s=120.0)
    async with sim_line([meter], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        d = driver(bus, A1, tmp_path, synced=synced, backfill=False)
        result = await d.poll()
    skew = result.samples[0].values["meter_clock_skew_s"]
    assert 118 <= skew <= 122
    assert [e.kind.value for e in result.events] == (["clock_set"] if synced else [])
    assert (meter.clock_skew_s == 0.0) is synced


def _midnight(days_ago: int) -> dt.datetime:
    today = dt.datetime.now(CST).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    return today - dt.timedelta(days=days_ago)


@pytest.mark.parametrize("by_range", [True, False], ids=["selector-2", "selector-9"])
async def test_backfill_publishes_the_freezes_of_a_gap_once(tmp_path: Path, by_range: bool) -> None:
    freezes = {_midnight(n): 100_000 + 1000 * (10 - n) for n in range(10)}
    meter = Meter698(A1, freezes=freezes, range_records=by_range)
    now_ms = int(time.time() * 1000)
    gap_start = now_ms - 4 * DAY_MS - 3_600_000  # four days and an hour ago: four midnights missed
    state = {"version": 1, "last_live_ms": gap_start, "done_ms": gap_start, "scan": None}
    (tmp_path / "dlt698-backfill-m01.json").write_text(json.dumps(state))
    async with sim_line([meter], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        d = driver(bus, A1, tmp_path, clock_check_s=0, objects=["energy_import_kwh"])
        frozen = []
        for _ in range(6):
            result = await d.poll()
            frozen += [s for s in result.samples if s.source == "frozen"]
            if d.backfill is not None and not d.backfill.pending:
                break
    expected = sorted(t for t in freezes if gap_start < int(t.replace(tzinfo=CST).timestamp() * 1000))
    assert len(expected) == 4
    assert [s.ts for s in frozen] == [int(t.replace(tzinfo=CST).timestamp() * 1000) for t in expected]
    assert [s.values["energy_import_kwh"] for s in frozen] == [freezes[t] / 100 for t in expected]
    assert frozen[0].values["energy_import_t1_kwh"] == freezes[expected[0]] // 2 / 100
    saved = json.loads((tmp_path / "dlt698-backfill-m01.json").read_text())
    assert saved["scan"] is None and saved["done_ms"] == frozen[-1].ts


async def test_a_meter_first_seen_publishes_no_freezes(tmp_path: Path) -> None:
    meter = Meter698(A1, freezes={_midnight(n): 1000 for n in range(5)})
    async with sim_line([meter], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        d = driver(bus, A1, tmp_path, clock_check_s=0)
        result = await d.poll()
    assert [s.source for s in result.samples] == ["live"]
    assert bus.stats.transactions == 1


def test_config_refuses_a_wildcard_and_unknown_objects() -> None:
    with pytest.raises(ValueError, match="wildcard"):
        Dlt698Device(kind="dlt698", id="m", address="AAAAAAAAAAAA")
    with pytest.raises(ValueError, match="no_such_value"):
        Dlt698Device(kind="dlt698", id="m", address=A1, objects=["energy_import_kwh", "no_such_value"])
    dev = Dlt698Device(kind="dlt698", id="m", address=A1, objects=["00100200", "energy_import_t1_kwh"])
    assert dev.bus_addresses() == [("DL/T 698.45", A1)]


async def test_a_command_whose_reply_is_lost_is_not_sent_again(tmp_path: Path) -> None:
    meter = Meter698(A1)
    async with sim_line([meter], baud=2400, parity="E") as (path, line), Bus("b", path, LINE) as bus:
        d = driver(bus, A1, tmp_path, control=True, retries=1, reply_timeout_ms=200)
        line.faults.silence = 1.0  # the meter acts, its replies are lost
        outcome = await d.execute("trip", {})
        master = SecurityRequest(
            b"\x01\x02", ciphered=True, verify=Verify.SID_MAC, sid=Sid(1, b""), mac=b"\x00" * 4
        )
        relayed = await d.execute("raw_apdu", {"apdu": master.encode().hex()})
    assert outcome.status == "failed" and "not confirmed" in outcome.reason and meter.relay_open
    assert relayed.status == "failed"
    sent = [type(a).__name__ for a in meter.requests]
    # one ACTION, one relayed APDU; only the read-backs (reads) are retried
    assert sent.count("ActionRequest") == 1 and sent.count("SecurityRequest") == 1
    assert sent.count("GetListRequest") == 4, sent
