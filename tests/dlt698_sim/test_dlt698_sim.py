"""The simulated DL/T 698.45 meter as a pure model: request frames built with the codec (and the
reference's worked frames, dlt698.md §6) in, replies out through `respond()`, read back with the
gateway's reply matcher and checks."""

from __future__ import annotations

import datetime as dt

import pytest

from firmware_sim.device import SimDevice
from firmware_sim.devices.dlt698 import Dlt698Meter, fake_mac
from firmware_sim.prepaid import RELAY_SETTLE_S
from protocols.dlt698 import (
    NULL,
    ActionRequest,
    ActionResponse,
    Address,
    Data,
    DataType,
    DateTimeS,
    ErrorApdu,
    ErrorResponse,
    Frame,
    GetNextResponse,
    GetRecordResponse,
    GetRequest,
    MeterRefused,
    Oad,
    Omd,
    Reply,
    ReplyMatcher,
    Rsd,
    SecurityRequest,
    SecurityResponse,
    Ti,
    TimeTag,
    action_request,
    check_reply,
    columns,
    control_byte,
    get_request,
    last_records_request,
    next_request,
    parse_fragment,
    parse_frame,
    parse_reply,
    raise_for_dar,
    record_request,
    record_rows,
    request_frame,
    result_values,
    secured_request,
    set_request,
    split_apdu,
    time_range_request,
)
from tests.dlt698.vectors import VECTORS

T = DataType
T0 = 1_760_000_000.0  # 2025-10-09 16:53:20 CST
ADDR = "123456789012"  # the reference's worked-example meter
FRAMES = {v.id: v.raw for v in VECTORS}
RELAY_1 = Data(T.OAD, Oad(0xF205, 2, 1))
RELAY_2 = Data(T.OAD, Oad(0xF205, 2, 2))
DAILY = Oad(0x5004, 2)
MINUTE = Oad(0x5002, 2)
ENERGY_COLUMNS = columns(Oad(0x2021, 2), Oad(0x0010, 2), Oad(0x0020, 2))


def exchange(meter: Dlt698Meter, frame: Frame | bytes, now: float) -> Frame | None:
    """One request on the line; the reply as the gateway's matcher picks it out of the burst."""
    raw = frame if isinstance(frame, bytes) else frame.encode(preamble=4)
    reply = meter.respond(raw, now)
    if reply is None:
        return None
    assert 0.020 <= reply.turnaround_s <= 0.100
    assert reply.data.startswith(b"\xfe\xfe\xfe\xfe\x68")  # the preamble real meters send
    request = parse_frame(raw)
    got = ReplyMatcher.for_request(request).feed(reply.data)
    assert got is not None, reply.data.hex(" ")
    return got


def transact(meter: Dlt698Meter, frame: Frame | bytes, now: float) -> Reply:
    got = exchange(meter, frame, now)
    assert got is not None
    return check_reply(frame if isinstance(frame, Frame) else parse_frame(frame), got)


def read(meter: Dlt698Meter, oad: str, now: float, piid: int = 1) -> dict:
    reply = transact(meter, get_request(ADDR, Oad.parse(oad), piid), now)
    return result_values(reply.apdu.result)


def act(meter: Dlt698Meter, omd: Omd, data: Data, now: float, piid: int = 3) -> ActionResponse:
    reply = parse_reply(exchange(meter, action_request(ADDR, omd, data, piid), now))
    assert isinstance(reply.apdu, ActionResponse)
    return reply.apdu


def trip(delay_min: int = 0, outage_min: int = 0, auto_close: bool = False) -> Data:
    return Data.array(
        Data.structure(
            RELAY_1, Data(T.UNSIGNED, delay_min), Data(T.LONG_UNSIGNED, outage_min), Data(T.BOOL, auto_close)
        )
    )


def close(mode: int) -> Data:
    return Data.array(Data.structure(RELAY_1, Data(T.ENUM, mode)))


@pytest.fixture
def meter() -> Dlt698Meter:
    return Dlt698Meter(ADDR, seed=7, start_time=T0)


