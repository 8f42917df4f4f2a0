"""`describe()` behind `gridedge decode --protocol modbus HEX`: requests, replies, exceptions, echoes,
ambiguous frames, bad CRCs, Modbus TCP frames; always JSON-serialisable."""

from __future__ import annotations

import json

import pytest

import protocols.modbus
from protocols.errors import FrameError
from protocols.modbus import describe


def d(text: str) -> dict:
    out = describe(bytes.fromhex(text))
    json.dumps(out)
    return out


def test_exported_for_the_decode_command() -> None:
    assert protocols.modbus.describe is describe  # gridedge decode imports protocols.<name>.describe


def test_read_request() -> None:
    assert d("01 04 00 00 00 02 71 CB") == {
        "framing": "rtu",
        "unit": 1,
        "function": 4,
        "function_name": "read_input_registers",
        "kind": "request",
        "address": 0,
        "count": 2,
        "crc_ok": True,
        "crc": "71cb",
    }


def test_register_reply_shows_float_readings() -> None:
    out = d("01 04 04 43 66 33 34 1B 38")
    assert out["kind"] == "reply" and out["registers"] == [0x4366, 0x3334]
    assert out["f32_abcd"] == [230.2] and out["byte_count"] == 4 and out["crc_ok"]


def test_exception_reply() -> None:
    out = d("01 84 02 C2 C1")
    assert (out["kind"], out["function"], out["exception_code"], out["exception"]) == (
        "exception",
        4,
        2,
        "ILLEGAL_DATA_ADDRESS",
    )


def test_write_echo_and_multiple_writes() -> None:
    out = d("01 05 00 00 FF 00 8C 3A")
    assert (out["kind"], out["address"], out["value"]) == ("request or reply (echo)", 0, True)
    out = d("01 10 10 00 00 02 04 00 00 15 7C 31 1E")
    assert (out["kind"], out["values"]) == ("request", [0, 0x157C])
    out = d("01 10 10 00 00 02 45 08")
    assert (out["kind"], out["count"]) == ("reply", 2)


def test_ambiguous_frame_gives_both_readings() -> None:
    # 01 01 03 xx xx xx: a read-coils reply of 3 bytes, and a read-coils request of the same length
    frame = bytearray.fromhex("01 01 03 05 00 07")
    out = describe(bytes(frame) + protocols.modbus.crc16(bytes(frame)).to_bytes(2, "little"))
    assert out["kind"] == "ambiguous"
    assert out["as_request"] == {"address": 0x0305, "count": 7}
    assert out["as_reply"]["bits"][:3] == [1, 0, 1]


def test_bad_crc_is_flagged_not_raised() -> None:
    out = d("01 04 04 43 66 33 34 1B 39")
    assert out["crc_ok"] is False and out["crc_expected"] == "1b38" and out["f32_abcd"] == [230.2]


def test_unknown_function_and_broadcast() -> None:
    out = d("00 2B 0E 01 00 00 00")
    assert out["kind"] == "unknown" and out["broadcast"] is True and "unsupported function" in out["error"]


def test_modbus_tcp_frame() -> None:
    out = d("0001 0000 0006 11 03 006B 0003")
    assert out["framing"] == "tcp" and out["transaction_id"] == 1 and out["unit"] == 0x11
    assert (out["kind"], out["address"], out["count"]) == ("request", 0x6B, 3)


@pytest.mark.parametrize("text", ["", "01", "01 04 00"])
def test_too_short(text: str) -> None:
    with pytest.raises(FrameError):
        describe(bytes.fromhex(text))
