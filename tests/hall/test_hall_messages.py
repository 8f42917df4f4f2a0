"""Messages beyond the spec examples: every event of the table, every request, and the refusals."""

from __future__ import annotations

import datetime as dt

import pytest

from protocols.errors import DecodeError, FrameError
from protocols.hall import (
    EVENT_FIELDS,
    BadEvent,
    Beep,
    CancelEval,
    DeviceKind,
    EncodeError,
    Event,
    Evt,
    Fn,
    Frame,
    Identify,
    UnexpectedReply,
    beep_request,
    cancel_eval_request,
    clock_broadcast,
    display_request,
    next_seq,
    parse_ack_reply,
    parse_poll_reply,
    parse_request,
    poll_reply,
    poll_request,
)

# hall-protocol.md "Events": EVT, source, payload bytes after SEQ EVT
EVENT_TABLE = [
    (0x30, DeviceKind.DISPENSER, {"business": 2, "ticket": 291}, "02 01 23"),
    (0x0C, DeviceKind.KEYPAD, {}, ""),
    (0x0D, DeviceKind.KEYPAD, {}, ""),
    (0x0B, DeviceKind.KEYPAD, {}, ""),
    (0x06, DeviceKind.KEYPAD, {}, ""),
    (0x01, DeviceKind.KEYPAD, {}, ""),
    (0x03, DeviceKind.KEYPAD, {"ticket": 513}, "02 01"),
    (0x12, DeviceKind.KEYPAD, {}, ""),
    (0x14, DeviceKind.KEYPAD, {}, ""),
    (0x13, DeviceKind.KEYPAD, {"business": 5}, "05"),
    (0x20, DeviceKind.KEYPAD, {"staff": 1057}, "04 21"),
    (0x21, DeviceKind.KEYPAD, {}, ""),
    (0x11, DeviceKind.RATING_PAD, {"level": 1, "ticket": 7}, "01 00 07"),
    (0x15, DeviceKind.RATING_PAD, {"ticket": 7}, "00 07"),
]


def test_the_table_covers_every_event() -> None:
    assert {row[0] for row in EVENT_TABLE} == {int(e) for e in Evt} == {int(e) for e in EVENT_FIELDS}


@pytest.mark.parametrize(("evt", "source", "fields", "payload"), EVENT_TABLE)
def test_every_event(evt: int, source: DeviceKind, fields: dict[str, int], payload: str) -> None:
    data = bytes((9, evt)) + bytes.fromhex(payload)
    event = parse_poll_reply(Frame(5, 0x90, data))
    assert event is not None and event.code == evt and event.source == source and event.seq == 9
    assert {f: getattr(event, f) for f in fields} == fields
    assert poll_reply(5, event).data == data


def test_rating_labels() -> None:
    labels = [parse_poll_reply(Frame(33, 0x90, bytes((1, 0x11, lv, 0, 1)))) for lv in (1, 2, 3, 4)]
    assert [e.label for e in labels if e] == ["very satisfied", "satisfied", "neutral", "dissatisfied"]


def test_bad_events_keep_their_seq_for_the_acknowledgement() -> None:
    for data, why in [
        (b"\x05\x99", "unknown EVT 99"),
        (b"\x05\x30\x02", "ticket_issued needs 5 data bytes, got 3"),
        (b"\x05\x11\x05\x00\x01", "rating level 5 outside 1..4"),
        (b"\x05", "no EVT byte"),
    ]:
        with pytest.raises(BadEvent, match=f"hall device 3: event SEQ 5: {why}") as exc:
            parse_poll_reply(Frame(3, 0x90, data))
        assert exc.value.seq == 5
    with pytest.raises(DecodeError, match="SEQ 0"):
        parse_poll_reply(Frame(3, 0x90, b"\x00\x0c"))


def test_requests_without_data_and_unknown_functions() -> None:
    assert parse_request(beep_request(3)) == Beep()
    assert parse_request(cancel_eval_request(33)) == CancelEval()
    assert parse_request(Frame(3, 0x05)) == Identify()
    assert parse_request(Frame(3, 0x07)) is None  # the device answers error 01
    with pytest.raises(DecodeError, match="hall device 3: DISPLAY needs 4 data bytes, got 3"):
        parse_request(Frame(3, 0x02, b"\x00\x01\x02"))
    with pytest.raises(DecodeError, match="POLL cannot be broadcast"):
        parse_request(Frame(0, 0x10, b"\x00"))
    with pytest.raises(DecodeError, match="not a BCD date"):
        parse_request(Frame(0, 0x08, bytes.fromhex("26 13 22 14 05 09")))
    with pytest.raises(UnexpectedReply):
        parse_request(Frame(3, 0x90))


def test_encode_errors_name_the_device() -> None:
    with pytest.raises(EncodeError, match="hall device 3: WAITING 70000 does not fit u16"):
        display_request(3, 70000, 1)
    with pytest.raises(EncodeError, match=r"hall device 5: SEQ 0 outside 1..255"):
        poll_reply(5, Event(0, Evt.CALL_NEXT))
    with pytest.raises(EncodeError, match="call_next has no field ticket"):
        poll_reply(5, Event(1, Evt.CALL_NEXT, ticket=3))
    with pytest.raises(EncodeError, match="year 1999"):
        clock_broadcast(dt.datetime(1999, 1, 1))
    with pytest.raises(FrameError, match=r"outside 01..FE"):
        poll_request(0)


def test_ack_reply_checks() -> None:
    with pytest.raises(UnexpectedReply, match="not a reply to BEEP"):
        parse_ack_reply(Frame(3, 0x82), Fn.BEEP)
    with pytest.raises(DecodeError, match="must be empty"):
        parse_ack_reply(Frame(3, 0x83, b"\x00"), Fn.BEEP)


def test_seq_wraps_and_skips_zero() -> None:
    assert [next_seq(s) for s in (1, 254, 255)] == [2, 255, 1]
