"""Request builders and reply parsers pinned to dlt645.md §7.1 (read, read address, time sync, control,
abnormal replies), plus follow-up frames, writes and the simulator-side parsers/builders."""

from __future__ import annotations

import datetime as dt

import pytest

from protocols.dlt645 import (
    BROADCAST,
    ControlCommand,
    ControlRequest,
    Credentials,
    EncodeError,
    MeterRefused,
    ReadAddressRequest,
    ReadRequest,
    SecurityRefused,
    TimeSyncRequest,
    UnexpectedReply,
    Version,
    WriteRequest,
    abnormal_reply,
    ack_reply,
    address_reply,
    check_reply,
    control_ciphertext_request,
    control_request,
    join_read_replies,
    lookup,
    parse_ack_reply,
    parse_address_reply,
    parse_frame,
    parse_read_reply,
    parse_request,
    read_address_request,
    read_follow_request,
    read_reply,
    read_request,
    time_sync_request,
    version_of,
    write_request,
)
from protocols.errors import DecodeError, DeviceErrorReply

from .vectors import BY_ID

H1_UNTIL = dt.datetime(2018, 5, 12, 15, 41, 24)


@pytest.mark.parametrize(
    ("vid", "address", "di", "version"),
    [
        ("A1", "000102030425", 0x00010000, "2007"),
        ("B1", "652022122003", 0x00000000, "2007"),
        ("B3", "652022122018", 0x0201FF00, "2007"),
        ("D1", "002241020208", 0x04000402, "2007"),
        ("D5", "000000000001", 0x00010000, "2007"),
        ("E1", "123456789012", 0x00010000, "2007"),
        ("I1", "AAAAAAAAAAAA", 0x02010100, "2007"),
        ("G1", "000000000003", 0xB611, "1997"),
        ("L1", "AAAAAAAAAAAA", 0x9010, "1997"),
    ],
)
def test_read_requests_byte_exact(vid: str, address: str, di: int, version: str) -> None:
    v = BY_ID[vid]
    request = read_request(address, di, version)
    assert request.encode(v.preamble) == v.raw
    assert parse_request(request) == ReadRequest(di, Version(version))


@pytest.mark.parametrize(
    ("vid", "di", "expected"),
    [
        ("A2", 0x00010000, {"energy_import_kwh": 1206.42}),
        ("D6", 0x00010000, {"energy_import_kwh": 112280.26}),
        ("B4", 0x0201FF00, {"voltage_a_v": 0.0, "voltage_b_v": 0.0, "voltage_c_v": 239.4}),
        ("D2", 0x04000402, {"meter_number": "002241020208"}),
        ("G2", 0xB611, {"voltage_a_v": 100.0}),
        ("L2", 0x9010, {"energy_import_kwh": 2463.48}),
    ],
)
def test_read_replies(vid: str, di: int, expected: dict[str, object]) -> None:
    frame = parse_frame(BY_ID[vid].raw)
    reply = parse_read_reply(frame, di=di)
    assert reply.values() == expected and not reply.follow_up
    rebuilt = read_reply(frame.address, di, reply.data, reply.version)
    assert rebuilt.encode(BY_ID[vid].preamble) == BY_ID[vid].raw


def test_version_from_the_control_byte() -> None:
    assert version_of(parse_frame(BY_ID["A2"].raw)) == Version.V2007
    assert version_of(parse_frame(BY_ID["L2"].raw)) == Version.V1997
    assert version_of(parse_frame(BY_ID["N1"].raw)) is None


def test_reply_with_another_di_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="meter 123456789012: reply carries DI 00010000, asked 00900200"):
        parse_read_reply(parse_frame(BY_ID["E2"].raw), di=0x00900200)


def test_abnormal_read_reply_raises_meter_refused() -> None:
    frame = parse_frame(BY_ID["F3"].raw)
    with pytest.raises(MeterRefused, match="meter 123456789012 refused function 0x11") as info:
        parse_read_reply(frame, di=0x00010000)
    assert isinstance(info.value, DeviceErrorReply)
    assert (info.value.code, info.value.reasons, info.value.retryable) == (2, ("no_requested_data",), False)
    both = abnormal_reply("000000000001", 0x1C, 0x06)
    with pytest.raises(MeterRefused) as info:
        check_reply(both)
    assert info.value.reasons == ("no_requested_data", "unauthorized")
    with pytest.raises(MeterRefused) as info:
        check_reply(abnormal_reply("000000000001", 0x01, 0x04), Version.V1997)
    assert info.value.reasons == ("wrong_password",)
    with pytest.raises(SecurityRefused) as info:
        check_reply(abnormal_reply("000000000001", 0x03, 0x0008))
    assert info.value.reasons == ("authentication_failed",)
    assert abnormal_reply("123456789012", 0x11, 2).encode() == BY_ID["F3"].raw


