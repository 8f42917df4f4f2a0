"""`gridedge decode --protocol hall` speaks of devices as hall-protocol.md, the field guide and the health
topics do (issue 20, item 5): the decimal address and the device's role in the address plan (pad 34 is
the rating pad of counter 2), not the wire byte in hex alone."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from gridedge.decode_cmd import run
from protocols.hall import describe
from protocols.hall.frame import build_frame as encode
from protocols.hall.messages import Fn


@pytest.mark.parametrize(
    ("address", "role"),
    [
        (1, "dispenser"),
        (2, "keypad of counter 1"),
        (3, "keypad of counter 2"),
        (32, "keypad of counter 31"),
        (33, "rating pad of counter 1"),
        (34, "rating pad of counter 2"),
        (63, "rating pad of counter 31"),
    ],
)
def test_a_poll_names_the_decimal_address_and_the_role(address: int, role: str) -> None:
    out = describe(encode(address, Fn.POLL, b"\x00"))
    assert (out["address"], out["address_hex"], out["role"]) == (address, f"{address:02X}", role)


def test_an_address_outside_the_plan_says_so_and_broadcast_is_broadcast() -> None:
    assert "outside the default address plan" in describe(encode(0x64, Fn.POLL, b"\x00"))["role"]
    clock = describe(bytes.fromhex("FF 68 08 08 68 00 08 26 11 22 14 05 09 83 16"))
    assert (clock["address"], clock["role"], clock["broadcast"]) == (0, "broadcast", True)


def test_decode_prints_pad_34_as_the_rating_pad_of_counter_2(capsys: pytest.CaptureFixture[str]) -> None:
    frame = encode(34, Fn.POLL, b"\x00").hex(" ")
    args = argparse.Namespace(protocol="hall", json=True, hex=[frame])
    assert run(args) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["address"], shown["role"]) == (34, "rating pad of counter 2")
    args.json = False
    assert run(args) == 0
    text = capsys.readouterr().out
    assert re.search(r"^address +34$", text, re.M), text
    assert re.search(r"^role +rating pad of counter 2$", text, re.M), text
