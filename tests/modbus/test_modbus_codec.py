"""PDU and RTU/MBAP framing pinned to the specifications' own examples and to real captures.

PDU goldens: MODBUS Application Protocol Specification v1.1b3, section 6 (the request/response
example of each function) and section 7 (exception). RTU goldens: Modbus over Serial Line v1.02
and frames quoted in public drivers (Tasmota's DDSU666 capture).
"""

from __future__ import annotations

import pytest

from protocols.errors import ChecksumError, DecodeError, FrameError
from protocols.modbus import (
    BitsReply,
    ExceptionCode,
    ExceptionReply,
    MbapFrame,
    MbapSplitter,
    ModbusException,
    ReadRequest,
    RegistersReply,
    WriteCoil,
    WriteCoils,
    WriteRegister,
    WriteRegisters,
    WriteReply,
    build_mbap,
    build_reply,
    build_request,
    build_rtu_reply,
    build_rtu_request,
    check_reply,
    crc16,
    parse_mbap,
    parse_reply,
    parse_request,
    parse_rtu_reply,
    parse_rtu_request,
)
from protocols.modbus.rtu import find_request_frame


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# (request PDU, request, reply PDU, reply) from the spec's examples, section 6.1 .. 6.12
SPEC_EXAMPLES = [
    ("01 0013 0013", ReadRequest(1, 0x13, 0x13), "01 03 CD 6B 05", None),
    ("02 00C4 0016", ReadRequest(2, 0xC4, 0x16), "02 03 AC DB 35", None),
    (
        "03 006B 0003",
        ReadRequest(3, 0x6B, 3),
        "03 06 022B 0000 0064",
        RegistersReply(3, (0x022B, 0, 0x64)),
    ),
    ("04 0008 0001", ReadRequest(4, 8, 1), "04 02 000A", RegistersReply(4, (10,))),
    ("05 00AC FF00", WriteCoil(0xAC, True), "05 00AC FF00", WriteReply(5, 0xAC, 0xFF00)),
    ("06 0001 0003", WriteRegister(1, 3), "06 0001 0003", WriteReply(6, 1, 3)),
    (
        "0F 0013 000A 02 CD 01",
        WriteCoils(0x13, (True, False, True, True, False, False, True, True, True, False)),
        "0F 0013 000A",
        WriteReply(15, 0x13, 10),
    ),
    ("10 0001 0002 04 000A 0102", WriteRegisters(1, (10, 0x0102)), "10 0001 0002", WriteReply(16, 1, 2)),
]


@pytest.mark.parametrize(("req_hex", "req", "reply_hex", "reply"), SPEC_EXAMPLES)
def test_spec_examples_round_trip(req_hex, req, reply_hex, reply) -> None:
    assert build_request(req) == h(req_hex)
    assert parse_request(h(req_hex)) == req
    parsed = parse_reply(h(reply_hex))
    if reply is not None:
        assert parsed == reply
    assert build_reply(parsed) == h(reply_hex)
    assert check_reply(req, parsed) is parsed


def test_read_coils_example_bits() -> None:
    # section 6.1: coils 27..20 = CD, 35..28 = 6B, 38..36 = 05 (LSB first)
    reply = parse_reply(h("01 03 CD 6B 05"))
    assert isinstance(reply, BitsReply)
    assert reply.bits[:19] == tuple(bool(int(c)) for c in "1011001111010110101")


def test_exception_reply_maps_to_named_error() -> None:
    reply = parse_reply(h("81 02"))  # section 7 example
    assert reply == ExceptionReply(1, 2)
    assert reply.name == "ILLEGAL_DATA_ADDRESS"
    with pytest.raises(ModbusException) as info:
        check_reply(ReadRequest(1, 0, 1), reply)
    assert (info.value.code, info.value.name, info.value.retryable) == (2, "ILLEGAL_DATA_ADDRESS", False)


@pytest.mark.parametrize(
    ("code", "name", "retryable"),
    [
        (1, "ILLEGAL_FUNCTION", False),
        (3, "ILLEGAL_DATA_VALUE", False),
        (4, "SERVER_DEVICE_FAILURE", False),
        (5, "ACKNOWLEDGE", True),
        (6, "SERVER_DEVICE_BUSY", True),
        (0x0A, "GATEWAY_PATH_UNAVAILABLE", False),
        (0x0B, "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND", False),
        (0x42, "UNKNOWN_EXCEPTION_0x42", False),
    ],
)
def test_exception_names(code: int, name: str, retryable: bool) -> None:
    exc = ExceptionReply(3, code).error()
    assert (exc.name, exc.retryable) == (name, retryable)
    assert name in str(exc)