def test_is_a_sim_device(meter) -> None:
    assert isinstance(meter, SimDevice) and meter.protocol == "dlt698" and meter.name == ADDR


# ---- GET ------------------------------------------------------------------------------------------


def test_reference_get_frames_are_answered_with_the_meters_values(meter) -> None:
    now = T0 + 30
    meter.tick(now)
    values = meter.physics.values(now)
    e1 = transact(meter, FRAMES["E1-req"], now)  # GET-Normal 00100200
    got = result_values(e1.apdu.result)
    assert got["energy_import_kwh"] == pytest.approx(values["energy_import_kwh"], abs=0.011)
    for t in range(1, 5):
        assert got[f"energy_import_t{t}_kwh"] == pytest.approx(values[f"energy_import_t{t}_kwh"], abs=0.006)
    e2 = transact(meter, FRAMES["E2-req"], now)  # NormalList 2000 + 2001
    volts, amps = (result_values(r) for r in e2.apdu.results)
    assert volts == {f"voltage_{p}_v": values[f"voltage_{p}_v"] for p in "abc"}
    assert amps == {f"current_{p}_a": values[f"current_{p}_a"] for p in "abc"}


def test_every_catalogued_value_reads_back_in_canonical_units(meter) -> None:
    now = T0 + 45
    meter.tick(now)
    values = meter.physics.values(now)
    power = read(meter, "20040200", now)
    assert power["power_active_kw"] == pytest.approx(values["power_active_kw"], abs=1e-4)  # sent in 0.1 W
    assert read(meter, "200A0200", now)["power_factor"] == values["power_factor"]
    assert read(meter, "200F0200", now)["frequency_hz"] == values["frequency_hz"]
    wallet = read(meter, "202C0200", now)
    assert wallet == {"balance_cny": values["balance_cny"], "purchase_count": values["purchase_count"]}
    assert read(meter, "202D0200", now) == {"overdraft_cny": values["overdraft_cny"]}
    assert read(meter, "00100201", now)["energy_import_kwh"] == pytest.approx(
        values["energy_import_kwh"], abs=0.011
    )
    assert read(meter, "80000300", now) == {"relay": "closed"}
    assert read(meter, "80010200", now) == {"keep_power": False}
    assert read(meter, "20140200", now)["status_word_3"] == values["status_word_3"]
    assert read(meter, "30110400", now)["power_down_records"] == len(meter.history.outages)
    assert read(meter, "30110700", now)["power_down_count"] == meter.physics.power_down_count
    clock = read(meter, "40000200", now)["meter_time"]
    assert clock == meter.history.meter_now(now)


def test_the_clock_drifts_and_a_set_request_sets_it(meter) -> None:
    meter.physics.drift_s_per_day = 3.0
    skew0 = meter.physics.clock_skew_s
    later = T0 + 10 * 86400
    shown = read(meter, "40000200", later)["meter_time"]
    assert meter.physics.clock_skew_s == pytest.approx(skew0 + 30.0, abs=0.01)
    assert shown == meter.history.meter_now(later)
    target = dt.datetime(2025, 10, 19, 17, 0, 0)
    reply = transact(
        meter, set_request(ADDR, Oad(0x4000, 2), Data(T.DATE_TIME_S, DateTimeS.of(target)), 6), later
    )
    assert reply.apdu.dar == 0 and meter.history.clock_sets == 1
    assert read(meter, "40000200", later)["meter_time"] == target
    wrong = set_request(ADDR, Oad(0x4000, 2), Data(T.UNSIGNED, 1), 7)
    with pytest.raises(MeterRefused) as info:
        transact(meter, wrong, later)
    assert info.value.reason == "type_mismatch"
    with pytest.raises(MeterRefused) as info:
        transact(meter, set_request(ADDR, Oad(0x2000, 2), NULL, 8), later)
    assert info.value.reason == "read_write_denied"


