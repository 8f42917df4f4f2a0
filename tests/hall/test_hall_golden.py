"""Every example frame of hall-protocol.md, both directions, byte-exact: built by our builders, parsed
back by our parsers to the message it stands for."""

from __future__ import annotations

import datetime as dt

import pytest

from protocols.hall import (
    Clock,
    DeviceKind,
    DeviceRefused,
    Display,
    Event,
    Evt,
    Fn,
    Identity,
    Level,
    Poll,
    StartEval,
    check_reply,
    parse_ack_reply,
    parse_frame,
    parse_identify_reply,
    parse_poll_reply,
    parse_request,
)

from .vectors import BY_ID, VECTORS, Vector


@pytest.mark.parametrize("v", VECTORS, ids=[v.id for v in VECTORS])
def test_builders_produce_the_spec_bytes(v: Vector) -> None:
    assert v.built.encode() == v.raw


@pytest.mark.parametrize("v", VECTORS, ids=[v.id for v in VECTORS])
def test_parser_reads_the_spec_bytes(v: Vector) -> None:
    assert parse_frame(v.raw) == v.built


def test_requests_decode_for_the_simulator() -> None:
    assert parse_request(parse_frame(BY_ID["P1"].raw)) == Poll(0)
    assert parse_request(parse_frame(BY_ID["P3"].raw)) == Poll(1)
    assert parse_request(parse_frame(BY_ID["D1"].raw)) == Display(waiting=12, ticket=291)
    assert parse_request(parse_frame(BY_ID["E1"].raw)) == StartEval(ticket=291, counter=3, staff=1057)
    assert parse_request(parse_frame(BY_ID["C1"].raw)) == Clock(dt.datetime(2026, 11, 22, 14, 5, 9))


def test_replies_decode_for_the_gateway() -> None:
    assert parse_poll_reply(parse_frame(BY_ID["P2"].raw)) == Event(1, Evt.CALL_NEXT)
    assert parse_poll_reply(parse_frame(BY_ID["P4"].raw)) is None
    issued = parse_poll_reply(parse_frame(BY_ID["P5"].raw))
    assert issued == Event(7, Evt.TICKET_ISSUED, business=2, ticket=291)
    assert issued.source == DeviceKind.DISPENSER
    rating = parse_poll_reply(parse_frame(BY_ID["E3"].raw))
    assert rating is not None and (rating.level, rating.label, rating.ticket) == (
        Level.DISSATISFIED,
        "dissatisfied",
        291,
    )
    assert parse_identify_reply(parse_frame(BY_ID["I2"].raw)) == Identity(DeviceKind.KEYPAD, "1.2", 3)
    parse_ack_reply(parse_frame(BY_ID["D2"].raw), Fn.DISPLAY)
    parse_ack_reply(parse_frame(BY_ID["E2"].raw), Fn.START_EVAL)


def test_error_reply_raises_device_refused_naming_the_device() -> None:
    frame = parse_frame(BY_ID["X1"].raw)
    assert frame.is_error and frame.function == 0x07
    with pytest.raises(
        DeviceRefused, match=r"hall device 3 refused function 07.*unsupported_function"
    ) as exc:
        check_reply(frame)
    assert (exc.value.code, exc.value.retryable) == (1, False)
