"""Golden tests: every worked frame of dlt698.md §6 parses to the APDU it is, and our builders make
exactly those bytes (the simulator shares the codec, so round trips alone could hide a misread spec)."""

from __future__ import annotations

import datetime as dt

import pytest

from protocols.dlt698 import (
    Frame,
    GetRecordResponse,
    GetResponse,
    Oad,
    Reply,
    build_frame,
    canonical_values,
    parse_apdu,
    parse_frame,
    parse_reply,
    record_rows,
    reply_frame,
    request_frame,
)

from .vectors import (
    CLOSE_NOW,
    CLOSE_NOW_APDU,
    E7_RESPONSE,
    E7_RESPONSE_APDU,
    METER,
    SET_CLOCK,
    SET_CLOCK_APDU,
    VECTORS,
    Vector,
)

IDS = [v.id for v in VECTORS]


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_vector_parses_to_its_apdu(vector: Vector) -> None:
    frame = parse_frame(vector.raw)
    assert frame.address == vector.address
    assert frame.is_reply == vector.reply
    assert frame.ca == 0
    assert parse_apdu(frame.data) == vector.apdu


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_builders_make_the_vector(vector: Vector) -> None:
    if vector.reply:
        request = request_frame(METER, b"\x05\x01\x00\x00\x00\x00\x00\x00")
        built = reply_frame(request, vector.address, vector.apdu)
    else:
        built = request_frame(vector.address, vector.apdu)
    assert built.encode().hex(" ").upper() == vector.hex
    assert built.encode(4) == b"\xfe" * 4 + vector.raw


def test_apdu_only_examples() -> None:
    assert CLOSE_NOW.encode().hex(" ").upper() == CLOSE_NOW_APDU
    assert SET_CLOCK.encode().hex(" ").upper() == SET_CLOCK_APDU
    assert parse_apdu(bytes.fromhex(E7_RESPONSE_APDU)) == E7_RESPONSE
    assert E7_RESPONSE.encode() == bytes.fromhex(E7_RESPONSE_APDU)


def test_e1_values_scaled_onto_the_vocabulary() -> None:
    reply = parse_reply(parse_frame(VECTORS[1].raw))
    assert isinstance(reply.apdu, GetResponse)
    result = reply.apdu.result
    assert result.data is not None
    assert canonical_values(result.oad, result.data) == {
        "energy_import_kwh": 1234.56,
        "energy_import_t1_kwh": 200.0,
        "energy_import_t2_kwh": 500.0,
        "energy_import_t3_kwh": 400.0,
        "energy_import_t4_kwh": 134.56,
    }


def test_e2_voltage_and_current() -> None:
    apdu = parse_apdu(parse_frame(VECTORS[3].raw).data)
    values: dict[str, object] = {}
    for result in apdu.results:  # type: ignore[union-attr]
        values |= canonical_values(result.oad, result.data)
    assert values == {
        "voltage_a_v": 241.3,
        "voltage_b_v": 241.3,
        "voltage_c_v": 241.3,
        "current_a_a": 1.0,
        "current_b_a": 1.0,
        "current_c_a": 1.0,
    }


def test_e5_daily_freeze_rows() -> None:
    apdu = parse_apdu(parse_frame(VECTORS[10].raw).data)
    assert isinstance(apdu, GetRecordResponse)
    [row] = record_rows(apdu.result)
    assert row["freeze_time"] == dt.datetime(2024, 5, 20)
    assert row["energy_import_kwh"] == 1230.0
    assert row["energy_export_kwh"] == 0


def test_e7_plaintext_with_mac_is_unwrapped_and_flagged() -> None:
    request = request_frame(METER, VECTORS[-1].apdu)
    frame = reply_frame(request, METER, E7_RESPONSE)
    reply = parse_reply(frame)
    assert isinstance(reply, Reply)
    assert reply.apdu == VECTORS[1].apdu
    assert reply.mac == bytes.fromhex("A1B2C3D4")
    assert reply.mac_unverified


def test_hcs_and_fcs_of_e1_as_the_reference_computes_them() -> None:
    raw = VECTORS[0].raw
    assert raw[12:14] == bytes.fromhex("A32E")  # crc(17 00 43 05 SA 00) = 0x2EA3
    assert raw[-3:-1] == bytes.fromhex("FE19")
    assert build_frame(METER, 0x43, parse_frame(raw).data) == raw
    assert Oad.parse("00100200") == Oad(0x0010, 2, 0)
    assert isinstance(parse_frame(raw), Frame)
