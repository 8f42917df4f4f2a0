"""`describe`: every field of a pasted frame explained, bad CRCs flagged not refused, JSON-ready."""

from __future__ import annotations

import json

import pytest

from protocols.dlt698 import control_byte, describe
from protocols.dlt698.fragment import split_apdu
from protocols.dlt698.frame import Frame
from protocols.errors import FrameError

from .vectors import E1_RESPONSE, METER, VECTORS, Vector


@pytest.mark.parametrize("vector", VECTORS, ids=[v.id for v in VECTORS])
def test_every_vector_is_described_as_json(vector: Vector) -> None:
    out = describe(b"\xfe\xfe" + vector.raw)
    json.dumps(out)
    assert out["hcs_ok"] and out["fcs_ok"] and out["end_ok"] and out["preamble"] == 2
    assert "error" not in out and out["apdu"]["service"]


def test_e1_response_fields() -> None:
    out = describe(VECTORS[1].raw)
    assert out["direction"] == "meter->master" and out["address"] == "123456789012"
    assert (out["address_type"], out["sa_length"], out["ca"], out["length"]) == ("single", 6, 0, 0x34)
    result = out["apdu"]["result"]
    assert result["oad"] == "00100200" and result["values"]["energy_import_kwh"] == 1234.56
    assert out["apdu"]["sequence"] == 1


def test_dar_record_and_security_fields() -> None:
    assert describe(VECTORS[11].raw)["apdu"]["result"]["dar_name"] == "object_undefined"
    rows = describe(VECTORS[10].raw)["apdu"]["result"]["records"]
    assert rows == [
        {
            "freeze_time": "2024-05-20 00:00:00",
            "energy_import_kwh": 1230.0,
            "energy_import_t1_kwh": 199.0,
            "energy_import_t2_kwh": 498.0,
            "energy_import_t3_kwh": 399.0,
            "energy_import_t4_kwh": 134.0,
            "energy_export_kwh": 0,
            "energy_export_t1_kwh": 0,
            "energy_export_t2_kwh": 0,
            "energy_export_t3_kwh": 0,
            "energy_export_t4_kwh": 0,
        }
    ]
    secured = describe(VECTORS[-1].raw)["apdu"]
    assert secured["verify"] == "RN" and secured["inner"]["service"] == "GetRequest"
    assert describe(VECTORS[8].raw)["address_type"] == "broadcast"


def test_bad_crc_is_flagged_and_fragments_described() -> None:
    bad = bytearray(VECTORS[0].raw)
    bad[-3] ^= 1
    out = describe(bytes(bad))
    assert out["fcs_ok"] is False and out["fcs_expected"] == "19FE" and out["hcs_ok"]
    part = split_apdu(E1_RESPONSE.encode() * 2, 30)[1]
    out = describe(Frame(METER, control_byte(reply=True, fragment=True), part.encode()).encode())
    assert (out["fragment_sequence"], out["fragment_type"]) == (1, "middle")


def test_an_undecodable_apdu_is_reported_not_raised() -> None:
    frame = Frame(METER, 0xC3, bytes.fromhex("85 01 01 00 10 02 00 07"))
    assert "Get-Result choice 7" in describe(frame.encode())["error"]


@pytest.mark.parametrize(
    "raw", ["", "16", "68 17 00 43 05 12 90", "68 FF 3F 43 05 12 90 78 56 34 12 00 A3 2E 16"]
)
def test_what_cannot_hold_a_frame_raises(raw: str) -> None:
    with pytest.raises(FrameError):
        describe(bytes.fromhex(raw))


def test_sniff_finds_frames_with_their_preamble_beside_645_and_noise() -> None:
    from protocols import dlt645, sniff
    from protocols.dlt698 import find_frames, summary

    req645 = dlt645.read_request("123456789012", 0x00010000).encode(2)
    burst = b"\xfe\xfe" + VECTORS[0].raw + b"\x00" + req645 + VECTORS[1].raw
    spans = [(start, end) for start, end, _ in find_frames(burst)]
    assert spans == [(0, 2 + len(VECTORS[0].raw)), (len(burst) - len(VECTORS[1].raw), len(burst))]
    frames = sniff.decode_burst(burst)
    assert [f["protocol"] for f in frames] == ["dlt698", "unknown", "dlt645", "dlt698"]
    assert summary(frames[-1]).startswith("DL/T 698.45 meter->master 123456789012 GetResponse 00100200")
