"""Shipped register maps against frames written from their public documents, and map validation.

Golden frames: requests the planner must produce and replies carrying values from the documents'
own examples (SDM630: input registers 30001.. as f32 ABCD; DDSU666: 0x2000.. / 0x4000.. f32, values
of Tasmota's xnrg_11_ddsu666 comments; gridedge-prepaid: its YAML). CRCs are cross-checked against
pymodbus in test_modbus_pymodbus_codec.py, and each literal below passes our CRC check on parse.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from protocols.errors import ConfigError
from protocols.modbus import (
    ModbusMapError,
    RegistersReply,
    Table,
    builtin_maps,
    decode_block,
    load_map,
    parse_map,
    parse_rtu_reply,
    plan,
    plan_map,
    write_request,
)
from protocols.modbus.rtu import build_rtu_request
from protocols.vocabulary import VOCABULARY


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def decode_reply(regmap, names: list[str], reply_hex: str, request_hex: str) -> dict:
    (block,) = plan([regmap.point(n) for n in names], max_gap=0)
    assert build_rtu_request(1, block.request()) == h(request_hex)
    reply = parse_rtu_reply(h(reply_hex)).reply
    data = reply.registers if isinstance(reply, RegistersReply) else reply.bits
    return decode_block(block, data)


def test_builtin_maps_load_and_use_only_the_vocabulary() -> None:
    assert {"eastron-sdm630", "chint-ddsu666", "gridedge-prepaid"} <= set(builtin_maps())
    for name in builtin_maps():
        regmap = load_map(name)
        assert regmap.model == name
        assert all(p.name in VOCABULARY and p.unit == VOCABULARY[p.name].unit for p in regmap.points)


# ---- Eastron SDM630 -----------------------------------------------------------------------------


def test_sdm630_voltages_golden() -> None:
    values = decode_reply(
        load_map("eastron-sdm630"),
        ["voltage_a_v", "voltage_b_v", "voltage_c_v"],
        "01 04 0C 43 66 33 33 43 66 80 00 43 65 E6 66 52 36",
        "01 04 00 00 00 06 70 08",
    )
    assert values == {"voltage_a_v": 230.2, "voltage_b_v": 230.5, "voltage_c_v": 229.9}


def test_sdm630_power_in_watts_becomes_kw_and_energy_kwh() -> None:
    sdm = load_map("eastron-sdm630")
    assert decode_reply(
        sdm, ["power_active_kw"], "01 04 04 44 8F C0 00 8E 9F", "01 04 00 34 00 02 30 05"
    ) == {"power_active_kw": 1.15}
    energy = decode_reply(sdm, ["energy_import_kwh"], "01 04 04 44 9A 50 00 F3 5B", "01 04 00 48 00 02 F1 DD")
    assert energy == {"energy_import_kwh": 1234.5}


def test_sdm630_plan_respects_its_40_parameter_limit() -> None:
    blocks = plan_map(load_map("eastron-sdm630"))
    frames = [build_rtu_request(1, b.request()) for b in blocks]
    assert frames == [
        h("01 04 00 00 00 24 F0 11"),
        h("01 04 00 34 00 24 B1 DF"),
        h("01 04 00 E0 00 02 70 3D"),
    ]
    assert all(b.count <= 80 for b in blocks)


# ---- CHINT DDSU666 ------------------------------------------------------------------------------

DDSU_BLOCK = (
    "01 03 20 43 66 33 34 3F A1 47 AE BE 49 02 DE 3D BC D3 5B 00 00 00 00"
    " 3F 68 F5 C3 00 00 00 00 42 48 00 00 59 70"
)
DDSU_ENERGY = "01 03 18 43 EF 3E FA" + " 00" * 16 + " 40 C6 E9 79 14 61"


def test_ddsu666_plan_and_golden_blocks() -> None:
    ddsu = load_map("chint-ddsu666")
    blocks = plan_map(ddsu)
    frames = [build_rtu_request(1, b.request()) for b in blocks]
    assert frames == [h("01 03 20 00 00 10 4F C6"), h("01 03 40 00 00 0C 50 0F")]
    measured = decode_block(blocks[0], parse_rtu_reply(h(DDSU_BLOCK)).reply.registers)
    assert measured == {
        "voltage_a_v": 230.2,
        "current_a_a": 1.26,
        "power_active_kw": -0.1963,  # Tasmota: -196.3 W
        "power_reactive_kvar": 0.0922,
        "power_factor": 0.91,
        "frequency_hz": 50.0,
    }
    energy = decode_block(blocks[1], parse_rtu_reply(h(DDSU_ENERGY)).reply.registers)
    assert energy == {"energy_import_kwh": 478.492, "energy_export_kwh": 6.216}


def test_ddsu666_tasmota_capture_with_function_04(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "protocols/modbus/maps/chint-ddsu666.yaml").read_text()
    path = tmp_path / "ddsu666-fc04.yaml"
    path.write_text(text.replace("table: holding", "table: input"))
    values = decode_reply(
        load_map(path), ["voltage_a_v"], "01 04 04 43 66 33 34 1B 38", "01 04 20 00 00 02 7A 0B"
    )
    assert values == {"voltage_a_v": 230.2}


# ---- gridedge-prepaid ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepaid():
    return load_map("gridedge-prepaid")


@pytest.mark.parametrize(
    ("names", "request_hex", "reply_hex", "expected"),
    [
        (
            ["voltage_a_v", "voltage_b_v", "voltage_c_v", "frequency_hz"],
            "01 04 00 00 00 04 F1 C9",
            "01 04 08 08 98 08 A2 08 8E 13 88 AB EE",
            {"voltage_a_v": 220.0, "voltage_b_v": 221.0, "voltage_c_v": 219.0, "frequency_hz": 50.0},
        ),
        (
            ["energy_import_kwh"],
            "01 04 00 0E 00 02 10 08",
            "01 04 04 D6 87 00 12 F3 E8",
            {"energy_import_kwh": 12345.67},
        ),
        (["balance_cny"], "01 04 00 18 00 02 F1 CC", "01 04 04 00 00 30 39 2F 96", {"balance_cny": 123.45}),
        (
            ["purchase_count", "power_down_count", "status_word_3"],
            "01 04 00 1C 00 03 71 CD",
            "01 04 06 01 23 00 07 12 50 19 D8",
            {"purchase_count": 123, "power_down_count": 7, "status_word_3": 0x1250},
        ),
        (
            ["meter_time_s"],
            "01 04 00 1F 00 04 C0 0F",
            "01 04 08 00 00 00 00 68 E7 78 21 6A 42",
            {"meter_time_s": 1760000033.0},
        ),
        (
            ["power_factor", "temperature_c"],
            "01 04 00 0C 00 02 B1 C8",
            "01 04 04 FE 0C FF C9 8B C9",
            {"power_factor": -0.5, "temperature_c": -5.5},
        ),
        (
            ["price_cny_per_kwh"],
            "01 03 10 00 00 02 C0 CB",
            "01 03 04 00 00 14 A3 B5 4A",
            {"price_cny_per_kwh": 0.5283},
        ),
        (
            ["purchase_total_cny"],
            "01 03 10 0C 00 04 80 CA",
            "01 03 08 40 B5 E0 00 00 00 00 00 63 4C",
            {"purchase_total_cny": 5600.0},
        ),
        (
            ["relay_commanded", "keep_power"],
            "01 01 00 00 00 02 BD CB",
            "01 01 01 01 90 48",
            {"relay_commanded": "closed", "keep_power": False},
        ),
        (
            ["relay", "pre_trip_alarm"],
            "01 02 00 00 00 02 F9 CB",
            "01 02 01 02 20 49",
            {"relay": "open", "pre_trip_alarm": True},
        ),
    ],
)
def test_prepaid_golden(prepaid, names, request_hex, reply_hex, expected) -> None:
    assert decode_reply(prepaid, names, reply_hex, request_hex) == expected


def test_prepaid_command_frames(prepaid) -> None:
    def frame(name: str, value) -> bytes:
        return build_rtu_request(1, write_request(prepaid.point(name), value))

    assert frame("relay_commanded", "open") == h("01 05 00 00 00 00 CD CA")
    assert frame("relay_commanded", "closed") == h("01 05 00 00 FF 00 8C 3A")
    assert frame("keep_power", True) == h("01 05 00 01 FF 00 DD FA")
    assert frame("price_cny_per_kwh", 0.55) == h("01 10 10 00 00 02 04 00 00 15 7C 31 1E")


def test_prepaid_plan_reads_each_table_in_one_request(prepaid) -> None:
    blocks = plan_map(prepaid)
    assert [(b.table, b.address, b.count) for b in blocks] == [
        (Table.HOLDING, 0x1000, 16),
        (Table.INPUT, 0, 35),
        (Table.COIL, 0, 2),
        (Table.DISCRETE, 0, 2),
    ]
    assert build_rtu_request(1, blocks[1].request()) == h("01 04 00 00 00 23 B1 D3")


# ---- validation ---------------------------------------------------------------------------------

GOOD = """\
model: test-meter
defaults: {table: holding, type: u16}
points:
  - {name: voltage_a_v, address: 0, unit: V, scale: 0.1}
  - {name: current_a_a, address: 1, type: f32, unit: A}
