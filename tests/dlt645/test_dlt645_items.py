"""Data identifiers and value formats: the golden values of dlt645.md §7.1, signed BCD, fill values,
dates, blocks, status words, and the catalogue's agreement with the canonical vocabulary."""

from __future__ import annotations

import datetime as dt

import pytest

from protocols.dlt645 import (
    CATALOGUE,
    Bcd,
    EncodeError,
    Stamp,
    UnknownItem,
    Version,
    canonical_values,
    decode_value,
    decode_values,
    di_to_wire,
    encode_value,
    encode_values,
    lookup,
    parse_frame,
    status_bits,
    status_word_3,
)
from protocols.dlt645.formats import decode, encode
from protocols.errors import DecodeError
from protocols.vocabulary import VOCABULARY

from .vectors import BY_ID


@pytest.mark.parametrize(
    ("vid", "version", "di", "expected"),
    [
        ("A2", "2007", "00010000", {"energy_import_kwh": 1206.42}),
        ("B2", "2007", "00000000", {"energy_combined_kwh": 0.0}),
        ("B4", "2007", "0201FF00", {"voltage_a_v": 0.0, "voltage_b_v": 0.0, "voltage_c_v": 239.4}),
        ("D2", "2007", "04000402", {"meter_number": "002241020208"}),
        ("D6", "2007", "00010000", {"energy_import_kwh": 112280.26}),
        ("E2", "2007", "00010000", {"energy_import_kwh": 123456.78}),
        ("G2", "1997", "B611", {"voltage_a_v": 100.0}),
        ("L2", "1997", "9010", {"energy_import_kwh": 2463.48}),
    ],
)
def test_golden_reply_values(vid: str, version: str, di: str, expected: dict[str, object]) -> None:
    frame = parse_frame(BY_ID[vid].raw)
    item = lookup(di, version)
    size = len(item.di_wire)
    assert frame.data[:size] == item.di_wire
    assert decode_values(item, frame.data[size:]) == expected
    assert encode_values(item, expected) == frame.data[size:]  # type: ignore[arg-type]


def test_di_wire_order() -> None:
    assert di_to_wire(0x00010000, "2007") == bytes.fromhex("00 00 01 00")
    assert di_to_wire(0x9010, "1997") == bytes.fromhex("10 90")
    assert lookup("0201FF00").di_wire == bytes.fromhex("00 FF 01 02")
    with pytest.raises(EncodeError):
        di_to_wire(0x10000, "1997")


def test_signed_bcd_top_bit() -> None:
    fmt = Bcd(3, 1, signed=True)
    assert encode(fmt, -12.5, "x") == bytes.fromhex("25 01 80")  # dlt645.md §1.9 (S2 test)
    assert decode(fmt, bytes.fromhex("25 01 80"), "x") == -12.5
    current = lookup("current_a_a")
    assert decode_value(current, bytes.fromhex("00 25 81")) == -12.5
    assert encode_value(current, -12.5) == bytes.fromhex("00 25 81")
    with pytest.raises(EncodeError, match="negative and the item is unsigned"):
        encode_value(lookup("balance_cny"), -1.0)
    with pytest.raises(EncodeError, match="does not fit"):
        encode_value(current, 800.0)


def test_fill_values_are_missing_not_numbers() -> None:
    block = lookup("voltage_block")
    assert decode_values(block, bytes.fromhex("FF FF FF FF 94 23")) == {
        "voltage_a_v": None,
        "voltage_b_v": None,
        "voltage_c_v": 239.4,
    }
    assert decode_value(lookup("balance_cny"), b"\xee" * 4) is None
    assert encode_value(lookup("balance_cny"), None) == b"\xff" * 4
    assert canonical_values({"voltage_a_v": None, "voltage_c_v": 239.4}) == {"voltage_c_v": 239.4}
    with pytest.raises(DecodeError, match="02010100 voltage_a_v: 1a 23 is not BCD"):
        decode_value(lookup("voltage_a_v"), bytes.fromhex("1A 23"))


def test_wrong_length_names_the_item() -> None:
    with pytest.raises(DecodeError, match="00900200 balance_cny: 3 bytes, the format needs 4"):
        decode_value(lookup("00900200"), bytes(3))
    with pytest.raises(DecodeError, match="0201FF00 voltage_block: 4 bytes, the block needs 6"):
        decode_values(lookup("0201FF00"), bytes(4))


