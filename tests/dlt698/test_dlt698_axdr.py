"""A-XDR data: the wire forms of dlt698.md §3 (lengths, big-endian integers, bit-string counts in
bits), the selector types, and decode/encode errors that name the type and the offset."""

from __future__ import annotations

import datetime as dt

import pytest

from protocols.dlt698 import (
    NULL,
    BitString,
    Csd,
    Data,
    DataType,
    DateTime,
    DateTimeS,
    EncodeError,
    Ms,
    Oad,
    Road,
    Rsd,
    ScalerUnit,
    Ti,
)
from protocols.dlt698.axdr import MAX_DEPTH, decode_rcsd, decode_rsd, encode_rcsd, encode_rsd
from protocols.dlt698.wire import Reader, Writer
from protocols.errors import DecodeError

T = DataType


@pytest.mark.parametrize(
    ("data", "wire"),
    [
        (Data(T.DOUBLE_LONG, -12), "05 FF FF FF F4"),
        (Data(T.LONG_UNSIGNED, 2413), "12 09 6D"),
        (Data(T.SCALER_UNIT, ScalerUnit(-2, 33)), "59 FE 21"),
        (Data(T.OCTET_STRING, bytes(127)), "09 7F" + " 00" * 127),
        (Data(T.OCTET_STRING, bytes(128)), "09 81 80" + " 00" * 128),
        (Data(T.OCTET_STRING, bytes(300)), "09 82 01 2C" + " 00" * 300),
        (Data(T.BIT_STRING, BitString(16, b"\x80\x01")), "04 10 80 01"),
        (Data(T.BIT_STRING, BitString(3, b"\xa0")), "04 03 A0"),
        (Data(T.VISIBLE_STRING, "AB"), "0A 02 41 42"),
        (Data(T.DATE_TIME_S, DateTimeS(2024, 5, 20, 12)), "1C 07 E8 05 14 0C 00 00"),
        (Data(T.DATE_TIME, DateTime(2024, 5, 20, 1, 12, 0, 0, 500)), "19 07 E8 05 14 01 0C 00 00 01 F4"),
        (Data(T.TI, Ti(3, 1)), "54 03 00 01"),
        (Data(T.OAD, Oad(0xF205, 2, 1)), "51 F2 05 02 01"),
        (Data(T.ROAD, Road(Oad(0x5004, 2), (Oad(0x2021, 2),))), "52 50 04 02 00 01 20 21 02 00"),
        (Data(T.LONG64_UNSIGNED, 2**64 - 1), "15" + " FF" * 8),
        (Data.structure(Data(T.BOOL, True), NULL), "02 02 03 01 00"),
        (Data(T.RSD, Rsd.last(1)), "5A 09 01"),
        (Data(T.CSD, Csd(Oad(0x2021, 2))), "5B 00 20 21 02 00"),
        (Data(T.RCSD, (Csd(Oad(0x2021, 2)),)), "60 01 00 20 21 02 00"),
        (Data(T.MS, Ms(1)), "5C 01"),
    ],
)
def test_wire_forms(data: Data, wire: str) -> None:
    assert data.encode().hex(" ").upper() == wire
    assert Data.decode(bytes.fromhex(wire)) == data


def test_selectors_for_frozen_data() -> None:
    """Selector 9 (n-th latest), selector 10 latest n (`0A 01 01`), selector 1 on 2021 by time."""
    w = Writer()
    encode_rsd(w, Rsd(10, n=1, ms=Ms(1)))
    assert w.getvalue() == bytes.fromhex("0A 01 01")
    when = DateTimeS(2024, 5, 20)
    w = Writer()
    encode_rsd(w, Rsd.equal(Oad(0x2021, 2), Data(T.DATE_TIME_S, when)))
    assert w.getvalue() == bytes.fromhex("01 20 21 02 00 1C 07 E8 05 14 00 00 00")
    window = Rsd.time_range(Oad(0x2021, 2), when, DateTimeS(2024, 5, 21))
    w = Writer()
    encode_rsd(w, window)
    assert w.getvalue() == bytes.fromhex("02 20 21 02 00 1C 07 E8 05 14 00 00 00 1C 07 E8 05 15 00 00 00 00")
    assert decode_rsd(Reader(w.getvalue())) == window


def test_rcsd_with_a_road_column() -> None:
    rcsd = (Csd(Oad(0x2021, 2)), Csd(Road(Oad(0x5004, 2), (Oad(0x0010, 2), Oad(0x0020, 2)))))
    w = Writer()
    encode_rcsd(w, rcsd)
    assert decode_rcsd(Reader(w.getvalue())) == rcsd


def test_dates_with_unspecified_fields() -> None:
    assert DateTimeS(2024, 5, 20, 12).to_datetime() == dt.datetime(2024, 5, 20, 12)
    assert DateTimeS(0xFFFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF).to_datetime() is None
    assert DateTimeS(2024, 2, 30).to_datetime() is None  # kept as sent, not a datetime
    assert DateTime.of(dt.datetime(2024, 5, 19, 1, 2, 3, 4000)) == DateTime(2024, 5, 19, 0, 1, 2, 3, 4)


@pytest.mark.parametrize(
    ("wire", "match"),
    [
        ("06 00 01", "double_long_unsigned: needs 4 bytes, 2 left at offset 1"),
        ("07", "unknown data type 7 at offset 0"),
        ("09 05 01", "octet_string: needs 5 bytes"),
        ("09 85 00 00 00 00 01", "length prefix 85"),
        ("01 7F 00", "array: 127 items cannot fit in 1 bytes"),
        ("0C 02 C3 28", "utf8-string is not UTF-8"),
        ("5A 0B", "RSD selector 11 outside 0..10"),
        ("5B 02", "CSD choice 2"),
        ("5C 09", "MS choice 9"),
        ("12 00 01 00", "1 bytes after the end"),
    ],
)
def test_decode_errors_name_type_and_offset(wire: str, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        Data.decode(bytes.fromhex(wire))


def test_nesting_is_bounded() -> None:
    deep = bytes.fromhex("01 01") * (MAX_DEPTH + 2) + b"\x00"
    with pytest.raises(DecodeError, match="nested deeper"):
        Data.decode(deep)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (Data(T.UNSIGNED, 256), "unsigned: 256 does not fit"),
        (Data(T.INTEGER, -129), "integer: -129 does not fit"),
        (Data(T.LONG, True), "long: value must be an int"),
        (Data(T.OCTET_STRING, "text"), "octet_string: expected bytes"),
        (Data(T.VISIBLE_STRING, "é€"), "visible_string: cannot encode"),
        (Data(T.ARRAY, (1, 2)), "array: expected Data"),
        (Data(T.NULL, 0), "null: value must be None"),
        (Data(T.RSD, Rsd(1)), "RSD selector 1: needs an OAD and 1 values"),
        (Data(T.MS, Ms(8)), "MS choice 8"),
    ],
)
def test_encode_errors_name_the_type(data: Data, match: str) -> None:
    with pytest.raises(EncodeError, match=match):
        data.encode()


def test_bit_string_bits() -> None:
    bits = BitString(16, b"\x80\x01")
    assert bits.set_bits() == (0, 15)
    assert str(bits) == "1000000000000001"