@pytest.mark.parametrize(
    ("req", "reply", "message"),
    [
        (ReadRequest(3, 0, 2), RegistersReply(3, (1,)), "does not fit"),
        (ReadRequest(3, 0, 1), RegistersReply(4, (1,)), "reply function 4"),
        (WriteRegister(1, 5), WriteReply(6, 1, 6), "echo"),
        (WriteCoil(1, True), WriteReply(5, 1, 0), "echo"),
        (ReadRequest(3, 0, 1), ExceptionReply(4, 2), "exception reply for function 4"),
    ],
)
def test_check_reply_rejects_mismatches(req, reply, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        check_reply(req, reply)


@pytest.mark.parametrize(
    "pdu",
    [
        "03 0000 0000",
        "03 0000 007E",
        "01 0000 07D1",
        "05 0001 1234",
        "10 0001 0002 03 000A 01",
        "03 FFFF 0002",
    ],
)
def test_illegal_requests_rejected(pdu: str) -> None:
    with pytest.raises((DecodeError, FrameError)):
        parse_request(h(pdu))


def test_unknown_function_cannot_be_framed() -> None:
    with pytest.raises(FrameError, match="unsupported function"):
        parse_request(h("2B 0E 01 00"))


@pytest.mark.parametrize("pdu", ["03 04 0001", "01", "03 03 000102", ""])
def test_truncated_or_odd_replies(pdu: str) -> None:
    with pytest.raises((FrameError, DecodeError)):
        parse_reply(h(pdu))


# ---- RTU --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        "11 03 00 6B 00 03 76 87",  # Modbus over Serial Line: read 3 registers from 108, slave 17
        "01 03 00 00 00 0A C5 CD",
        "01 04 00 00 00 02 71 CB",  # SDM630 voltage L1
        "01 04 04 43 66 33 34 1B 38",  # Tasmota xnrg_11_ddsu666 capture: 230.2 V
        "01 84 02 C2 C1",
        "01 05 00 00 FF 00 8C 3A",
        "01 05 00 00 00 00 CD CA",
    ],
)
def test_crc_golden(frame: str) -> None:
    data = h(frame)
    assert crc16(data[:-2]).to_bytes(2, "little") == data[-2:]


def test_rtu_request_and_reply_golden() -> None:
    assert build_rtu_request(0x11, ReadRequest(3, 0x6B, 3)) == h("11 03 00 6B 00 03 76 87")
    assert parse_rtu_request(h("01 04 00 00 00 02 71 CB")).request == ReadRequest(4, 0, 2)
    reply = parse_rtu_reply(h("01 04 04 43 66 33 34 1B 38"))
    assert reply.unit == 1 and reply.reply == RegistersReply(4, (0x4366, 0x3334))
    assert build_rtu_reply(1, ExceptionReply(4, 2)) == h("01 84 02 C2 C1")


def test_rtu_bad_crc_and_short_frames() -> None:
    with pytest.raises(ChecksumError):
        parse_rtu_reply(h("01 04 04 43 66 33 34 1B 39"))
    with pytest.raises(FrameError):
        parse_rtu_reply(h("01 04 1B"))
    with pytest.raises(FrameError):
        parse_rtu_reply(h("01 04 04 43 66 33") + bytes(2))


def test_find_request_frame_skips_noise_and_keeps_unknown_functions() -> None:
    frame = h("01 04 00 00 00 02 71 CB")
    assert find_request_frame(b"\x00\xff" + frame) == (2, frame)
    assert find_request_frame(frame[:-1]) is None
    unknown = build_rtu_request(1, ReadRequest(3, 0, 1))[:1] + b"\x2b\x0e\x01\x00"
    unknown += crc16(unknown).to_bytes(2, "little")
    assert find_request_frame(unknown) == (0, unknown)


# ---- MBAP -------------------------------------------------------------------------------------


def test_mbap_golden() -> None:
    # Implementation Guide 3.1.3: tid 1, protocol 0, length 6, unit 0x11, read holding 0x6B x3
    frame = h("0001 0000 0006 11 03 006B 0003")
    assert build_mbap(1, 0x11, h("03 006B 0003")) == frame
    assert parse_mbap(frame) == MbapFrame(1, 0x11, h("03 006B 0003"))


def test_mbap_splitter_streams_and_rejects_bad_headers() -> None:
    a, b = build_mbap(1, 1, h("04 0000 0002")), build_mbap(2, 1, h("03 0000 0001"))
    split = MbapSplitter()
    stream = a + b
    got = [f for i in range(len(stream)) for f in split.feed(stream[i : i + 1])]
    assert [f.transaction_id for f in got] == [1, 2]
    with pytest.raises(FrameError, match="protocol id"):
        MbapSplitter().feed(h("0001 0001 0006 11 03 006B 0003"))
    with pytest.raises(FrameError, match="length"):
        parse_mbap(h("0001 0000 0009 11 03 006B 0003"))


def test_requests_reject_values_out_of_range() -> None:
    with pytest.raises(DecodeError):
        build_request(WriteRegister(1, 0x10000))
    with pytest.raises(DecodeError):
        build_request(ReadRequest(3, 0xFFFF, 2))
    with pytest.raises(DecodeError):
        build_request(ReadRequest(5, 0, 1))
    assert ExceptionCode.SERVER_DEVICE_BUSY == 6