def test_dates_and_times() -> None:
    # wire order is lowest unit first: YYMMDDhhmmss -> ss mm hh DD MM YY (vector N1's payload)
    assert decode(Stamp("YYMMDDhhmmss"), bytes.fromhex("51 22 10 05 06 17"), "t") == dt.datetime(
        2017, 6, 5, 10, 22, 51
    )
    date = lookup("meter_date")
    assert decode_value(date, bytes.fromhex("01 05 06 17")) == dt.date(2017, 6, 5)
    assert encode_value(date, dt.date(2017, 6, 5)) == bytes.fromhex("01 05 06 17")  # a Monday: WW 01
    assert encode_value(date, dt.date(2017, 6, 4))[0] == 0  # Sunday is 0
    assert decode_value(lookup("meter_time"), bytes.fromhex("24 41 15")) == dt.time(15, 41, 24)
    assert decode_value(lookup("meter_time"), bytes(3)) == dt.time(0, 0, 0)  # midnight is not "missing"
    assert decode_value(lookup("power_down_1"), bytes(12)) == {"start": None, "end": None}
    when = dt.datetime(2024, 2, 29, 23, 59)
    assert (
        decode_value(lookup("purchase_last_time"), encode_value(lookup("purchase_last_time"), when)) == when
    )
    with pytest.raises(DecodeError, match="not a valid YYMMDDhhmm"):
        decode_value(lookup("purchase_last_time"), bytes.fromhex("00 00 00 32 01"))  # 32 January
    with pytest.raises(EncodeError, match="has no time of day"):
        encode_value(lookup("purchase_last_time"), dt.date(2024, 1, 1))


def test_tariff_blocks_take_as_many_tariffs_as_sent() -> None:
    block = lookup("0001FF00")
    values = {"energy_import_kwh": 10.0, "energy_import_t1_kwh": 1.0, "energy_import_t2_kwh": 9.0}
    raw = encode_values(block, values)  # type: ignore[arg-type]
    assert len(raw) == 12 and decode_values(block, raw) == values
    six = decode_values(block, bytes(4 * 7))
    assert list(six)[-1] == "energy_import_t6_kwh"
    with pytest.raises(DecodeError, match="whole number of 4-byte entries"):
        decode_values(block, bytes(6))
    freeze = lookup("05060901")
    demand = decode_values(freeze, bytes.fromhex("00 50 01 30 12 01 06 24"))
    assert demand == {
        "daily_freeze_1_demand_import_kw": {"value": 1.5, "time": dt.datetime(2024, 6, 1, 12, 30)}
    }


def test_status_word_3() -> None:
    word = decode_value(lookup("04000503"), bytes.fromhex("10 00"))  # dlt645.md §3.3: wire 43 33
    assert word == 0x0010
    assert status_word_3(0x0010)["relay"] == "open"
    fields = status_word_3(0x10D0 | 0x0200)
    assert (fields["relay"], fields["relay_commanded"], fields["pre_trip_alarm"], fields["keep_power"]) == (
        "open",
        "open",
        True,
        True,
    )
    assert fields["meter_type"] == "money_prepaid" and fields["power_supply"] == "main"
    assert status_bits(3, 0x10D0 | 0x0206) == (
        "relay_open",
        "relay_trip_commanded",
        "pre_trip_alarm",
        "keep_power",
    )
    assert status_bits(7, 1 << 5) == ("power_down",)
    assert status_bits(1, 0b101) == ("bit0", "clock_battery_low")
    assert canonical_values({"status_word_3": 0x0040, "balance_cny": 12.5, "meter_number": "1"}) == {
        "status_word_3": 0x0040,
        "relay": "closed",
        "relay_commanded": "open",
        "pre_trip_alarm": False,
        "keep_power": False,
        "balance_cny": 12.5,
    }


def test_status_word_block() -> None:
    block = lookup("040005FF")
    raw = bytes.fromhex("00 00 00 00 10 00 00 00 00 00 00 00 20 00")
    values = decode_values(block, raw)
    assert values["status_word_3"] == 0x10 and values["status_word_7"] == 0x20
    assert encode_values(block, values) == raw


def test_lookup_by_name_and_di() -> None:
    assert lookup("balance_cny") is lookup("00900200")
    assert lookup("energy_import_kwh", "1997").di == 0x9010
    assert lookup("purchase_count").di == 0x03330201
    assert lookup("power_down_count").di == 0x03110000
    assert lookup("daily_freeze_1_time").di == 0x05060001
    with pytest.raises(UnknownItem, match="not in the DL/T 645-2007 catalogue"):
        lookup("12345678")
    with pytest.raises(UnknownItem, match="neither a DL/T 645-1997 item name nor a DI"):
        lookup("balance_cny", "1997")


@pytest.mark.parametrize("version", list(Version))
def test_catalogue_agrees_with_the_vocabulary(version: Version) -> None:
    for item in CATALOGUE[version].values():
        assert len(item.di_wire) == (4 if version == Version.V2007 else 2)
        if item.name in VOCABULARY:
            assert item.unit == VOCABULARY[item.name].unit, item
    names = {item.name for item in CATALOGUE[version].values()}
    assert len(names) == len(CATALOGUE[version])  # names are unique


def test_the_items_the_brief_and_the_gateway_need_exist() -> None:
    for name in (
        "energy_import_kwh",
        "energy_import_t4_kwh",
        "voltage_a_v",
        "current_a_a",
        "power_active_kw",
        "power_factor",
        "frequency_hz",
        "meter_date",
        "meter_time",
        "status_word_3",
        "balance_cny",
        "overdraft_cny",
        "purchase_count",
        "power_down_count",
        "power_down_1",
        "daily_freeze_1_energy_import",
    ):
        assert lookup(name).name == name