@pytest.mark.parametrize(
    ("oad", "reason"),
    [("99990200", "object_undefined"), ("20000204", "object_absent"), ("50040200", "read_write_denied")],
)
def test_what_the_meter_does_not_have_gets_a_dar(meter, oad: str, reason: str) -> None:
    with pytest.raises(MeterRefused) as info:
        read(meter, oad, T0 + 5)
    assert info.value.reason == reason and info.value.target == oad


def test_a_remote_cost_control_meter_has_no_wallet() -> None:
    meter = Dlt698Meter(ADDR, seed=7, start_time=T0, cost_control="remote")
    with pytest.raises(MeterRefused) as info:
        read(meter, "202C0200", T0 + 5, piid=8)
    assert info.value.dar == 4  # as the reference's E6 frame answers


# ---- addresses ------------------------------------------------------------------------------------


def test_a_wildcard_read_of_the_address_finds_the_meter(meter) -> None:
    reply = exchange(meter, FRAMES["E3-req"], T0 + 1)  # AF 45, SA AA x6 (dlt698.md E3)
    assert reply is not None and reply.address == Address(ADDR)
    assert reply.encode() == bytes.fromhex(
        "68 21 00 C3 05 12 90 78 56 34 12 00 CC 8C 85 01 01 40 01 02 00"
        " 01 09 06 12 34 56 78 90 12 00 00 CB 89 16"
    )  # byte for byte the reference's answer


def test_broadcasts_and_other_meters_get_no_answer(meter) -> None:
    other = get_request("123456789013", Oad(0x4001, 2), 1)
    assert meter.respond(other.encode(), T0) is None and meter.stats["ignored_other_address"] == 1
    broadcast = request_frame(Address.broadcast(), GetRequest(1, Oad(0x4001, 2)))
    assert meter.respond(broadcast.encode(), T0) is None and meter.stats["ignored_broadcast"] == 1
    # E4's broadcast time (2024-05-20) is more than 10 minutes off this meter's clock: ignored, counted
    assert meter.respond(FRAMES["E4-time"], T0) is None and meter.stats["time_sync_rejected"] == 1
    near = meter.history.meter_now(T0 + 60) + dt.timedelta(seconds=90)
    sync = ActionRequest(5, Omd(0x4000, 127), Data(T.DATE_TIME_S, DateTimeS.of(near)))
    assert meter.respond(request_frame(Address.broadcast(), sync).encode(), T0 + 60) is None
    assert meter.stats["time_syncs"] == 1 and meter.history.meter_now(T0 + 60) == near


def test_noise_echoes_and_645_frames_around_a_request_are_skipped(meter) -> None:
    request = get_request(ADDR, Oad(0x0010, 2), 9)
    dlt645_frame = bytes.fromhex("68 01 00 00 00 00 00 68 11 04 33 33 34 33 B3 16")
    echo_of_other_reply = FRAMES["E3-resp"]  # another meter's reply on the bus
    burst = b"\x00\xff\x68\x12" + dlt645_frame + echo_of_other_reply + request.encode(preamble=2) + b"\x55"
    reply = meter.respond(burst, T0)
    assert reply is not None
    got = ReplyMatcher.for_request(request).feed(reply.data)
    assert got is not None and check_reply(request, got).apdu.result.ok


# ---- records --------------------------------------------------------------------------------------


def test_reference_daily_freeze_read_gives_the_latest_freeze(meter) -> None:
    reply = transact(meter, FRAMES["E5-req"], T0 + 10)  # 5004, selector 9 n=1, columns 2021 0010 0020
    assert isinstance(reply.apdu, GetRecordResponse)
    [row] = record_rows(reply.apdu.result)
    day, energies = meter.history.daily_freezes()[0]
    assert row["freeze_time"] == dt.datetime.combine(day, dt.time()) == dt.datetime(2025, 10, 9)
    assert row["energy_import_kwh"] == pytest.approx(sum(energies), abs=0.011)
    assert row["energy_import_t2_kwh"] == round(energies[1], 2)
    assert row["energy_export_kwh"] == 0.0