def test_read_address() -> None:
    assert read_address_request().encode(3) == BY_ID["C1"].raw
    assert parse_request(read_address_request()) == ReadAddressRequest()
    assert parse_address_reply(parse_frame(BY_ID["D3"].raw)) == "002241020208"
    assert parse_address_reply(parse_frame(BY_ID["D4"].raw)) == "000000000001"
    assert address_reply("002241020208").encode() == BY_ID["D3"].raw
    with pytest.raises(UnexpectedReply):
        parse_address_reply(parse_frame(BY_ID["E2"].raw))


def test_broadcast_time_sync() -> None:
    when = dt.datetime(2017, 6, 5, 10, 22, 51)
    frame = time_sync_request(when)
    assert frame.address == BROADCAST and frame.encode() == BY_ID["N1"].raw
    assert parse_request(parse_frame(BY_ID["N1"].raw)) == TimeSyncRequest(when)


def test_control_trip_golden_pair() -> None:
    cred = Credentials(level=0, password="000000", operator="00000000")
    frame = control_request("111111111111", ControlCommand.TRIP, H1_UNTIL, cred)
    assert frame.encode() == BY_ID["H1"].raw
    assert parse_request(frame) == ControlRequest(cred, 0x1A, H1_UNTIL)
    assert ack_reply("111111111111", 0x1C).encode() == BY_ID["H2"].raw
    parse_ack_reply(parse_frame(BY_ID["H2"].raw), 0x1C)


def test_password_and_operator_byte_order() -> None:
    # dlt645.md §2.2: level 02 / 123456 goes out as 02 56 34 12; operator low byte first
    cred = Credentials(level=2, password="123456", operator="12345678")
    assert cred.encode() == bytes.fromhex("02 56 34 12 78 56 34 12")
    assert Credentials(2, "123456", typed_order=True).encode(operator=False) == bytes.fromhex("02 12 34 56")
    assert Credentials.decode(cred.encode()) == cred
    keep = control_request("000000000001", ControlCommand.KEEP_POWER_ON, H1_UNTIL, cred)
    assert keep.data[:10] == bytes.fromhex("02 56 34 12 78 56 34 12 3A 00")
    with pytest.raises(EncodeError, match="password must be 6 digits"):
        Credentials(password="12345").encode()


def test_esam_ciphertext_passes_through_unchanged() -> None:
    blob = bytes(range(16))
    frame = control_ciphertext_request("000000000001", blob, Credentials(level=98))
    assert frame.data == bytes.fromhex("98 00 00 00 00 00 00 00") + blob and len(frame.data) == 0x18
    parsed = parse_request(frame)
    assert isinstance(parsed, ControlRequest) and parsed.ciphertext == blob and parsed.command is None


def test_follow_up_frames() -> None:
    di = 0x03300D01
    assert read_follow_request("000000000001", di, 1).data == bytes.fromhex("01 0D 30 03 01")
    assert parse_request(read_follow_request("000000000001", di, 2)) == ReadRequest(
        di, Version.V2007, seq=2, follow=True
    )
    first = parse_read_reply(read_reply("000000000001", di, b"\x01\x02", more=True))
    middle = parse_read_reply(read_reply("000000000001", di, b"\x03", more=True, seq=1))
    last = parse_read_reply(read_reply("000000000001", di, b"\x04\x05", seq=2))
    assert (first.follow_up, middle.follow_up, middle.seq, last.follow_up, last.seq) == (
        True,
        True,
        1,
        False,
        2,
    )
    assert read_reply("000000000001", di, b"", more=True, seq=1).control == 0xB2
    assert join_read_replies([first, middle, last]) == b"\x01\x02\x03\x04\x05"
    other = parse_read_reply(read_reply("000000000001", 0x00010000, b"", seq=3))
    with pytest.raises(DecodeError, match="follow-up for DI"):
        join_read_replies([first, other])
    assert read_follow_request("000000000001", 0x9010, 1, "1997").data == bytes.fromhex("10 90")


def test_write_request_layouts() -> None:
    cred = Credentials(level=2, password="123456", operator="00000001")
    item = lookup("meter_time")
    frame = write_request("000000000001", item.di, bytes.fromhex("00 30 12"), cred)
    assert frame.control == 0x14
    assert frame.data == bytes.fromhex("02 01 00 04 02 56 34 12 01 00 00 00 00 30 12")
    assert parse_request(frame) == WriteRequest(item.di, Version.V2007, cred, bytes.fromhex("00 30 12"))
    old = write_request("000000000001", 0xC011, b"\x00\x30\x12", cred, "1997")
    assert old.control == 0x04 and old.data == bytes.fromhex("11 C0 02 56 34 12 00 30 12")
    with pytest.raises(EncodeError, match="maximum is 50"):
        write_request("000000000001", item.di, bytes(40), cred)
