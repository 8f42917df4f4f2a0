"""Link frames pinned to the public frames of dlt645.md §7.1, both directions, byte for byte; plus the
error cases (checksum, delimiters, length) and address / control-byte rules."""

from __future__ import annotations

import pytest

from protocols.dlt645 import (
    BROADCAST,
    WILDCARD,
    Frame,
    TruncatedFrame,
    address_from_wire,
    address_matches,
    address_to_wire,
    build_frame,
    checksum,
    control_byte,
    normalize_address,
    parse_frame,
    scramble,
    unscramble,
)
from protocols.errors import ChecksumError, FrameError

from .vectors import VECTORS, Vector


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.id)
def test_golden_frame_parses(v: Vector) -> None:
    frame = parse_frame(v.raw)
    assert frame == Frame(v.address, v.control, bytes.fromhex(v.data))


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.id)
def test_golden_frame_builds_byte_exact(v: Vector) -> None:
    assert build_frame(v.address, v.control, bytes.fromhex(v.data), preamble=v.preamble) == v.raw
    assert Frame(v.address, v.control, bytes.fromhex(v.data)).encode(v.preamble) == v.raw


def test_control_byte_fields() -> None:
    assert control_byte(0x11) == 0x11
    assert control_byte(0x11, reply=True) == 0x91
    assert control_byte(0x11, reply=True, follow_up=True) == 0xB1
    assert control_byte(0x11, reply=True, abnormal=True) == 0xD1
    f = Frame("000000000001", 0xB2)
    assert (f.is_reply, f.abnormal, f.follow_up, f.function) == (True, False, True, 0x12)
    f = Frame("000000000001", 0xD1)
    assert (f.is_reply, f.abnormal, f.follow_up, f.function) == (True, True, False, 0x11)
    assert not Frame("000000000001", 0x11).is_reply
    with pytest.raises(FrameError):
        control_byte(0x20)


def test_address_byte_order_and_wildcards() -> None:
    assert address_to_wire("123456789012") == bytes.fromhex("12 90 78 56 34 12")
    assert address_from_wire(bytes.fromhex("12 90 78 56 34 12")) == "123456789012"
    assert address_to_wire("aaaaaa000001") == bytes.fromhex("01 00 00 AA AA AA")
    assert normalize_address(" aaAA00000001") == "AAAA00000001"
    for bad in ("12345678901", "1234567890123", "12345678901A", "0000000000AB", "00000000000x"):
        with pytest.raises(FrameError, match="meter address"):
            normalize_address(bad)
    assert address_matches("000000000001", "000000000001")
    assert not address_matches("000000000001", "000000000002")
    assert address_matches(WILDCARD, "000014359743")
    assert address_matches("AAAAAAAA9743", "000014359743")
    assert not address_matches("AAAAAAAA9744", "000014359743")
    assert address_matches(BROADCAST, "000014359743")


def test_scramble_wraps_mod_256() -> None:
    assert scramble(b"\xff\xff\xcd\x00") == bytes.fromhex("32 32 00 33")
    assert unscramble(bytes.fromhex("32 32 00 33")) == b"\xff\xff\xcd\x00"
    assert checksum(b"\xff\x02") == 1


def test_bad_checksum_names_the_meter() -> None:
    raw = bytearray(bytes.fromhex("68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 16"))
    raw[-2] = 0x69
    with pytest.raises(ChecksumError, match="meter 123456789012: checksum 69 != computed 68"):
        parse_frame(bytes(raw))


@pytest.mark.parametrize(
    ("hexstr", "error", "match"),
    [
        ("68 12 90 78 56 34 12 68 11 04 33 33 34 33 68", TruncatedFrame, "needs 16"),
        ("FE FE 68 12 90 78", TruncatedFrame, "shorter than the minimum"),
        ("69 12 90 78 56 34 12 68 11 04 33 33 34 33 68 16", FrameError, "must start 68"),
        ("68 12 90 78 56 34 12 67 11 04 33 33 34 33 68 16", FrameError, "meter 123456789012"),
        ("68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 17", FrameError, "ends 17, not 16"),
        ("68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 16 00", FrameError, "after the end"),
    ],
)
def test_malformed_frames(hexstr: str, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        parse_frame(bytes.fromhex(hexstr))


def test_fe_inside_a_frame_is_data() -> None:
    # DATA bytes that scramble to FE and 16 (0xCB, 0xE3) and a CS that may be anything
    raw = build_frame("000000000001", 0x91, bytes([0xCB, 0xE3, 0x16, 0xFE]), preamble=2)
    assert parse_frame(raw).data == bytes([0xCB, 0xE3, 0x16, 0xFE])


def test_build_limits() -> None:
    with pytest.raises(FrameError, match="201 data bytes"):
        build_frame("000000000001", 0x91, bytes(201))
