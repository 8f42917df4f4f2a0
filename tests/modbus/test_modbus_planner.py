"""The request planner: coalescing, gap filling, protocol and per-map limits, per-point mode, and
decoding blocks back into canonical values."""

from __future__ import annotations

import pytest

from protocols.errors import ConfigError, DecodeError
from protocols.modbus import Point, ReadBlock, Table, decode_block, encode_point, plan, plan_map
from protocols.modbus.regmap import RegisterMap, RequestPolicy


def reg(address: int, type_: str = "u16", table: Table = Table.HOLDING, name: str = "") -> Point:
    return Point(name or f"status_word_{address % 7 + 1}", table, address, type_)


def spans(blocks: list[ReadBlock]) -> list[tuple[str, int, int]]:
    return [(b.table.value, b.address, b.count) for b in blocks]


def test_adjacent_points_form_one_block() -> None:
    points = [
        reg(0, "u32", name="energy_import_kwh"),
        reg(2, name="status_word_1"),
        reg(3, "f32", name="voltage_a_v"),
    ]
    assert spans(plan(points)) == [("holding", 0, 5)]


def test_small_gaps_are_read_through_large_gaps_split() -> None:
    a, b, c = reg(0, name="status_word_1"), reg(5, name="status_word_2"), reg(30, name="status_word_3")
    assert spans(plan([a, b, c], max_gap=4)) == [("holding", 0, 6), ("holding", 30, 1)]
    assert spans(plan([a, b, c], max_gap=3)) == [("holding", 0, 1), ("holding", 5, 1), ("holding", 30, 1)]
    assert spans(plan([a, b, c], max_gap=24)) == [("holding", 0, 31)]


def test_tables_never_mix_and_order_is_stable() -> None:
    points = [
        reg(0, table=Table.INPUT, name="voltage_a_v"),
        reg(1, name="status_word_1"),
        Point("relay", Table.DISCRETE, 0, "bit"),
        Point("keep_power", Table.COIL, 3, "bit"),
        reg(0, name="status_word_2"),
    ]
    assert spans(plan(points)) == [("holding", 0, 2), ("input", 0, 1), ("coil", 3, 1), ("discrete", 0, 1)]
    assert [b.function for b in plan(points)] == [3, 4, 1, 2]


def test_protocol_limit_125_registers() -> None:
    points = [reg(2 * i, "u32", name=f"status_word_{i % 7 + 1}") for i in range(100)]  # 200 registers
    blocks = plan(points)
    assert spans(blocks) == [("holding", 0, 124), ("holding", 124, 76)]
    assert sum(len(b.points) for b in blocks) == 100
    assert all(b.request().count <= 125 for b in blocks)


def test_bit_limit_2000_and_bit_gaps() -> None:
    bits = [Point("keep_power", Table.COIL, i, "bit") for i in range(0, 2600, 100)]
    blocks = plan(bits, max_gap=8)  # 8 registers of gap = 128 bits: every 100-bit gap is filled
    assert spans(blocks) == [("coil", 0, 1901), ("coil", 2000, 501)]
    assert spans(plan(bits[:2], max_gap=6)) == [("coil", 0, 1), ("coil", 100, 1)]


def test_lower_device_limit_and_per_point() -> None:
    points = [reg(2 * i, "f32", name="voltage_a_v") for i in range(5)]
    assert spans(plan(points, max_registers=4)) == [("holding", 0, 4), ("holding", 4, 4), ("holding", 8, 2)]
    assert spans(plan(points, per_point=True)) == [("holding", 2 * i, 2) for i in range(5)]


def test_invalid_limits_and_oversized_points() -> None:
    with pytest.raises(ConfigError):
        plan([], max_registers=126)
    with pytest.raises(ConfigError):
        plan([], max_bits=0)
    with pytest.raises(ConfigError):
        plan([], max_gap=-1)
    with pytest.raises(ConfigError, match="exceed"):
        plan([reg(0, "f64", name="purchase_total_cny")], max_registers=2)
    with pytest.raises(ConfigError, match="exceed"):
        plan([reg(0, "f64", name="purchase_total_cny")], max_registers=2, per_point=True)


def test_duplicates_are_read_once() -> None:
    p = reg(4, name="status_word_1")
    (block,) = plan([p, p])
    assert block.points == (p,)


def test_plan_map_uses_the_maps_policy() -> None:
    points = (reg(0, name="status_word_1"), reg(3, name="status_word_2"))
    assert spans(plan_map(RegisterMap("m", points, request=RequestPolicy(max_gap=2)))) == [("holding", 0, 4)]
    assert len(plan_map(RegisterMap("m", points, request=RequestPolicy(max_gap=1)))) == 2
    assert len(plan_map(RegisterMap("m", points, request=RequestPolicy(per_point=True, max_gap=9)))) == 2
    assert spans(plan_map(RegisterMap("m", points), names=["status_word_2"])) == [("holding", 3, 1)]


def test_decode_block_with_gap_and_errors() -> None:
    volts = Point("voltage_a_v", Table.INPUT, 0, "u16", "V", scale=0.1)
    energy = Point("energy_import_kwh", Table.INPUT, 4, "f32", "kWh")
    (block,) = plan([volts, energy])
    registers = [2200, 0xAAAA, 0xBBBB, 0xCCCC, *encode_point(energy, 1234.5)]
    assert decode_block(block, registers) == {"voltage_a_v": 220.0, "energy_import_kwh": 1234.5}
    nan = [2200, 0, 0, 0, 0x7FC0, 0]
    errors: dict = {}
    assert decode_block(block, nan, errors) == {"voltage_a_v": 220.0}
    assert list(errors) == ["energy_import_kwh"]
    with pytest.raises(DecodeError, match="nan"):
        decode_block(block, nan)
    with pytest.raises(DecodeError, match="got 5 registers"):
        decode_block(block, registers[:5])


def test_decode_bit_block_ignores_padding() -> None:
    relay = Point("relay", Table.DISCRETE, 0, "bit", values=(("closed", 1), ("open", 0)))
    alarm = Point("pre_trip_alarm", Table.DISCRETE, 1, "bit")
    (block,) = plan([relay, alarm])
    assert decode_block(block, [True, True, False, False, False, False, False, False]) == {
        "relay": "closed",
        "pre_trip_alarm": True,
    }
    with pytest.raises(DecodeError):
        decode_block(block, [True])