def test_daily_freezes_by_time_range_and_nth_latest(meter) -> None:
    start, end = DateTimeS(2025, 10, 1), DateTimeS(2025, 10, 8)
    reply = transact(meter, time_range_request(ADDR, DAILY, start, end, rcsd=ENERGY_COLUMNS, piid=11), T0)
    rows = record_rows(reply.apdu.result)
    assert [r["freeze_time"].day for r in rows] == list(range(1, 8))  # [from, to), oldest first
    third = transact(meter, last_records_request(ADDR, DAILY, 3, ENERGY_COLUMNS, 12), T0)
    assert record_rows(third.apdu.result)[0]["freeze_time"] == dt.datetime(2025, 10, 7)
    energies = [r["energy_import_kwh"] for r in rows]
    assert energies == sorted(energies) and energies[0] < energies[-1]  # registers only grow
    beyond = transact(meter, last_records_request(ADDR, DAILY, 200, ENERGY_COLUMNS, 13), T0)
    assert record_rows(beyond.apdu.result) == []  # deeper than the 62 days kept: no record


def test_minute_freezes_every_quarter_hour_with_an_interval(meter) -> None:
    start, end = DateTimeS(2025, 10, 9, 12, 0), DateTimeS(2025, 10, 9, 16, 0)
    every_hour = Rsd(
        2, Oad(0x2021, 2), (Data(T.DATE_TIME_S, start), Data(T.DATE_TIME_S, end), Data(T.TI, Ti(2, 1)))
    )
    reply = transact(meter, record_request(ADDR, MINUTE, every_hour, ENERGY_COLUMNS, 14), T0)
    rows = record_rows(reply.apdu.result)
    assert [r["freeze_time"].hour for r in rows] == [12, 13, 14, 15]
    all_quarters = Rsd.time_range(Oad(0x2021, 2), start, end)
    reply = transact(meter, record_request(ADDR, MINUTE, all_quarters, ENERGY_COLUMNS, 15), T0)
    assert len(record_rows(reply.apdu.result)) == 16
    meter.tick(T0 + 3600)  # the simulation runs on: new quarter-hour freezes appear
    latest = transact(meter, last_records_request(ADDR, MINUTE, 1, ENERGY_COLUMNS, 16), T0 + 3600)
    assert record_rows(latest.apdu.result)[0]["freeze_time"] == dt.datetime(2025, 10, 9, 17, 45)


def test_all_columns_when_none_are_asked_and_selector_1(meter) -> None:
    freeze = Data(T.DATE_TIME_S, DateTimeS(2025, 10, 5))
    reply = transact(meter, record_request(ADDR, DAILY, Rsd.equal(Oad(0x2021, 2), freeze), (), 17), T0)
    result = reply.apdu.result
    assert [str(c.target) for c in result.rcsd] == [
        "20230200",
        "20210200",
        "00100200",
        "00200200",
        "00000200",
    ]
    [row] = record_rows(result)
    assert row["freeze_time"] == dt.datetime(2025, 10, 5) and row["energy_combined_kwh"] > 0


def test_power_down_events_are_records(meter) -> None:
    meter.cut_supply(T0 + 60)
    assert meter.respond(get_request(ADDR, Oad(0x4001, 2), 1).encode(), T0 + 120) is None
    meter.restore_supply(T0 + 600)
    cols = columns(Oad(0x2022, 2), Oad(0x201E, 2), Oad(0x2020, 2))
    reply = transact(meter, last_records_request(ADDR, Oad(0x3011, 2), 1, cols, 18), T0 + 610)
    [row] = record_rows(reply.apdu.result)
    assert row["event_start"] == meter.history.meter_now(T0 + 60)
    assert row["event_end"] == meter.history.meter_now(T0 + 600)
    assert row["event_sequence"] == meter.physics.power_down_count
    assert read(meter, "30110700", T0 + 610)["power_down_count"] == meter.physics.power_down_count


