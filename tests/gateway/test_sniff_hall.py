"""`gridedge sniff` on the business-hall bus: every hall message the gateway uses decoded, bursts that
mix hall, Modbus and DL/T 645 frames on one 9600 8N1 line attributed frame by frame, noise kept as noise,
and a real pty on which a simulated hall device answers."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time

import pytest

from firmware_sim.devices.hall import build_hall
from firmware_sim.devices.hall.model import HallParams
from protocols.dlt645 import lookup, read_reply, read_request
from protocols.hall import (
    DeviceKind,
    ErrorCode,
    Event,
    Evt,
    Fn,
    Identity,
    Level,
    ack_reply,
    beep_request,
    cancel_eval_request,
    clock_broadcast,
    display_request,
    error_reply,
    identify_reply,
    identify_request,
    poll_reply,
    poll_request,
    start_eval_request,
)
from protocols.modbus import ReadRequest, build_rtu_request
from protocols.sniff import decode_burst, summary

KEYPAD, PAD, DISPENSER = 3, 33, 1


def _one(raw: bytes) -> dict:
    frames = decode_burst(raw)
    assert len(frames) == 1, frames
    assert frames[0]["protocol"] == "hall" and frames[0]["cs_ok"] and frames[0]["end_ok"]
    return frames[0]


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (poll_request(KEYPAD, 0), {"kind": "poll", "ack_seq": 0, "direction": "master->device"}),
        (poll_request(KEYPAD, 1), {"kind": "poll", "ack_seq": 1}),
        (poll_reply(KEYPAD, None), {"kind": "poll reply", "event": None, "direction": "device->master"}),
        (
            poll_reply(KEYPAD, Event(1, Evt.CALL_NEXT)),
            {"kind": "poll reply", "seq": 1, "event": "call_next", "source": "keypad"},
        ),
        (
            poll_reply(DISPENSER, Event(7, Evt.TICKET_ISSUED, business=2, ticket=291)),
            {"event": "ticket_issued", "seq": 7, "business": 2, "ticket": 291, "source": "dispenser"},
        ),
        (
            poll_reply(PAD, Event(4, Evt.RATING, ticket=291, level=Level.DISSATISFIED)),
            {"event": "rating", "level": 4, "label": "dissatisfied", "ticket": 291},
        ),
        (display_request(KEYPAD, 12, 291), {"kind": "display", "waiting": 12, "ticket": 291}),
        (ack_reply(KEYPAD, Fn.DISPLAY), {"kind": "acknowledgement", "function_name": "display"}),
        (beep_request(KEYPAD), {"kind": "beep"}),
        (
            start_eval_request(PAD, 291, 3, 1057),
            {"kind": "start evaluation", "ticket": 291, "counter": 3, "staff": 1057},
        ),
        (ack_reply(PAD, Fn.START_EVAL), {"kind": "acknowledgement"}),
        (cancel_eval_request(PAD), {"kind": "cancel evaluation"}),
        (identify_request(KEYPAD), {"kind": "identify"}),
        (
            identify_reply(KEYPAD, Identity(DeviceKind.KEYPAD, "1.2", 3)),
            {"kind": "identify reply", "device_kind": "keypad", "firmware": "1.2", "counter": 3},
        ),
        (
            error_reply(KEYPAD, Fn.POLL, ErrorCode.DEVICE_BUSY),
            {"kind": "error reply", "error_reply": True, "reason": "device_busy"},
        ),
        (
            clock_broadcast(dt.datetime(2026, 11, 22, 14, 5, 9)),
            {"kind": "clock", "time": "2026-11-22T14:05:09", "broadcast": True, "address": 0},
        ),
    ],
)
def test_each_hall_message_is_decoded(frame, expected) -> None:
    got = _one(frame.encode())
    assert {k: got.get(k) for k in expected} == expected
    assert summary(got).startswith(f"hall {got['direction']}")
    if got["kind"] == "acknowledgement":
        assert summary(got).endswith(f"acknowledgement ({got['function_name']})")


def test_hall_golden_frames_from_the_spec() -> None:
    # hall-protocol.md "Examples": captured bytes, not our encoder
    poll = _one(bytes.fromhex("FF 68 03 03 68 03 10 00 13 16"))
    assert (poll["address"], poll["kind"], poll["ack_seq"]) == (3, "poll", 0)
    rating = _one(bytes.fromhex("FF 68 07 07 68 21 90 04 11 04 01 23 EE 16"))
    assert (rating["address"], rating["event"], rating["label"], rating["ticket"]) == (
        33,
        "rating",
        "dissatisfied",
        291,
    )
    text = summary(rating)
    assert (
        text.startswith("hall device->master 33 (rating pad of counter 1) poll reply")
        and "label=dissatisfied" in text
    )
    clock = summary(_one(bytes.fromhex("FF 68 08 08 68 00 08 26 11 22 14 05 09 83 16")))
    assert clock == "hall master->device broadcast clock time=2026-11-22T14:05:09"


def test_request_and_reply_in_one_burst_are_two_frames() -> None:
    # the device starts its reply within the 3.5-character silence: one burst, two frames
    burst = (
        poll_request(DISPENSER, 0).encode()
        + poll_reply(DISPENSER, Event(9, Evt.TICKET_ISSUED, 1, 5)).encode()
    )
    frames = decode_burst(burst)
    assert [(f["protocol"], f["kind"]) for f in frames] == [("hall", "poll"), ("hall", "poll reply")]


def test_mixed_protocols_on_one_line_are_attributed_frame_by_frame() -> None:
    modbus_req = build_rtu_request(5, ReadRequest(3, 0, 2))
    modbus_reply = bytes.fromhex("05 03 04 00 01 00 02") + _crc(bytes.fromhex("05 03 04 00 01 00 02"))
    item = lookup("energy_import_kwh")
    dlt_req = read_request("000000000001", item.di).encode(4)
    dlt_reply = read_reply("000000000001", item.di, bytes.fromhex("78563412")).encode(0)
    hall_poll, hall_idle = poll_request(KEYPAD, 0).encode(), poll_reply(KEYPAD, None).encode()
    bursts = [
        modbus_req,
        modbus_reply + hall_poll,  # the hall master spoke right after the meter's reply
        hall_poll + hall_idle + modbus_req,
        dlt_req + dlt_reply + hall_poll,
        modbus_req + modbus_reply,  # a fast slave: request and reply back to back
        b"\x00\x55\xff\x68" + hall_poll + b"\x12\x34",  # line noise around a hall frame
        bytes.fromhex("FF 68 03 03 68 03 10 00 99 16"),  # a hall frame with a bad CS is not a frame
    ]
    got = [[(f["protocol"], f.get("kind")) for f in decode_burst(b)] for b in bursts]
    assert got == [
        [("modbus", "request")],
        [("modbus", "reply"), ("hall", "poll")],
        [("hall", "poll"), ("hall", "poll reply"), ("modbus", "request")],
        [("dlt645", "read request"), ("dlt645", "read reply"), ("hall", "poll")],
        [("modbus", "request"), ("modbus", "reply")],
        [("unknown", None), ("hall", "poll"), ("unknown", None)],
        [("unknown", None)],
    ]
    noisy = decode_burst(bursts[5])
    assert (noisy[0]["noise"], noisy[2]["noise"]) == ("00 55 ff 68", "12 34")


def test_protocol_choice_restricts_the_decoders() -> None:
    burst = build_rtu_request(5, ReadRequest(3, 0, 2)) + poll_request(KEYPAD, 1).encode()
    assert [f["protocol"] for f in decode_burst(burst, "hall")] == ["unknown", "hall"]
    assert [f["protocol"] for f in decode_burst(burst, "modbus")] == ["unknown"]
    assert [f["protocol"] for f in decode_burst(poll_request(KEYPAD, 1).encode(), "dlt645")] == ["unknown"]
    with pytest.raises(ValueError, match="protocol"):
        decode_burst(burst, "iec104")


def test_noise_stays_one_noise_entry() -> None:
    for noise in (b"\x01\x02\x03", b"\xff\x68\x03\x03\x68", bytes(range(256))):
        frames = decode_burst(noise)
        assert frames == [{"protocol": "unknown", "noise": noise.hex(" ")}]
        assert summary(frames[0]) == f"noise {noise.hex(' ')}"


def _crc(data: bytes) -> bytes:
    from protocols.modbus import crc16

    return crc16(data).to_bytes(2, "little")


@pytest.mark.integration
def test_sniff_decodes_a_hall_device_talking_on_a_pty(pty_pair) -> None:
    start = time.time()
    keypad = build_hall(HallParams(counters=1, seed=1), start)[1]
    argv = ["sniff", "--port", pty_pair.path, "--baud", "9600", "--parity", "N", "--duration", "2", "--json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridedge", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert "listening on" in proc.stderr.readline()  # the port is open: what we write now is heard
    exchanges = [
        identify_request(keypad.address),
        display_request(keypad.address, 4, 17),
        clock_broadcast(dt.datetime(2026, 3, 1, 9, 0, 0)),
    ]
    for request in exchanges:
        os.write(pty_pair.master_fd, request.encode())
        reply = keypad.respond(request.encode(), time.time())
        if reply is not None:
            os.write(pty_pair.master_fd, reply.data)
        time.sleep(0.1)  # line silence between transactions (the bus's own pacing), not a wait on sniff
    os.write(pty_pair.master_fd, build_rtu_request(5, ReadRequest(4, 0, 10)))  # a meter on the same line
    out, _ = proc.communicate(timeout=30)
    frames = [f for line in out.splitlines() for f in json.loads(line)["frames"]]
    assert [
        (f["protocol"], f.get("address") if f["protocol"] == "hall" else f["unit"], f.get("kind"))
        for f in frames
    ] == [
        ("hall", 2, "identify"),
        ("hall", 2, "identify reply"),
        ("hall", 2, "display"),
        ("hall", 2, "acknowledgement"),
        ("hall", 0, "clock"),
        ("modbus", 5, "request"),
    ]
    assert frames[1]["device_kind"] == "keypad" and frames[1]["counter"] == 1