"""


def problems(text: str, source: str = "test.yaml") -> list[str]:
    with pytest.raises(ModbusMapError) as info:
        parse_map(text, source=source)
    assert isinstance(info.value, ConfigError)
    return info.value.problems


def test_good_map_parses() -> None:
    regmap = parse_map(GOOD, source="test.yaml")
    assert [p.address for p in regmap.points] == [0, 1] and regmap.origin == "test.yaml"


@pytest.mark.parametrize(
    ("line", "replacement", "expected"),
    [
        # overlap: current_a_a (f32 at 1..2) vs a u16 at 2
        (
            "",
            "  - {name: frequency_hz, address: 2, unit: Hz}\n",
            "test.yaml:6: points[2] (frequency_hz): address: holding 2 overlaps current_a_a (1..2)",
        ),
        ("type: f32", "type: f23", "test.yaml:5: points[1] (current_a_a): type: unknown type 'f23'"),
        (
            "name: voltage_a_v",
            "name: voltage_l1",
            "test.yaml:4: points[0] (voltage_l1): name: unknown name 'voltage_l1'",
        ),
        ("unit: V, ", "", "test.yaml:4: points[0] (voltage_a_v): unit: missing"),
        (
            "unit: A",
            "unit: mA",
            "test.yaml:5: points[1] (current_a_a): unit: 'mA' is not the unit of current_a_a ('A')",
        ),
        ("scale: 0.1", "scale: 0", "test.yaml:4: points[0] (voltage_a_v): scale: must be a non-zero number"),
        (
            "address: 1,",
            "address: 70000,",
            "test.yaml:5: points[1] (current_a_a): address: must be an integer 0..65535",
        ),
        (
            "address: 1,",
            "address: 65535,",
            "test.yaml:5: points[1] (current_a_a): address: 65535 + 2 registers runs past",
        ),
        (
            "scale: 0.1",
            "scale: 0.1, colour: red",
            "test.yaml:4: points[0] (voltage_a_v): colour: unknown field",
        ),
        (
            "name: current_a_a, address: 1, type: f32, unit: A",
            "name: voltage_a_v, address: 1, type: f32, unit: V",
            "test.yaml:5: points[1] (voltage_a_v): name: duplicate of points[0]",
        ),
        (
            "type: f32,",
            "type: f32, table: input, writable: true,",
            "points[1] (current_a_a): writable: input is a read-only table",
        ),
        ("type: f32,", "type: bit,", "points[1] (current_a_a): type: bit on a holding table"),
        ("model: test-meter\n", "", "test.yaml:1: model: missing or not a string"),
    ],
)
def test_validation_errors_name_file_line_point_and_field(line: str, replacement: str, expected: str) -> None:
    text = GOOD + replacement if line == "" else GOOD.replace(line, replacement)
    assert any(expected in p for p in problems(text)), problems(text)


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        (
            "{name: relay, table: coil, address: 5, type: bit, unit: ''}",
            "needs exactly the labels ['closed', 'open']",
        ),
        (
            "{name: relay, table: coil, address: 5, type: bit, unit: '', values: {closed: 2, open: 0}}",
            "closed: 2 does not fit bit",
        ),
        (
            "{name: relay, address: 5, type: u16, unit: '', values: {closed: 1, open: 1}}",
            "two labels share one raw value",
        ),
        ("{name: purchase_count, address: 5, unit: '', scale: 0.1}", "purchase_count is an integer"),
        ("{name: keep_power, address: 5, type: f32, unit: ''}", "keep_power is a state"),
        (
            "{name: frequency_hz, table: discrete, address: 5, type: bit, unit: Hz}",
            "cannot live in a discrete bit",
        ),
        (
            "{name: frequency_hz, address: 5, unit: Hz, values: {closed: 1, open: 0}}",
            "labels are for relay/bool points",
        ),
    ],
)
def test_semantic_point_errors(point: str, expected: str) -> None:
    found = problems(GOOD + f"  - {point}\n")
    assert any(expected in p and "points[2]" in p for p in found), found


def test_top_level_errors() -> None:
    assert "not valid YAML" in problems("model: [unclosed\n")[0]
    assert "a map is a mapping" in problems("- 1\n")[0]
    found = problems("model: x\nrequest: {max_gap: -1, per_point: maybe, speed: 3}\npoints: []\nextra: 1\n")
    text = "\n".join(found)
    for expected in (
        "request.max_gap",
        "request.per_point",
        "request.speed: unknown field",
        "extra: unknown field",
        "points: missing",
    ):
        assert expected in text


def test_all_problems_are_reported_at_once() -> None:
    text = GOOD.replace("type: f32", "type: f23").replace("unit: V", "unit: volts")
    assert len(problems(text)) == 2


def test_load_map_errors(tmp_path: Path) -> None:
    with pytest.raises(ModbusMapError, match="no such map file"):
        load_map("no-such-meter")
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("type: f32", "type: f23"))
    with pytest.raises(ModbusMapError, match=r"bad\.yaml:5: points\[1\] \(current_a_a\): type"):
        load_map(bad)
    with pytest.raises(ModbusMapError, match="no point named 'balance_cny'"):
        load_map("eastron-sdm630").point("balance_cny")