def test_a_long_answer_comes_in_get_next_blocks() -> None:
    meter = Dlt698Meter(ADDR, seed=7, start_time=T0, apdu_size=256)
    big = Dlt698Meter(ADDR, seed=7, start_time=T0, apdu_size=16000)
    cols = columns(Oad(0x2021, 2), Oad(0x0010, 2))
    start, end = DateTimeS(2025, 9, 1), DateTimeS(2025, 10, 10)
    request = time_range_request(ADDR, DAILY, start, end, rcsd=cols, piid=20)
    whole = transact(big, request, T0).apdu.result
    assert len(whole.rows) == 39  # 2025-09-01 .. 2025-10-09
    first = parse_reply(exchange(meter, request, T0)).apdu
    assert isinstance(first, GetNextResponse) and first.block == 1 and not first.last
    rows = list(first.records[0].rows)
    block, piid = first, 21
    while not block.last:
        frame = next_request(ADDR, block.block, piid)
        raw = meter.respond(frame.encode(), T0)
        assert raw is not None and len(raw.data) - 4 - 16 <= 256 + 2  # frame around an APDU <= 256
        block = check_reply(frame, ReplyMatcher.for_request(frame).feed(raw.data)).apdu
        assert isinstance(block, GetNextResponse) and block.dar is None
        rows += block.records[0].rows
        piid += 1
    assert block.block >= 3 and tuple(rows) == whole.rows  # the blocks hold exactly the answer
    with pytest.raises(MeterRefused) as info:  # the transfer is over
        transact(meter, next_request(ADDR, block.block, 40), T0)
    assert info.value.reason == "block_transfer_not_started"
    parse_reply(exchange(meter, request, T0))
    with pytest.raises(MeterRefused) as info:
        transact(meter, next_request(ADDR, 5, 41), T0)  # block 5 was never sent
    assert info.value.reason == "block_number_invalid"


# ---- control --------------------------------------------------------------------------------------


def test_reference_trip_then_the_relay_reads_open(meter) -> None:
    reply = transact(meter, FRAMES["E4-trip"], T0 + 1)  # 8000 m129, relay 1, no delay
    assert reply.apdu.dar == 0
    assert read(meter, "80000500", T0 + 1) == {"relay_commanded": "open"}
    assert read(meter, "80000300", T0 + 1 + RELAY_SETTLE_S) == {"relay": "open"}
    assert read(meter, "20040201", T0 + 2 + RELAY_SETTLE_S)["power_active_kw"] == 0.0
    assert act(meter, Omd(0x8000, 130), close(1), T0 + 10).dar == 0  # close now
    assert read(meter, "80000300", T0 + 11 + RELAY_SETTLE_S) == {"relay": "closed"}


def test_keep_power_refuses_a_trip_and_arrears_refuse_a_close(meter) -> None:
    assert act(meter, Omd(0x8001, 127), NULL, T0).dar == 0
    assert read(meter, "80010200", T0) == {"keep_power": True}
    assert act(meter, Omd(0x8000, 129), trip(), T0 + 1).dar == 3  # denied under keep-power
    assert act(meter, Omd(0x8001, 128), NULL, T0 + 2).dar == 0
    meter.physics.wallet.amount = -meter.physics.wallet.overdraft_limit - 1.0
    meter.tick(T0 + 3)  # the meter trips itself: arrears beyond the overdraft
    assert read(meter, "80000300", T0 + 3 + RELAY_SETTLE_S) == {"relay": "open"}
    assert act(meter, Omd(0x8000, 130), close(1), T0 + 20).dar == 3  # close refused until paid
    assert act(meter, Omd(0x8000, 130), close(0), T0 + 21).dar == 3  # allow-close too


def test_allow_close_then_the_button(meter) -> None:
    act(meter, Omd(0x8000, 129), trip(), T0)
    assert act(meter, Omd(0x8000, 130), close(0), T0 + 5).dar == 0
    assert read(meter, "80000300", T0 + 10) == {"relay": "open"}  # still open: the customer closes it
    assert meter.press_button(T0 + 20)
    assert read(meter, "80000300", T0 + 21 + RELAY_SETTLE_S) == {"relay": "closed"}
    assert not meter.press_button(T0 + 30)  # nothing permitted any more


