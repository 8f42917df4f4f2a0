"""`16` freeze and `17` change-baud requests, byte for byte, and the change-baud reply."""

from __future__ import annotations

import pytest

from protocols.dlt645 import (
    EncodeError,
    MeterRefused,
    abnormal_reply,
    change_baud_request,
    freeze_request,
    parse_change_baud_reply,
    parse_frame,
)
from protocols.dlt645.frame import Frame, control_byte

ADDR = "000000000001"
HEAD = "68 01 00 00 00 00 00 68"


def test_freeze_now_daily_and_monthly() -> None:
    # DATA is scrambled +0x33: 99 -> CC, 00 -> 33, 01 -> 34
    body = "16 04 cc cc cc cc"
    assert freeze_request(ADDR).encode().hex(" ") == f"{HEAD} {body} {_cs(body)} 16".lower()
    daily = freeze_request(ADDR, minute=0, hour=0)
    assert daily.data == bytes.fromhex("00 00 99 99")
    monthly = freeze_request(ADDR, minute=30, hour=23, day=1)
    assert monthly.data == bytes.fromhex("30 23 01 99")
    assert parse_frame(monthly.encode(4)) == monthly
    with pytest.raises(EncodeError, match="hour 24"):
        freeze_request(ADDR, hour=24)


def test_change_baud_request_and_reply() -> None:
    assert change_baud_request(ADDR, 9600).data == b"\x20"
    with pytest.raises(EncodeError, match="baud 300"):
        change_baud_request(ADDR, 300)
    reply = Frame(ADDR, control_byte(0x17, reply=True), b"\x20")
    assert parse_change_baud_reply(reply) == 9600
    with pytest.raises(MeterRefused):
        parse_change_baud_reply(abnormal_reply(ADDR, 0x17, 0x08))


def _cs(hex_body: str) -> str:
    frame = bytes.fromhex(HEAD + " " + hex_body)
    return f"{sum(frame) & 0xFF:02x}"
