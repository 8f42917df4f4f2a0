"""describe(): what `gridedge decode --protocol hall HEX` shows for the spec examples and damaged frames."""

from __future__ import annotations

import json

import pytest

from protocols.errors import FrameError
from protocols.hall import TruncatedFrame, describe

from .vectors import BY_ID, VECTORS


@pytest.mark.parametrize("vid", [v.id for v in VECTORS])
def test_every_example_describes_cleanly(vid: str) -> None:
    out = describe(BY_ID[vid].raw)
    json.dumps(out)
    assert out["cs_ok"] and out["end_ok"] and out["l_ok"] and "error" not in out


def test_rating_reply() -> None:
    out = describe(BY_ID["E3"].raw)
    assert out["address"] == 33 and out["direction"] == "device->master"
    assert {k: out[k] for k in ("kind", "seq", "event", "source", "level", "label", "ticket")} == {
        "kind": "poll reply",
        "seq": 4,
        "event": "rating",
        "source": "rating_pad",
        "level": 4,
        "label": "dissatisfied",
        "ticket": 291,
    }


def test_requests_and_error_reply() -> None:
    e1 = describe(BY_ID["E1"].raw)
    assert (e1["kind"], e1["ticket"], e1["counter"], e1["staff"]) == ("start evaluation", 291, 3, 1057)
    clock = describe(BY_ID["C1"].raw)
    assert clock["broadcast"] and clock["time"] == "2026-11-22T14:05:09"
    err = describe(BY_ID["X1"].raw)
    assert (err["error_reply"], err["function"], err["code"], err["reason"]) == (
        True,
        "07",
        "01",
        "unsupported_function",
    )


def test_damaged_frames_are_flagged_not_raised() -> None:
    bad = bytearray(BY_ID["P5"].raw)
    bad[-2] = 0x00
    out = describe(bytes(bad))
    assert (out["cs_ok"], out["cs_expected"], out["ticket"]) == (False, "EE", 291)
    unknown = describe(bytes.fromhex("FF 68 04 04 68 03 90 02 77 0C 16"))
    assert unknown["seq"] == 2 and "unknown EVT 77" in unknown["error"]


def test_bytes_that_cannot_hold_a_frame_raise() -> None:
    with pytest.raises(TruncatedFrame):
        describe(BY_ID["P5"].raw[:-2])
    with pytest.raises(FrameError, match="must start FF 68 L L 68"):
        describe(bytes.fromhex("68 68 03 03 68 03 10 00 13 16"))