def test_a_trip_with_alarm_delay_and_outage_duration(meter) -> None:
    assert act(meter, Omd(0x8000, 129), trip(delay_min=2, outage_min=5, auto_close=True), T0).dar == 0
    assert read(meter, "80000300", T0 + 60) == {"relay": "closed"}  # the alarm delay runs
    assert read(meter, "80000300", T0 + 121 + RELAY_SETTLE_S) == {"relay": "open"}
    assert read(meter, "80000300", T0 + 421 + RELAY_SETTLE_S) == {"relay": "closed"}  # auto-close


@pytest.mark.parametrize(
    ("omd", "data", "reason"),
    [
        (Omd(0x8000, 129), NULL, "type_mismatch"),
        (Omd(0x8000, 129), Data.array(Data.structure(RELAY_1)), "type_mismatch"),
        (
            Omd(0x8000, 130),
            Data.array(Data.structure(Data(T.OAD, Oad(0xF205, 2, 2)), Data(T.ENUM, 1))),
            "object_absent",
        ),
        (Omd(0x8000, 130), close(7), "out_of_range"),
        (Omd(0x8000, 200), NULL, "object_undefined"),
        (Omd(0x8001, 127), Data(T.UNSIGNED, 1), "type_mismatch"),
    ],
)
def test_bad_actions_get_their_dar(meter, omd: Omd, data: Data, reason: str) -> None:
    with pytest.raises(MeterRefused) as info:
        transact(meter, action_request(ADDR, omd, data, 4), T0)
    assert info.value.reason == reason and info.value.target == str(omd)
    assert meter.physics.commanded_closed


def test_alarm_on_and_off_show_in_status_word_3(meter) -> None:
    assert act(meter, Omd(0x8000, 127), NULL, T0).dar == 0
    assert read(meter, "20140203", T0)["status_word_3"] & (1 << 7)
    assert act(meter, Omd(0x8000, 128), NULL, T0).dar == 0
    assert not read(meter, "20140203", T0)["status_word_3"] & (1 << 7)


# ---- errors, time tags, security -----------------------------------------------------------------


def test_unparsable_and_unsupported_apdus_get_error_responses(meter) -> None:
    truncated = request_frame(ADDR, bytes.fromhex("05 01 2A 00 10"))  # GET-Normal cut inside its OAD
    reply = meter.respond(truncated.encode(), T0)
    assert reply is not None
    with pytest.raises(ErrorResponse) as info:
        raise_for_dar(parse_reply(parse_frame(reply.data)))
    assert info.value.reason == "apdu_unparsable" and info.value.piid == 0x2A
    connect = request_frame(ADDR, bytes.fromhex("02 05 00 10"))  # CONNECT: not needed on RS-485
    reply = parse_reply(exchange(meter, connect, T0))
    assert reply.apdu == ErrorApdu(5, 2)
    assert meter.stats["unparsable"] == 1 and meter.stats["unsupported"] == 1


def test_time_tags_are_echoed_and_a_stale_one_refused(meter) -> None:
    now = T0 + 100
    sent = DateTimeS.of(meter.history.meter_now(now) - dt.timedelta(minutes=10))
    fresh = request_frame(ADDR, GetRequest(22, Oad(0x4001, 2), TimeTag(sent, Ti(1, 30))))
    reply = transact(meter, fresh, now)
    assert reply.apdu.result.ok and reply.apdu.time_tag == TimeTag(sent, Ti(1, 30))
    stale = request_frame(ADDR, GetRequest(23, Oad(0x4001, 2), TimeTag(sent, Ti(1, 5))))
    with pytest.raises(MeterRefused) as info:
        transact(meter, stale, now)
    assert info.value.reason == "time_tag_invalid"


