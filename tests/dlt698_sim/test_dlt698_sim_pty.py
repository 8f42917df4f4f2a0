"""The simulated DL/T 698.45 meter on a real pty at 2400 8E1, paced by the line: requests built with
the codec, read back with pyserial and the gateway's reply matcher."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
import serial

from firmware_sim.devices.dlt698 import Dlt698Meter, fake_mac
from firmware_sim.prepaid import RELAY_SETTLE_S
from protocols.dlt698 import (
    Data,
    DataType,
    DateTimeS,
    GetNextResponse,
    GetRequest,
    MeterRefused,
    Oad,
    Omd,
    action_request,
    check_reply,
    columns,
    get_request,
    last_records_request,
    next_request,
    record_rows,
    result_values,
    secured_request,
    time_range_request,
)

from .pty_line import T0, exchange, open_port, running_line, transact

T = DataType
ADDR, OTHER = "123456789012", "000000000002"
CHAR_S = 11 / 2400
DAILY = Oad(0x5004, 2)
TRIP = Data.array(
    Data.structure(
        Data(T.OAD, Oad(0xF205, 2, 1)), Data(T.UNSIGNED, 0), Data(T.LONG_UNSIGNED, 0), Data(T.BOOL, False)
    )
)


@pytest.fixture(scope="module")
def line():
    meters = [Dlt698Meter(ADDR, seed=3, start_time=T0), Dlt698Meter(OTHER, seed=3, start_time=T0)]
    with running_line(meters, 2400) as running:
        yield running


@pytest.fixture
def port(line):
    with open_port(line.path, parity=serial.PARITY_NONE) as p:
        yield p


def test_get_record_of_daily_freezes(line, port) -> None:
    meter = line.meters[0]
    cols = columns(Oad(0x2021, 2), Oad(0x0010, 2), Oad(0x0020, 2))
    latest = transact(port, last_records_request(ADDR, DAILY, 1, cols, 1))
    [row] = record_rows(latest.apdu.result)
    day, energies = meter.history.daily_freezes()[0]
    assert row["freeze_time"] == dt.datetime(2025, 10, 9) and day == dt.date(2025, 10, 9)
    assert row["energy_import_kwh"] == pytest.approx(sum(energies), abs=0.011)
    week = time_range_request(ADDR, DAILY, DateTimeS(2025, 10, 2), DateTimeS(2025, 10, 9), rcsd=cols, piid=2)
    rows = record_rows(transact(port, week).apdu.result)
    assert [r["freeze_time"].day for r in rows] == [2, 3, 4, 5, 6, 7, 8]


def test_trip_then_the_relay_state(line, port) -> None:
    meter = line.meters[1]
    reply = transact(port, action_request(OTHER, Omd(0x8000, 129), TRIP, 3))
    assert reply.apdu.dar == 0
    state = transact(port, get_request(OTHER, [Oad(0x8000, 5), Oad(0x8000, 3)], 4))
    assert [result_values(r) for r in state.apdu.results] == [
        {"relay_commanded": "open"},
        {"relay": "closed"},
    ]
    line.clock.t += RELAY_SETTLE_S  # simulated time: the contact follows the command
    relay = transact(port, get_request(OTHER, Oad(0x8000, 3), 5))
    assert result_values(relay.apdu.result) == {"relay": "open"} and not meter.physics.actual_closed
    power = transact(port, get_request(OTHER, Oad(0x2004, 2, 1), 6))
    assert result_values(power.apdu.result) == {"power_active_kw": 0.0}


def test_a_dar_for_an_unsupported_object(port) -> None:
    with pytest.raises(MeterRefused) as info:
        transact(port, get_request(ADDR, Oad(0x9999, 2), 7))
    assert (info.value.dar, info.value.reason, info.value.target) == (4, "object_undefined", "99990200")


def test_plaintext_with_rn_gets_a_mac(line, port) -> None:
    rn = bytes.fromhex("0123456789ABCDEF0011223344556677")
    reply = transact(port, secured_request(ADDR, GetRequest(8, Oad(0x0010, 2)), rn))
    assert reply.mac_unverified and reply.security is not None
    assert reply.mac == fake_mac(line.meters[0].mac_key, rn, reply.security.apdu)
    assert result_values(reply.apdu.result)["energy_import_kwh"] > 0


def test_noise_before_a_request_and_paced_replies(port) -> None:
    noise = bytes.fromhex("00 FF 68 17 00 43 05 12 90 A5 5A 16 FE 68")  # garbage, a false start
    got = exchange(port, get_request(ADDR, Oad(0x4001, 2), 9), before=noise)
    assert result_values(check_reply(get_request(ADDR, Oad(0x4001, 2), 9), got.reply).apdu.result) == {
        "meter_address": ADDR
    }
    # nothing but the reply came back (the meter ignored the noise), at 2400 baud after the request
    assert got.skipped == 0 and got.received == len(got.reply.encode()) + 4
    assert got.elapsed_s >= (got.sent + got.received) * CHAR_S + 0.020 - 0.005
    assert got.elapsed_s < (got.sent + got.received) * CHAR_S + 0.100 + 0.5


def test_a_long_record_read_through_get_next_blocks(line, port) -> None:
    meter = line.meters[0]
    meter.blocks.apdu_size = 300
    try:
        cols = columns(Oad(0x2021, 2), Oad(0x0010, 2, 1))
        month = time_range_request(
            ADDR, DAILY, DateTimeS(2025, 9, 9), DateTimeS(2025, 10, 9), rcsd=cols, piid=10
        )
        block = transact(port, month).apdu
        rows = list(block.records[0].rows)
        while not block.last:
            block = transact(port, next_request(ADDR, block.block, 11 + block.block)).apdu
            assert isinstance(block, GetNextResponse)
            rows += block.records[0].rows
        assert len(rows) == 30 and block.block >= 2
    finally:
        meter.blocks.apdu_size = 1024


def test_sim_cli_serves_a_pty_and_obeys_stdin() -> None:
    argv = [sys.executable, "-m", "gridedge", "sim", "dlt698", "--port", "pty", "--meter", ADDR]
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None

    def command(text: str) -> str:
        proc.stdin.write(text + "\n")
        proc.stdin.flush()
        return proc.stdout.readline().strip()

    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/"), (path, proc.poll())
        with open_port(path) as port:
            count = transact(port, get_request(ADDR, Oad(0x3011, 7), 1))
            before = result_values(count.apdu.result)["power_down_count"]
            assert command(f"cut {ADDR}") == f"ok cut {ADDR}"
            with pytest.raises(AssertionError, match="no reply"):
                exchange(port, get_request(ADDR, Oad(0x4001, 2), 2), deadline_s=1.0)
            assert command(f"restore {ADDR}") == f"ok restore {ADDR}"
            after = transact(port, get_request(ADDR, Oad(0x3011, 7), 3))
            assert result_values(after.apdu.result)["power_down_count"] == before + 1
            assert command(f"fault {ADDR} refuse 1") == f"ok fault {ADDR} refuse 1"
            with pytest.raises(MeterRefused):
                transact(port, get_request(ADDR, Oad(0x4001, 2), 4))
            assert transact(port, get_request(ADDR, Oad(0x4001, 2), 5)).apdu.result.ok
            assert "unknown dlt698 device fault 'melt'" in command(f"fault {ADDR} melt")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
