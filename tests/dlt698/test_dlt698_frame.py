"""Link layer: CRC, address types, control bits, L with its unit bit, SC scrambling, decode errors
naming the meter, fragments (split, acknowledge, reassemble)."""

from __future__ import annotations

import pytest

from protocols.dlt698 import (
    Address,
    AddressType,
    Fragment,
    FragmentError,
    FragmentType,
    Frame,
    Reassembler,
    TruncatedFrame,
    ack_frame,
    control_byte,
    crc16_x25,
    parse_fragment,
    parse_frame,
    split_apdu,
)
from protocols.errors import ChecksumError, FrameError

from .vectors import METER, VECTORS

E1 = VECTORS[0].raw


def test_crc_check_value() -> None:
    assert crc16_x25(b"123456789") == 0x906E


def test_fcs_alone_does_not_check_the_header() -> None:
    """dlt698.md §1: three headers, same FCS `C6 07` - so the HCS must be verified too."""
    frames = [
        Frame(Address(sa), 0x43, bytes.fromhex("0501014001020000")).encode() for sa in ("01", "1234", "AA")
    ]
    assert {f[-3:-1] for f in frames} == {bytes.fromhex("C607")}
    bad = bytearray(E1)
    bad[6] ^= 0x01  # one SA bit: the FCS would still match a recomputed HCS, ours does not
    with pytest.raises(ChecksumError, match="HCS"):
        parse_frame(bytes(bad))


@pytest.mark.parametrize(
    ("address", "af", "sa_wire"),
    [
        (Address("123456789012"), 0x05, "129078563412"),
        (Address.wildcard(), 0x45, "AAAAAAAAAAAA"),
        (Address.broadcast(), 0xC0, "AA"),
        (Address("0001", AddressType.GROUP, 2), 0xA1, "0100"),
        (Address("12345678901234567890123456789012"), 0x0F, "12907856341290785634129078563412"),
    ],
)
def test_address_field(address: Address, af: int, sa_wire: str) -> None:
    assert address.wire() == bytes((af,)) + bytes.fromhex(sa_wire)
    frame = Frame(address, 0x43, b"\x05\x01\x00\x00\x10\x02\x00\x00", 7)
    assert parse_frame(frame.encode()) == frame


def test_address_matching() -> None:
    assert Address.wildcard().matches(METER)
    assert Address("1234567890AA").matches(METER)
    assert not Address("123456789013").matches(METER)
    assert not Address.broadcast().matches(METER)
    assert not METER.matches(Address.wildcard())  # a reply never carries a wildcard


@pytest.mark.parametrize("bad", ["", "123", "12345678901G", "1" * 34])
def test_bad_address_names_it(bad: str) -> None:
    with pytest.raises(FrameError, match="meter address"):
        Address(bad)


def test_control_bits() -> None:
    assert control_byte() == 0x43
    assert control_byte(reply=True) == 0xC3
    assert control_byte(1, reply=True, prm=False) == 0x81
    c = control_byte(reply=True, fragment=True, scrambled=True)
    frame = Frame(METER, c, b"\x00\x40abc")
    assert (frame.is_reply, frame.prm, frame.fragmented, frame.scrambled, frame.function) == (
        True,
        True,
        True,
        True,
        3,
    )


def test_scrambling_adds_33_on_the_wire_and_crcs_cover_the_wire_bytes() -> None:
    frame = Frame(METER, control_byte(scrambled=True), bytes.fromhex("0501010010020000"))
    raw = frame.encode()
    assert raw[14:-3] == bytes.fromhex("3834343343353333")
    assert parse_frame(raw) == frame
    assert int.from_bytes(raw[-3:-1], "little") == crc16_x25(raw[1:-3])


def test_length_unit_bit_kilobytes() -> None:
    """L bit 14 = kilobytes (wenyl; 600888 rejects it): accepted while the frame fits 16385 bytes."""
    data = bytes(1024 - 15)  # L = 2 + C + AF + SA(6) + CA + HCS + data + FCS = 1024
    raw = bytearray(Frame(METER, 0x43, data).encode())
    assert int.from_bytes(raw[1:3], "little") == 1024
    raw[1:3] = (0x4001).to_bytes(2, "little")
    head = bytes(raw[1:12])
    raw[12:14] = crc16_x25(head).to_bytes(2, "little")
    raw[-3:-1] = crc16_x25(raw[1:-3]).to_bytes(2, "little")
    assert parse_frame(bytes(raw)).data == data


