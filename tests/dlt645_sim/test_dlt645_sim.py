"""The simulated DL/T 645 prepaid meter as a pure model: request bursts in, replies out, via respond()."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from firmware_sim.device import SimDevice
from firmware_sim.devices import dlt645 as sim
from firmware_sim.devices.dlt645 import Dlt645Meter, parse_password
from firmware_sim.devices.dlt645.history import local_datetime
from firmware_sim.prepaid import RELAY_SETTLE_S
from protocols.dlt645 import (
    CATALOGUE,
    WILDCARD,
    ControlCommand,
    Credentials,
    Frame,
    MeterRefused,
    ReplyMatcher,
    Version,
    canonical_values,
    control_request,
    decode_values,
    join_read_replies,
    lookup,
    parse_address_reply,
    parse_read_reply,
    read_address_request,
    read_follow_request,
    read_request,
    status_word_3,
    time_sync_request,
)
from protocols.errors import ConfigError

T0 = 1_760_000_000.0  # 2025-10-09 16:53 CST
ADDR = "000000000001"
PWD = Credentials(2, "123456")


def transact(meter: Dlt645Meter, frame: Frame, now: float) -> Frame | None:
    reply = meter.respond(frame.encode(preamble=4), now)
    if reply is None:
        return None
    assert 0.020 <= reply.turnaround_s <= 0.100
    got = ReplyMatcher.for_request(frame).feed(reply.data)
    assert got is not None
    return got


def read(meter: Dlt645Meter, name: str, now: float, version: str = "2007") -> dict:
    item = lookup(name, version)
    frame = transact(meter, read_request(meter.address, item.di, version), now)
    assert frame is not None
    return parse_read_reply(frame, version, item.di).values()


def control(meter: Dlt645Meter, command: ControlCommand, now: float, credentials: Credentials = PWD) -> Frame:
    until = local_datetime(now + meter.physics.clock_skew_s) + dt.timedelta(minutes=5)
    reply = transact(meter, control_request(meter.address, command, until, credentials), now)
    assert reply is not None
    return reply


def refused(meter: Dlt645Meter, name: str, now: float, version: str = "2007") -> MeterRefused:
    with pytest.raises(MeterRefused) as info:
        read(meter, name, now, version)
    return info.value


@pytest.fixture
def meter() -> Dlt645Meter:
    return Dlt645Meter(ADDR, seed=7, start_time=T0)


def test_is_a_sim_device(meter) -> None:
    assert isinstance(meter, SimDevice) and meter.protocol == "dlt645" and meter.name == ADDR


PREPAID_ITEMS = (
    "energy_import_kwh",
    "energy_import_block",
    "energy_combined_block",
    "voltage_block",
    "current_block",
    "power_active_block",
    "power_factor_block",
    "frequency_hz",
    "meter_date",
    "meter_time",
    "meter_datetime",
    "status_word_block",
    "balance_cny",
    "overdraft_cny",
    "prepaid_cny_block",
    "purchase_count",
    "power_down_count",
    "power_down_1",
    "daily_freeze_1_time",
    "daily_freeze_1_energy_import",
    "energy_import_settle1_kwh",
    "demand_import_kw",
)


def test_reads_every_supported_item_as_the_meter_reports_it(meter) -> None:
    now = T0 + 90
    meter.tick(now)
    reported = meter.values(now)
    served: set[str] = set()
    for item in CATALOGUE[Version.V2007].values():
        try:
            got = read(meter, item.name, now)
        except MeterRefused as exc:
            assert exc.reasons == ("no_requested_data",), item
            continue
        served.add(item.name)
        for name, value in got.items():
            assert value == reported[name], (item, name)
    assert served >= set(PREPAID_ITEMS)
    assert len(served) > 250  # the daily freezes alone are 62 x 3 items (time, import, export)


def test_values_equal_the_physics_canonical_values(meter) -> None:
    now = T0 + 300
    meter.tick(now)
    physics = meter.physics.values(now)
    decoded: dict = {}
    for name in (*PREPAID_ITEMS, "power_reactive_kvar", "power_apparent_kva", "temperature_c", "alarm1_cny"):
        decoded.update(read(meter, name, now))
    canonical = canonical_values(decoded)
    shared = set(canonical) & set(physics)
    assert shared >= {"energy_import_kwh", "voltage_a_v", "current_c_a", "power_active_kw", "balance_cny"}
    assert shared >= {"relay", "relay_commanded", "keep_power", "pre_trip_alarm", "status_word_3"}
    assert {k: canonical[k] for k in shared} == {k: physics[k] for k in shared}
    clock = dt.datetime.combine(decoded["meter_date"], decoded["meter_time"])
    assert clock == local_datetime(physics["meter_time_s"]) == decoded["meter_datetime"]


def test_daily_freeze_history_follows_midnight(meter) -> None:
    before = read(meter, "daily_freeze_1_energy_import", T0)
    today = local_datetime(T0).date()
    assert read(meter, "daily_freeze_1_time", T0)["daily_freeze_1_time"] == dt.datetime.combine(
        today, dt.time()
    )
    midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time()).replace(tzinfo=dt.UTC).timestamp()
    midnight -= 8 * 3600
    later = midnight + 120  # past the meter's skewed midnight
    step = T0
    while step < later:
        step = min(step + 600, later)
        meter.tick(step)
    energy_at = meter.values(later)
    f1 = read(meter, "daily_freeze_1_energy_import", later)
    f2 = read(meter, "daily_freeze_2_energy_import", later)
    assert f2["daily_freeze_2_energy_import_kwh"] == before["daily_freeze_1_energy_import_kwh"]
    assert before["daily_freeze_1_energy_import_kwh"] < f1["daily_freeze_1_energy_import_kwh"]
    assert f1["daily_freeze_1_energy_import_kwh"] <= energy_at["energy_import_kwh"]
    # the earliest freezes predate the meter's synthesised installation or are complete records
    f62 = read(meter, "daily_freeze_62_energy_import", later)
    assert all(v is None for v in f62.values()) or all(v is not None for v in f62.values())


def test_trip_close_and_relay_settle_time(meter) -> None:
    now = T0 + 10
    assert control(meter, ControlCommand.TRIP, now) == Frame(ADDR, 0x9C)
    sw3 = status_word_3(read(meter, "status_word_3", now + 0.5)["status_word_3"])
    assert sw3["relay_commanded"] == "open" and sw3["relay"] == "closed"
    later = now + RELAY_SETTLE_S + 0.1
    sw3 = status_word_3(read(meter, "status_word_3", later)["status_word_3"])
    assert sw3["relay"] == "open" and read(meter, "power_active_kw", later)["power_active_kw"] == 0.0
    assert read(meter, "trip_last_time", later)["trip_last_time"] == local_datetime(
        now + meter.physics.clock_skew_s
    ).replace(microsecond=0)
    control(meter, ControlCommand.CLOSE, later)
    sw3 = status_word_3(read(meter, "status_word_3", later + RELAY_SETTLE_S + 0.1)["status_word_3"])
    assert sw3["relay"] == "closed" and sw3["relay_commanded"] == "closed"
    assert read(meter, "close_last_time", later + 3)["close_last_time"] is not None


def test_keep_power_refuses_trip_and_wrong_password_or_expired_command_refused(meter) -> None:
    now = T0 + 10
    control(meter, ControlCommand.KEEP_POWER_ON, now)
    assert status_word_3(read(meter, "status_word_3", now)["status_word_3"])["keep_power"] is True
    reply = control(meter, ControlCommand.TRIP, now)
    assert reply.abnormal and reply.function == 0x1C and reply.data == b"\x01"
    control(meter, ControlCommand.KEEP_POWER_OFF, now)
    assert not control(meter, ControlCommand.TRIP, now).abnormal
    bad = control(meter, ControlCommand.CLOSE, now, Credentials(2, "654321"))
    assert bad.abnormal and bad.data == b"\x04"
    assert control(meter, ControlCommand.CLOSE, now, Credentials(4, "123456")).data == b"\x04"
    past = local_datetime(now + meter.physics.clock_skew_s) - dt.timedelta(minutes=1)
    expired = transact(meter, control_request(ADDR, ControlCommand.CLOSE, past, PWD), now)
    assert expired is not None and expired.data == b"\x01"
    assert control(meter, 0x77, now).data == b"\x01"  # unknown N1


def test_allow_close_waits_for_the_button_and_alarm_sets_bit_7(meter) -> None:
    now = T0 + 10
    control(meter, ControlCommand.TRIP, now)
    now += RELAY_SETTLE_S + 1
    control(meter, ControlCommand.ALLOW_CLOSE, now)
    sw3 = status_word_3(read(meter, "status_word_3", now + 5)["status_word_3"])
    assert sw3["relay_commanded"] == "closed" and sw3["relay"] == "open"
    assert meter.press_button(now + 6) and not meter.press_button(now + 6)
    sw3 = status_word_3(read(meter, "status_word_3", now + 6 + RELAY_SETTLE_S)["status_word_3"])
    assert sw3["relay"] == "closed" and sw3["pre_trip_alarm"] is False
    control(meter, ControlCommand.ALARM_ON, now + 10)
    assert status_word_3(read(meter, "status_word_3", now + 10)["status_word_3"])["pre_trip_alarm"] is True
    control(meter, ControlCommand.ALARM_OFF, now + 10)
    assert status_word_3(read(meter, "status_word_3", now + 10)["status_word_3"])["pre_trip_alarm"] is False


def test_other_addresses_and_broadcast_reads_are_ignored_noise_is_skipped(meter) -> None:
    di = lookup("energy_import_kwh").di
    assert transact(meter, read_request("000000000002", di), T0) is None
    assert transact(meter, read_request("999999999999", di), T0) is None
    burst = b"\x00\x13\x68" + read_request("000000000002", di).encode() + read_request(ADDR, di).encode(2)
    reply = meter.respond(burst, T0)
    assert reply is not None
    got = ReplyMatcher(ADDR, 0x11).feed(reply.data)
    assert got is not None and parse_read_reply(got).di == di
    assert meter.stats["ignored_other_address"] == 2 and meter.stats["ignored_broadcast"] == 1
    wildcard = transact(meter, read_request("AAAAAAAAAA01", di), T0)  # shortened addressing (§1.4)
    assert wildcard is not None and wildcard.address == ADDR


def test_read_address_answers_on_the_wildcard() -> None:
    meters = [Dlt645Meter(a, start_time=T0) for a in ("000000000001", "002241020208")]
    assert read_address_request().address == WILDCARD
    for m in meters:
        reply = transact(m, read_address_request(), T0)
        assert reply is not None and parse_address_reply(reply) == m.address
    assert transact(meters[0], Frame("000000000002", 0x13), T0) is None


def test_broadcast_time_sync_shifts_the_clock_without_a_reply(meter) -> None:
    clock = read(meter, "meter_datetime", T0)["meter_datetime"]
    assert transact(meter, time_sync_request(clock + dt.timedelta(seconds=125)), T0) is None
    assert read(meter, "meter_datetime", T0)["meter_datetime"] == clock + dt.timedelta(seconds=125)
    assert read(meter, "clock_set_count", T0)["clock_set_count"] == 1
    assert transact(meter, time_sync_request(clock + dt.timedelta(hours=3)), T0) is None
    assert read(meter, "meter_datetime", T0)["meter_datetime"] == clock + dt.timedelta(seconds=125)
    assert meter.stats["time_syncs"] == 1 and meter.stats["time_sync_rejected"] == 1


def test_unknown_di_gets_no_requested_data(meter) -> None:
    reply = transact(meter, Frame(ADDR, 0x11, bytes.fromhex("78563412")), T0)
    assert reply is not None and reply.control == 0xD1 and reply.data == b"\x02"
    assert refused(meter, "battery_run_time_min", T0).reasons == ("no_requested_data",)


def test_follow_up_frames_for_a_value_longer_than_the_frame_limit() -> None:
    small = Dlt645Meter(ADDR, seed=7, start_time=T0, frame_limit=12)
    whole = read(Dlt645Meter(ADDR, seed=7, start_time=T0), "energy_import_block", T0)
    di = lookup("energy_import_block").di
    first = transact(small, read_request(ADDR, di), T0)
    assert first is not None and first.control == 0xB1
    replies = [parse_read_reply(first)]
    seq = 0
    while replies[-1].follow_up:
        seq += 1
        frame = transact(small, read_follow_request(ADDR, di, seq), T0)
        assert frame is not None
        replies.append(parse_read_reply(frame))
        assert replies[-1].seq == seq
    assert seq == 2 and len(replies[0].data) == 8
    assert decode_values(lookup("energy_import_block"), join_read_replies(replies)) == whole
    stray = transact(small, read_follow_request(ADDR, di, 9), T0)
    assert stray is not None and stray.control == 0xD2


def test_1997_mode() -> None:
    old = Dlt645Meter("000014359743", version="1997", seed=7, start_time=T0)
    modern = Dlt645Meter("000014359743", seed=7, start_time=T0)
    got = read(old, "energy_import_block", T0, "1997")
    assert got == read(modern, "energy_import_block", T0)
    volts = read(old, "voltage_block", T0, "1997")
    assert volts["voltage_a_v"] == round(modern.values(T0)["voltage_a_v"])  # XXX: whole volts
    amps = read(old, "current_a_a", T0, "1997")["current_a_a"]
    assert amps == round(modern.values(T0)["current_a_a"], 2)  # type: ignore[arg-type]
    assert read(old, "meter_date", T0, "1997")["meter_date"] == read(modern, "meter_date", T0)["meter_date"]
    assert (
        read(old, "energy_import_prev_month_kwh", T0, "1997")["energy_import_prev_month_kwh"]
        == read(modern, "energy_import_settle1_kwh", T0)["energy_import_settle1_kwh"]
    )
    assert refused(old, "status_byte", T0, "1997").reasons == ("wrong_di",)
    di07, di97 = lookup("energy_import_kwh").di, lookup("energy_import_kwh", "1997").di
    assert transact(old, read_request(old.address, di07), T0) is None  # a 1997 meter ignores 2007
    assert transact(modern, read_request(old.address, di97, "1997"), T0) is None
    assert transact(old, read_address_request(), T0) is None


def test_1997_follow_up() -> None:
    old = Dlt645Meter(ADDR, version="1997", seed=7, start_time=T0, frame_limit=10)
    di = lookup("energy_import_block", "1997").di
    first = transact(old, read_request(ADDR, di, "1997"), T0)
    assert first is not None and first.control == 0xA1
    replies = [parse_read_reply(first, "1997")]
    while replies[-1].follow_up:
        frame = transact(old, read_follow_request(ADDR, di, 0, "1997"), T0)
        assert frame is not None and frame.function == 0x02
        replies.append(parse_read_reply(frame, "1997"))
    assert len(join_read_replies(replies)) == 20


def test_silent_and_refuse_faults(meter) -> None:
    meter.inject("silent", 1)
    assert transact(meter, read_request(ADDR, lookup("balance_cny").di), T0) is None
    assert read(meter, "balance_cny", T0)
    meter.inject("refuse")
    assert refused(meter, "balance_cny", T0).reasons == ("other_error",)
    assert refused(meter, "balance_cny", T0).reasons == ("other_error",)
    meter.clear("refuse")
    assert read(meter, "balance_cny", T0)
    with pytest.raises(KeyError, match="unknown dlt645 device fault"):
        meter.inject("melt")
    assert meter.stats["silenced"] == 1


def test_cli_helpers() -> None:
    parser = argparse.ArgumentParser()
    sim.add_arguments(parser)
    args = parser.parse_args(
        [
            *("--meter", "000000000001", "--meter", "123456789012", "--seed", "4"),
            *("--cost-control", "remote", "--protocol-version", "1997", "--password", "04:000000"),
        ]
    )
    devices = sim.build(args, T0)
    assert [d.address for d in devices] == ["000000000001", "123456789012"]
    assert devices[0].version == "1997" and devices[0].physics.cost_control == "remote"
    assert devices[0].credentials == Credentials(4, "000000")
    default = sim.build(parser.parse_args(["--meter", "000000000009"]), T0)[0]
    assert default.credentials == PWD and default.version == "2007"
    for bad in (["--meter", "AAAAAAAAAAAA"], ["--meter", "12"], ["--meter", "1", "--password", "12"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    with pytest.raises(ConfigError, match="duplicate"):
        sim.build(parser.parse_args(["--meter", "000000000003", "--meter", "000000000003"]), T0)
    assert parse_password("123456") == PWD
    with pytest.raises(ConfigError):
        Dlt645Meter("999999999999")


def test_same_seed_same_meter_other_seed_other_meter() -> None:
    a, b, c = (Dlt645Meter(ADDR, seed=s, start_time=T0) for s in (1, 1, 2))
    assert a.values(T0 + 5) == b.values(T0 + 5) != c.values(T0 + 5)
