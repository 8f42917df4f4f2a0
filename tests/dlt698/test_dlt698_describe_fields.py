"""`describe` names every field of the worked frames of dlt698.md §6 (and its APDU-only examples): no
key twice (the APDU classes' TAG / CHOICE beside tag / choice), no bare enum number (a sub-type, DAR,
RSD selector, TimeTag unit or method comes with its name), methods named from the catalogue and an
ACTION's parameter shown as typed Data and by the names of its members."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gridedge.decode_cmd import print_description
from protocols.dlt698 import GetRequest, Oad, control_byte, describe
from protocols.dlt698.apdu import TimeTag
from protocols.dlt698.datatypes import DateTimeS, Ti
from protocols.dlt698.frame import Frame

from .vectors import CLOSE_NOW_APDU, E7_RESPONSE_APDU, METER, SET_CLOCK_APDU, VECTORS

# dlt698.md §2: TimeTag `01 07 E8 05 14 0C 00 00 01 00 05` = sent 2024-05-20 12:00:00, valid 5 minutes
TIME_TAGGED = GetRequest(9, Oad(0x0010, 2), TimeTag(DateTimeS(2024, 5, 20, 12), Ti(1, 5)))
APDU_ONLY = {
    "close-now": (CLOSE_NOW_APDU, False),
    "set-clock": (SET_CLOCK_APDU, False),
    "E7-resp": (E7_RESPONSE_APDU, True),
    "time-tag": (TIME_TAGGED.encode().hex(" "), False),
}


def _frame(apdu_hex: str, reply: bool) -> bytes:
    return Frame(METER, control_byte(reply=reply), bytes.fromhex(apdu_hex)).encode()


FRAMES = {v.id: v.raw for v in VECTORS} | {k: _frame(*v) for k, v in APDU_ONLY.items()}
# an enum-valued key and the key that must name it beside it (or None: the value itself is a name)
ENUMS = {
    "choice": "choice_name",
    "function": "function_name",
    "dar": "dar_name",
    "kind": "error_name",
    "selector": "selector_name",
    "method": "method_name",
    "unit": None,
    "verify": None,
}


def _problems(node: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(node, list):
        for i, item in enumerate(node):
            found += _problems(item, f"{path}[{i}]")
    if not isinstance(node, dict):
        return found
    lowered = [k.lower() for k in node]
    found += [f"{path}: {k} twice" for k in set(lowered) if lowered.count(k) > 1]
    for key, value in node.items():
        name_key = ENUMS.get(key, "absent")
        bare = isinstance(value, int) and not isinstance(value, bool)
        if name_key != "absent" and bare and (name_key is None or name_key not in node):
            found.append(f"{path}.{key} = {value} without a name")
        found += _problems(value, f"{path}.{key}")
    return found


@pytest.mark.parametrize("frame_id", list(FRAMES))
def test_every_field_is_named_once(frame_id: str) -> None:
    out = describe(FRAMES[frame_id])
    json.dumps(out)
    assert "error" not in out and "inner_error" not in out.get("apdu", {})
    assert _problems(out) == []


def test_the_checker_sees_the_old_gaps() -> None:
    old = {"apdu": {"tag": "07", "TAG": 7, "choice": 1, "valid": {"unit": 1, "value": 5}}}
    assert sorted(_problems(old)) == [
        ".apdu.choice = 1 without a name",
        ".apdu.valid.unit = 1 without a name",
        ".apdu: tag twice",
    ]


def test_the_trip_names_its_method_and_parameters() -> None:
    apdu = describe(FRAMES["E4-trip"])["apdu"]
    assert apdu == {
        "service": "ActionRequest",
        "service_name": "ACTION-REQUEST",
        "tag": "07",
        "choice": 1,
        "choice_name": "normal",
        "piid": "03",
        "sequence": 3,
        "high_priority": False,
        "omd": {
            "omd": "80008100",
            "oi": "8000",
            "method": 129,
            "mode": 0,
            "object": "remote control",
            "method_name": "trip",
            "method_description": "remote control: trip (open the relay)",
            "verified": False,
        },
        "data": "array(1) [structure(4) {oad F2050201, unsigned 0, long-unsigned 0, bool false}]",
        "parameters": [
            {"relay": "F2050201 (relay 1)", "alarm_delay_min": 0, "outage_min": 0, "auto_close": False}
        ],
    }
    reply = describe(FRAMES["E4-resp"])["apdu"]
    assert reply["omd"]["method_name"] == "trip" and reply["dar"] == {"code": 0, "name": "success"}


def test_close_broadcast_time_and_set_clock() -> None:
    close = describe(FRAMES["close-now"])["apdu"]
    assert close["omd"]["method_name"] == "close"
    assert close["parameters"] == [{"relay": "F2050201 (relay 1)", "mode": "1 close now"}]
    broadcast = describe(FRAMES["E4-time"])
    assert broadcast["address_type"] == "broadcast"
    assert (
        broadcast["apdu"]["omd"] | {"method_name": "broadcast_time", "object": "date-time"}
        == (broadcast["apdu"]["omd"])
    )
    assert broadcast["apdu"]["parameters"] == {"time": "2024-05-20 12:00:00"}
    assert broadcast["apdu"]["data"] == "date-time-s 2024-05-20 12:00:00"
    clock = describe(FRAMES["set-clock"])["apdu"]
    assert (clock["service_name"], clock["oad"]["object"]) == ("SET-REQUEST", "meter clock")
    assert clock["values"] == {"meter_time": "2024-05-20 12:00:00"}


def test_time_tag_record_selector_and_error_are_named() -> None:
    tagged = describe(FRAMES["time-tag"])["apdu"]
    assert tagged["time_tag"] == {
        "sent": str(DateTimeS(2024, 5, 20, 12)),
        "valid": {"value": 5, "unit": "minutes"},
    }
    record = describe(FRAMES["E5-req"])["apdu"]
    assert record["choice_name"] == "record" and record["oad"]["object"] == "daily freeze"
    assert record["rsd"] == {"selector": 9, "selector_name": "the n-th latest record", "n": 1}
    assert [c["oad"] for c in record["rcsd"]] == ["20210200", "00100200", "00200200"]
    error = describe(FRAMES["E6-error"])["apdu"]
    assert (error["service_name"], error["kind"], error["error_name"]) == (
        "ERROR-RESPONSE",
        2,
        "service_unsupported",
    )
    assert "choice" not in error  # ERROR-Response has no sub-type byte
    one = describe(FRAMES["E7-resp"])["apdu"]
    assert (
        one["service_name"] == "SECURITY-RESPONSE"
        and one["inner"]["result"]["element"] == "the whole attribute"
    )


def test_the_text_output_shows_names_not_internal_keys(capsys: pytest.CaptureFixture[str]) -> None:
    print_description(describe(FRAMES["E4-trip"]))
    text = capsys.readouterr().out
    assert "method_name" in text and "trip" in text and "F2050201 (relay 1)" in text
    assert "TAG" not in text and "CHOICE" not in text


def test_the_field_guide_example_is_what_decode_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/field-guide.md 'Decoding a DL/T 698.45 frame' shows an abridged real output: every line
    of it is a line `gridedge decode` prints for that frame."""
    guide = (Path(__file__).resolve().parents[2] / "docs" / "field-guide.md").read_text()
    section = guide.split("### Decoding a DL/T 698.45 frame", 1)[1]
    block = section.split("```console\n", 1)[1].split("```", 1)[0]
    command, *shown = block.splitlines()
    hex_text = command.split("dlt698 ", 1)[1].strip('"')
    assert bytes.fromhex(hex_text) == FRAMES["E4-trip"]
    print_description(describe(bytes.fromhex(hex_text)))
    printed = capsys.readouterr().out.splitlines()
    assert [line for line in shown if line not in printed] == []