def test_reserved_length_bit_is_refused() -> None:
    raw = bytearray(E1)
    raw[2] |= 0x80
    with pytest.raises(FrameError, match="reserved"):
        parse_frame(bytes(raw))


def test_preamble_is_skipped() -> None:
    assert parse_frame(b"\xfe" * 4 + E1) == parse_frame(E1)


@pytest.mark.parametrize(
    ("raw", "error", "match"),
    [
        (E1[:10], TruncatedFrame, "not a DL/T 698.45 frame"),
        (E1[:-1], TruncatedFrame, "meter 123456789012: frame of 24 bytes, L needs 25"),
        (E1 + b"\x00", FrameError, "1 bytes after the end"),
        (E1[:-1] + b"\x17", FrameError, "ends 17, not 16"),
        (E1[:-3] + b"\x00\x00\x16", ChecksumError, "meter 123456789012: FCS 0000 != computed 19FE"),
        (b"\x68\x17\x00\x53" + E1[4:], FrameError, "reserved bit 4"),
    ],
)
def test_decode_errors_name_the_meter(raw: bytes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        parse_frame(raw)


def test_build_refuses_oversized_and_bad_fields() -> None:
    with pytest.raises(FrameError, match="maximum"):
        Frame(METER, 0x43, bytes(16400)).encode()
    with pytest.raises(FrameError, match="reserved"):
        Frame(METER, 0x53, b"").encode()
    with pytest.raises(FrameError, match="client address"):
        Frame(METER, 0x43, b"", 256).encode()


# ---- fragments ------------------------------------------------------------------------------------


def test_fragment_words() -> None:
    assert Fragment(2, FragmentType.LAST).encode() == bytes.fromhex("0240")
    assert Fragment(1, FragmentType.ACK).encode() == bytes.fromhex("0180")
    assert parse_fragment(bytes.fromhex("FF0F") + b"ab") == Fragment(0xFFF, FragmentType.FIRST, b"ab")


def _fragment_frames(apdu: bytes, size: int) -> list[Frame]:
    c = control_byte(reply=True, fragment=True)
    return [Frame(METER, c, part.encode()) for part in split_apdu(apdu, size)]


def test_split_and_reassemble_with_acks() -> None:
    apdu = bytes(range(256)) * 3
    frames = _fragment_frames(apdu, 100)
    assert [parse_fragment(f.data).type for f in frames] == [FragmentType.FIRST] + [
        FragmentType.MIDDLE
    ] * 6 + [FragmentType.LAST]
    ack = ack_frame(frames[0])
    assert not ack.is_reply and ack.fragmented and parse_fragment(ack.data) == Fragment(0, FragmentType.ACK)
    joiner = Reassembler()
    got = [joiner.add(parse_frame(f.encode())) for f in frames]
    assert got[-1] == apdu and got[:-1] == [None] * 7


def test_reassembly_ignores_a_repeat_and_refuses_a_gap() -> None:
    frames = _fragment_frames(bytes(50), 10)
    joiner = Reassembler()
    joiner.add(frames[0])
    assert joiner.add(frames[0]) is None  # FIRST again restarts
    joiner.add(frames[1])
    assert joiner.add(frames[1]) is None and joiner.duplicates == 1
    with pytest.raises(FragmentError, match="fragment 3 where 2 was due"):
        joiner.add(frames[3])
    assert joiner.dropped == 3  # the restarted first, then first + 1
    with pytest.raises(FragmentError, match="without a first fragment"):
        joiner.add(frames[4])


def test_reassembly_is_bounded() -> None:
    joiner = Reassembler(max_apdu=30)
    frames = _fragment_frames(bytes(50), 10)
    for f in frames[:3]:
        joiner.add(f)
    with pytest.raises(FragmentError, match="over 30 bytes"):
        joiner.add(frames[3])
    assert not joiner.in_progress


def test_split_refuses_what_fits_one_frame() -> None:
    with pytest.raises(FragmentError, match="unfragmented"):
        split_apdu(bytes(10), 10)
