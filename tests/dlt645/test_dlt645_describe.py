"""describe(): what `gridedge decode --protocol dlt645 HEX` shows for the public frames of
dlt645.md §7.1, for damaged frames, and its JSON-serialisability."""

from __future__ import annotations

import json

import pytest

from protocols.dlt645 import TruncatedFrame, describe
from protocols.errors import FrameError

from .vectors import BY_ID, VECTORS


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.id)
def test_every_golden_frame_is_described(v) -> None:  # type: ignore[no-untyped-def]
    out = describe(v.raw)
    json.dumps(out)
    assert out["address"] == v.address and out["preamble"] == v.preamble
    assert out["cs_ok"] and out["end_ok"] and "error" not in out
    assert out["control"] == f"{v.control:02X}"


def test_read_request_and_reply() -> None:
    req = describe(BY_ID["D5"].raw)
    assert req["kind"] == "read request" and req["direction"] == "master->meter"
    assert (req["di"], req["item"], req["unit"], req["version"]) == (
        "00010000",
        "energy_import_kwh",
        "kWh",
        "2007",
    )
    rep = describe(BY_ID["D6"].raw)
    assert rep["kind"] == "read reply" and rep["values"] == {"energy_import_kwh": 112280.26}
    assert rep["canonical"] == {"energy_import_kwh": 112280.26}
    old = describe(BY_ID["L2"].raw)
    assert (old["version"], old["di"], old["values"]) == ("1997", "9010", {"energy_import_kwh": 2463.48})


def test_abnormal_reply_and_control() -> None:
    err = describe(BY_ID["F3"].raw)
    assert (err["kind"], err["abnormal"], err["errors"]) == ("abnormal reply", True, ["no_requested_data"])
    trip = describe(BY_ID["H1"].raw)
    assert (trip["command_name"], trip["valid_until"], trip["password_level"]) == (
        "trip",
        "2018-05-12T15:41:24",
        0,
    )
    assert describe(BY_ID["N1"].raw)["time"] == "2017-06-05T10:22:51"
    assert describe(BY_ID["N1"].raw)["broadcast"] is True
    assert describe(BY_ID["D3"].raw)["meter_address"] == "002241020208"
    assert describe(BY_ID["C1"].raw)["wildcard"] is True


def test_status_word_3_is_spelled_out() -> None:
    from protocols.dlt645 import read_reply

    raw = read_reply("000000000001", 0x04000503, bytes.fromhex("50 10")).encode()
    out = describe(raw)
    assert out["status"]["status_word_3"]["relay"] == "open"
    assert out["canonical"]["keep_power"] is True and out["canonical"]["relay_commanded"] == "open"


def test_damaged_frames_are_still_described() -> None:
    raw = bytearray(BY_ID["E2"].raw)
    raw[-2] ^= 0xFF
    out = describe(bytes(raw))
    assert out["cs_ok"] is False and out["cs_expected"] == "CC" and out["values"]
    bad_value = describe(
        bytes.fromhex("68 01 00 00 00 00 00 68 91 08 33 33 34 33 4D 33 33 33 ") + b"\x00\x16"
    )
    assert "not BCD" in bad_value["error"]
    unknown = describe(bytes.fromhex("68 01 00 00 00 00 00 68 11 04 34 34 34 34 00 16"))
    assert unknown["di"] == "01010101" and "item" not in unknown


@pytest.mark.parametrize(
    ("hexstr", "error"),
    [
        ("FE FE 68 01 00", TruncatedFrame),
        ("68 12 90 78 56 34 12 68 11 04 33 33 34", TruncatedFrame),
        ("68 12 90 78 56 34 12 69 11 00 00 16", FrameError),
    ],
)
def test_not_a_frame(hexstr: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        describe(bytes.fromhex(hexstr))