def test_plaintext_with_rn_is_answered_with_a_mac(meter) -> None:
    reply = transact(meter, FRAMES["E7-req"], T0)  # E1 wrapped as plaintext + RN 11..20
    assert reply.mac_unverified and reply.security is not None
    plain = reply.security.apdu
    rn = bytes(range(0x11, 0x21))
    assert reply.mac == fake_mac(meter.mac_key, rn, plain)  # deterministic, not ESAM crypto
    assert result_values(reply.apdu.result)["energy_import_kwh"] > 0
    other_rn = transact(meter, secured_request(ADDR, GetRequest(1, Oad(0x0010, 2)), bytes(16)), T0)
    assert other_rn.mac != reply.mac


def test_ciphertext_is_refused_with_a_security_dar(meter) -> None:
    cipher = SecurityRequest(bytes.fromhex("A1 B2 C3 D4 E5"), ciphered=True, verify=1, rn=bytes(16))
    got = exchange(meter, request_frame(ADDR, cipher), T0)
    assert parse_reply(got).apdu == SecurityResponse(dar=28)  # symmetric decryption error: no ESAM
    with pytest.raises(MeterRefused) as info:
        check_reply(request_frame(ADDR, cipher), got)
    assert info.value.target == "SECURITY-Request"


def test_a_secured_meter_refuses_plaintext_control_but_answers_reads() -> None:
    meter = Dlt698Meter(ADDR, seed=7, start_time=T0, secured=True)
    assert act(meter, Omd(0x8000, 129), trip(), T0).dar == 20  # security mode mismatch
    assert meter.physics.commanded_closed
    assert read(meter, "F1010200", T0) == {}  # outside the catalogue, but answered
    assert read(meter, "00100201", T0)["energy_import_kwh"] > 0


def test_a_fragmented_request_is_acknowledged_and_answered(meter) -> None:
    apdu = GetRequest(24, Oad(0x0010, 2)).encode()
    pieces = split_apdu(apdu, 3)
    for n, piece in enumerate(pieces):
        frame = Frame(Address(ADDR), control_byte(fragment=True), piece.encode())
        reply = meter.respond(frame.encode(), T0)
        assert reply is not None
        answer = parse_frame(reply.data)
        if n < len(pieces) - 1:
            ack = parse_fragment(answer.data)
            assert answer.fragmented and ack.sequence == n and ack.type.name == "ACK"
        else:
            assert not answer.fragmented and parse_reply(answer).apdu.result.ok


# ---- faults ---------------------------------------------------------------------------------------


def test_device_faults(meter) -> None:
    request = get_request(ADDR, Oad(0x0010, 2), 1)
    meter.inject("silent", 1)
    assert meter.respond(request.encode(), T0) is None and meter.stats["silenced"] == 1
    assert meter.respond(request.encode(), T0) is not None  # one request only
    meter.inject("refuse")
    with pytest.raises(MeterRefused) as info:
        transact(meter, request, T0)
    assert info.value.reason == "read_write_denied"
    meter.clear("refuse")
    meter.inject("impostor", 1)
    got = meter.respond(request.encode(), T0)
    assert got is not None and parse_frame(got.data).address == Address("123456789013")
    meter.inject("misoperate")
    act(meter, Omd(0x8000, 129), trip(), T0 + 1)
    assert read(meter, "80000300", T0 + 2 + RELAY_SETTLE_S) == {"relay": "closed"}  # stuck contact
    meter.clear()
    assert read(meter, "80000300", T0 + 3 + RELAY_SETTLE_S) == {"relay": "open"}
    with pytest.raises(KeyError, match="silent, refuse"):
        meter.inject("melt")


def test_blocks_can_be_numbered_from_0_for_600888s_client() -> None:
    meter = Dlt698Meter(ADDR, seed=7, start_time=T0, apdu_size=256, first_block=0)
    cols = columns(Oad(0x2021, 2), Oad(0x0010, 2))
    request = time_range_request(
        ADDR, DAILY, DateTimeS(2025, 9, 1), DateTimeS(2025, 10, 10), rcsd=cols, piid=30
    )
    first = transact(meter, request, T0).apdu
    assert isinstance(first, GetNextResponse) and first.block == 0
    second = transact(meter, next_request(ADDR, 0, 31), T0).apdu
    assert isinstance(second, GetNextResponse) and second.block == 1
