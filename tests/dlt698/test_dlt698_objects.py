"""Object catalogue: OI/attribute -> canonical names with scaler, unit and the W -> kW shift; single
elements by index; records; unknown objects as a generic tree, never an error."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from protocols.dlt698 import (
    ENTRIES,
    BitString,
    Data,
    DataType,
    DateTimeS,
    Oad,
    canonical_values,
    clock_skew_s,
    find,
    object_values,
    to_python,
)
from protocols.vocabulary import CANONICAL_NAMES

T = DataType


def arr(t: DataType, *values: int) -> Data:
    return Data.array(*(Data(t, v) for v in values))


@pytest.mark.parametrize(
    ("oad", "data", "expected"),
    [
        (
            "20040200",
            arr(T.DOUBLE_LONG, 12345, 4000, 4000, 4345),
            {"power_active_kw": 1.2345, "power_active_a_kw": 0.4},
        ),
        ("20050200", arr(T.DOUBLE_LONG, -500), {"power_reactive_kvar": -0.05}),
        ("200A0200", arr(T.LONG, 987, 1000), {"power_factor": 0.987, "power_factor_a": 1.0}),
        ("200F0200", Data(T.LONG_UNSIGNED, 5001), {"frequency_hz": 50.01}),
        ("00100400", Data.array(Data(T.LONG64_UNSIGNED, 12345678)), {"energy_import_kwh": 1234.5678}),
        ("00100202", Data(T.DOUBLE_LONG_UNSIGNED, 20000), {"energy_import_t1_kwh": 200.0}),
        ("00200201", Data(T.DOUBLE_LONG_UNSIGNED, 5), {"energy_export_kwh": 0.05}),
        ("20010400", Data(T.DOUBLE_LONG, 1500), {"current_n_a": 1.5}),
        (
            "202C0200",
            Data.structure(Data(T.DOUBLE_LONG_UNSIGNED, 12345), Data(T.DOUBLE_LONG_UNSIGNED, 7)),
            {"balance_cny": 123.45, "purchase_count": 7},
        ),
        ("202D0200", Data(T.DOUBLE_LONG_UNSIGNED, 250), {"overdraft_cny": 2.5}),
        ("80010200", Data(T.ENUM, 1), {"keep_power": True}),
        ("80010200", Data(T.ENUM, 0), {"keep_power": False}),
        ("80000300", Data(T.BIT_STRING, BitString(8, b"\x80")), {"relay": "open"}),
        ("80000300", Data(T.BIT_STRING, BitString(8, b"\x00")), {"relay": "closed"}),
        (
            "30110700",
            Data.array(
                Data.structure(Data(T.NULL), Data.structure(arr(T.DOUBLE_LONG_UNSIGNED, 12, 3600).value[0]))
            ),
            {"power_down_count": 12},
        ),
    ],
)
def test_canonical_values(oad: str, data: Data, expected: dict[str, object]) -> None:
    got = canonical_values(Oad.parse(oad), data)
    assert {k: got[k] for k in expected} == expected


def test_status_words_bit_n_of_the_string_is_bit_n_of_the_int() -> None:
    words = Data.array(
        *(Data(T.BIT_STRING, BitString(16, b"\x00\x00")) for _ in range(2)),
        Data(T.BIT_STRING, BitString(16, b"\x08\x00")),
    )
    assert canonical_values(Oad(0x2014, 2), words)["status_word_3"] == 1 << 4


def test_clock_and_address_are_named_but_not_canonical() -> None:
    values = object_values(Oad(0x4000, 2), Data(T.DATE_TIME_S, DateTimeS(2024, 5, 20, 12, 0, 30)))
    assert values == {"meter_time": dt.datetime(2024, 5, 20, 12, 0, 30)}
    assert clock_skew_s(values["meter_time"], dt.datetime(2024, 5, 20, 12, 0, 0)) == 30.0  # type: ignore[arg-type]
    assert object_values(Oad(0x4001, 2), Data(T.OCTET_STRING, bytes.fromhex("123456789012"))) == {
        "meter_address": "123456789012"
    }
    assert canonical_values(Oad(0x4000, 2), Data(T.DATE_TIME_S, DateTimeS(2024, 5, 20))) == {}


def test_unknown_objects_and_odd_layouts_are_not_errors() -> None:
    odd = Data.structure(
        Data(T.VISIBLE_STRING, "x"), Data(T.FLOAT64, float("inf")), Data(T.OAD, Oad(1, 2, 3))
    )
    assert object_values(Oad(0xF100, 2), odd) == {}
    assert object_values(Oad(0x2000, 2), odd) == {}  # voltage as text: left out, not guessed
    assert json.loads(json.dumps(to_python(odd))) == ["x", "inf", "00010203"]


def test_every_catalogue_name_is_canonical_or_documented() -> None:
    extra = {"freeze_time", "freeze_sequence", "event_start", "event_end", "event_sequence"}
    extra |= {"power_down_records", "meter_time", "meter_address", "meter_number", "energy_combined_kwh"}
    for entry in ENTRIES:
        for name in entry.names:
            assert name is None or name in CANONICAL_NAMES or name in extra, name


def test_find_gives_the_element_oad() -> None:
    assert str(find("energy_import_t1_kwh")[1]) == "00100202"  # type: ignore[index]
    assert str(find("frequency_hz")[1]) == "200F0200"  # type: ignore[index]
    assert find("no_such_value") is None
