"""Point value codec: every type, word order, byte order, scale/offset, labels; and write requests."""

from __future__ import annotations

import math

import pytest

from protocols.errors import DecodeError
from protocols.modbus import (
    EncodeError,
    Point,
    Table,
    WriteCoil,
    WriteCoils,
    WriteRegister,
    WriteRegisters,
    decode_point,
    encode_point,
    raw_point,
    write_request,
)


def pt(type_: str, **kw) -> Point:
    kw.setdefault("name", "energy_import_kwh")
    kw.setdefault("table", Table.HOLDING)
    return Point(address=0, type=type_, **kw)


# the four layouts of 0x4366_3333 (230.2 as an IEEE single)
@pytest.mark.parametrize(
    ("word_order", "byte_order", "words"),
    [
        ("big", "big", (0x4366, 0x3333)),  # ABCD
        ("little", "big", (0x3333, 0x4366)),  # CDAB
        ("big", "little", (0x6643, 0x3333)),  # BADC
        ("little", "little", (0x3333, 0x6643)),  # DCBA
    ],
)
def test_f32_orders(word_order: str, byte_order: str, words: tuple[int, int]) -> None:
    point = pt("f32", name="voltage_a_v", unit="V", word_order=word_order, byte_order=byte_order)
    assert decode_point(point, words) == 230.2
    assert encode_point(point, 230.2) == words


@pytest.mark.parametrize(
    ("type_", "words", "raw"),
    [
        ("u16", (0xFFFF,), 65535),
        ("s16", (0xFFFF,), -1),
        ("u32", (0x0001, 0x0000), 65536),
        ("s32", (0xFFFF, 0xFFFE), -2),
        ("u64", (0x0000, 0x0000, 0x68E7, 0x7821), 1_760_000_033),
        ("s64", (0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF), -1),
        ("bcd16", (0x1234,), 1234),
        ("bcd32", (0x0012, 0x3456), 123456),
        ("f64", (0x40B5, 0xE000, 0x0000, 0x0000), 5600.0),
    ],
)
def test_types_raw(type_: str, words: tuple[int, ...], raw: float) -> None:
    point = pt(type_, unit="kWh")
    assert decode_point(point, words) == raw
    assert encode_point(point, raw) == words


def test_u64_little_word_order() -> None:
    point = pt("u64", name="meter_time_s", unit="s", word_order="little")
    assert decode_point(point, (0x7821, 0x68E7, 0, 0)) == 1_760_000_033.0


def test_scale_and_offset_are_exact_decimals() -> None:
    volts = pt("u16", name="voltage_a_v", unit="V", scale=0.1)
    assert decode_point(volts, (2201,)) == 220.1  # not 220.10000000000002
    assert encode_point(volts, 220.1) == (2201,)
    temp = pt("s16", name="temperature_c", unit="°C", scale=0.1, offset=-40.0)
    assert decode_point(temp, (655,)) == 25.5
    assert encode_point(temp, 25.5) == (655,)
    watts = pt("f32", name="power_active_kw", unit="kW", scale=0.001)
    assert decode_point(watts, (0x448F, 0xC000)) == 1.15  # 1150 W


def test_int_canonical_values_are_ints() -> None:
    count = pt("bcd16", name="purchase_count", unit="")
    value = decode_point(count, (0x0123,))
    assert value == 123 and isinstance(value, int)


def test_labels_relay_and_bool() -> None:
    relay = Point("relay_commanded", Table.COIL, 0, "bit", writable=True, values=(("closed", 1), ("open", 0)))
    assert decode_point(relay, (True,)) == "closed"
    assert encode_point(relay, "open") == (0,)
    keep = Point("keep_power", Table.COIL, 1, "bit", writable=True)
    assert decode_point(keep, (False,)) is False
    reg_relay = Point("relay", Table.HOLDING, 5, "u16", values=(("closed", 0x1C), ("open", 0x1A)))
    assert decode_point(reg_relay, (0x1A,)) == "open"
    with pytest.raises(DecodeError, match="none of"):
        decode_point(reg_relay, (7,))
    with pytest.raises(EncodeError):
        encode_point(reg_relay, "ajar")


@pytest.mark.parametrize(
    ("point", "words", "message"),
    [
        (pt("bcd16", unit="kWh"), (0x12AB,), "not BCD"),
        (pt("f32", unit="kWh"), (0x7FC0, 0x0000), "nan"),
        (pt("f32", unit="kWh"), (0x7F80, 0x0000), "inf"),
        (pt("u32", unit="kWh"), (1,), "needs 2"),
    ],
)
def test_decode_errors(point: Point, words: tuple[int, ...], message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_point(point, words)


@pytest.mark.parametrize(
    ("point", "value"),
    [
        (pt("u16", unit="kWh"), 65536),
        (pt("u16", unit="kWh"), -1),
        (pt("s16", unit="kWh"), 40000),
        (pt("bcd16", unit="kWh"), 10000),
        (pt("u32", unit="kWh", scale=0.01), 42_949_672.96),
        (pt("f32", unit="kWh"), 1e39),
        (pt("u16", unit="kWh"), "ten"),
    ],
)
def test_encode_out_of_range(point: Point, value) -> None:
    with pytest.raises(EncodeError):
        encode_point(point, value)


def test_f32_rounding_keeps_seven_digits_and_f64_keeps_all() -> None:
    assert decode_point(pt("f32", unit="kWh"), (0x43EF, 0x3EFA)) == 478.492
    assert math.isclose(decode_point(pt("f64", unit="kWh"), (0x3FB9, 0x9999, 0x9999, 0x999A)), 0.1)


def test_write_requests() -> None:
    relay = Point("relay_commanded", Table.COIL, 0, "bit", writable=True, values=(("closed", 1), ("open", 0)))
    assert write_request(relay, "open") == WriteCoil(0, False)
    assert write_request(relay, "closed", multiple=True) == WriteCoils(0, (True,))
    price = Point("price_cny_per_kwh", Table.HOLDING, 0x1000, "u32", "CNY/kWh", scale=0.0001, writable=True)
    assert write_request(price, 0.55) == WriteRegisters(0x1000, (0, 5500))
    limit = Point("alarm1_cny", Table.HOLDING, 7, "u16", "CNY", writable=True)
    assert write_request(limit, 20) == WriteRegister(7, 20)
    assert write_request(limit, 20, multiple=True) == WriteRegisters(7, (20,))
    with pytest.raises(EncodeError, match="not writable"):
        write_request(Point("balance_cny", Table.HOLDING, 9, "u32", "CNY"), 1.0)


def test_raw_points_for_reads_by_address_and_type() -> None:
    value = decode_point(raw_point(Table.INPUT, 0, "f32"), (0x4366, 0x3334))
    assert value == 230.2 and isinstance(value, float)
    count = decode_point(raw_point(Table.HOLDING, 7, "u32", word_order="little"), (0x0002, 0x0001))
    assert count == 0x00010002 and isinstance(count, int)
    assert decode_point(raw_point(Table.HOLDING, 7, "s16", scale=0.1), (0xFFF6,)) == -1.0
    assert decode_point(raw_point(Table.COIL, 3, "bit"), (True,)) is True
    for bad in (
        lambda: raw_point(Table.INPUT, 0, "f23"),
        lambda: raw_point(Table.INPUT, 0, "bit"),
        lambda: raw_point(Table.COIL, 0, "u16"),
        lambda: raw_point(Table.INPUT, 0xFFFF, "u32"),
        lambda: raw_point(Table.INPUT, 0, "u16", word_order="middle"),
    ):
        with pytest.raises(EncodeError):
            bad()
