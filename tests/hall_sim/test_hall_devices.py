"""Pure respond() tests of the simulated hall devices (no line, no pty): bytes in, bytes out."""

from __future__ import annotations

import datetime as dt

import pytest

from firmware_sim.devices.hall import HallDevice, build_hall
from firmware_sim.devices.hall.model import HallParams
from protocols.hall import (
    DeviceKind,
    DeviceRefused,
    ErrorCode,
    Event,
    Evt,
    Frame,
    Identity,
    Level,
    build_frame,
    cancel_eval_request,
    clock_broadcast,
    display_request,
    identify_request,
    parse_ack_reply,
    parse_frame,
    parse_identify_reply,
    parse_poll_reply,
    poll_request,
    start_eval_request,
)

T0 = dt.datetime(2026, 11, 16, 10, 0).timestamp()  # a Monday mid-month, hall open


def _hall(**kw: object) -> dict[str, HallDevice]:
    params = HallParams(counters=2, seed=7, **kw)  # type: ignore[arg-type]
    return {d.name: d for d in build_hall(params, T0)}


def _ask(dev: HallDevice, frame: Frame, now: float) -> Frame | None:
    reply = dev.respond(frame.encode(), now)
    return None if reply is None else parse_frame(reply.data)


def _poll(dev: HallDevice, ack: int, now: float) -> Event | None:
    reply = _ask(dev, poll_request(dev.address, ack), now)
    assert reply is not None
    return parse_poll_reply(reply)


def test_identify_each_kind_at_its_address() -> None:
    devices = _hall()
    expected = {
        "hall-dispenser": (1, Identity(DeviceKind.DISPENSER, "1.2", 0)),
        "hall-keypad-1": (2, Identity(DeviceKind.KEYPAD, "1.2", 1)),
        "hall-keypad-2": (3, Identity(DeviceKind.KEYPAD, "1.2", 2)),
        "hall-pad-1": (33, Identity(DeviceKind.RATING_PAD, "1.2", 1)),
        "hall-pad-2": (34, Identity(DeviceKind.RATING_PAD, "1.2", 2)),
    }
    assert set(devices) == set(expected)
    for name, (address, identity) in expected.items():
        reply = _ask(devices[name], identify_request(address), T0)
        assert reply is not None and reply.address == address
        assert parse_identify_reply(reply) == identity


def test_other_addresses_are_ignored_and_turnaround_within_50_ms() -> None:
    keypad = _hall()["hall-keypad-1"]
    assert keypad.respond(identify_request(9).encode(), T0) is None
    assert keypad.stats["ignored_other_address"] == 1
    reply = keypad.respond(b"\x00\x17garbage" + identify_request(2).encode(), T0)
    assert reply is not None and 0 <= reply.turnaround_s <= 0.050


def test_poll_event_ack_by_seq_then_next_event_and_resend_when_unacked() -> None:
    keypad = _hall()["hall-keypad-1"]
    now = T0 + 3600  # an hour of traffic: login, calls, finishes queued
    first = _poll(keypad, 0, now)
    assert first is not None and first.code == Evt.LOGIN and first.seq == 1 and first.staff
    again = _poll(keypad, 0, now)  # not acknowledged: the same event, same SEQ
    assert again == first
    wrong = _poll(keypad, 9, now)  # a SEQ that is not the head's does not drop it
    assert wrong == first
    second = _poll(keypad, first.seq, now)
    assert second is not None and second.seq == 2 and second.code == Evt.CALL_NEXT
    seqs = [first.seq, second.seq]
    event: Event | None = second
    while event is not None:
        event = _poll(keypad, event.seq, now)
        if event is not None:
            seqs.append(event.seq)
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 3
    assert _poll(keypad, 0, now) is None  # all acknowledged: empty DATA
    assert keypad.stats["acknowledged"] == len(seqs)


def test_dispenser_reports_issued_tickets_in_order() -> None:
    dispenser = _hall(arrivals_per_hour=120.0)["hall-dispenser"]
    tickets, ack, now = [], 0, T0 + 1800
    while (event := _poll(dispenser, ack, now)) is not None:
        assert event.code == Evt.TICKET_ISSUED and event.business in (1, 2, 3, 4)
        tickets.append(event.ticket)
        ack = event.seq
    assert len(tickets) > 20 and tickets == list(range(1, len(tickets) + 1))


def _finished_ticket(devices: dict[str, HallDevice], now: float) -> tuple[int, float]:
    """Run the hall until counter 1 finishes a service; the ticket it served (from the model) and when."""
    model = devices["hall-keypad-1"].model
    while True:
        now += 5
        model.advance(now)
        counter = model.counters[0]
        if counter.last_served is not None:
            return counter.last_served, now


def test_rating_pad_rates_only_after_start_eval() -> None:
    devices = _hall(rating_probability=1.0, rating_weights=(0, 0, 0, 1))
    pad = devices["hall-pad-1"]
    ticket, now = _finished_ticket(devices, T0)
    assert _poll(pad, 0, now + 60) is None  # no START_EVAL: nobody rates
    now += 60
    reply = _ask(pad, start_eval_request(33, ticket, 1, 1057), now)
    assert reply is not None
    parse_ack_reply(reply, 0x01)
    assert _poll(pad, 0, now) is None  # the customer needs a moment
    rating = _poll(pad, 0, now + 40)
    assert rating == Event(1, Evt.RATING, ticket=ticket, level=Level.DISSATISFIED)


def test_start_eval_for_a_ticket_nobody_stands_for_times_out() -> None:
    devices = _hall(rating_probability=1.0, rating_timeout_s=30.0)
    pad = devices["hall-pad-2"]
    assert _ask(pad, start_eval_request(34, 4321, 2, 1), T0) is not None
    assert _poll(pad, 0, T0 + 20) is None
    assert _poll(pad, 0, T0 + 40) == Event(1, Evt.NO_RATING, ticket=4321)


def test_cancel_eval_stops_the_rating() -> None:
    devices = _hall(rating_probability=1.0)
    pad = devices["hall-pad-1"]
    ticket, now = _finished_ticket(devices, T0)
    _ask(pad, start_eval_request(33, ticket, 1, 1), now)
    reply = _ask(pad, cancel_eval_request(33), now)
    assert reply is not None
    parse_ack_reply(reply, 0x04)
    assert _poll(pad, 0, now + 120) is None


def test_start_eval_for_another_counter_is_bad_data() -> None:
    pad = _hall()["hall-pad-1"]
    reply = _ask(pad, start_eval_request(33, 1, 2, 1), T0)
    assert reply is not None and reply.func == 0xC1 and reply.data == bytes([ErrorCode.BAD_LENGTH_OR_DATA])


def test_display_beep_and_clock() -> None:
    devices = _hall()
    keypad = devices["hall-keypad-2"]
    reply = _ask(keypad, display_request(3, 12, 291), T0)
    assert reply is not None and reply.encode() == bytes.fromhex("FF 68 02 02 68 03 82 85 16")
    assert keypad.display == (12, 291)
    beep = _ask(keypad, Frame(3, 0x03), T0)
    assert beep is not None and beep.func == 0x83 and keypad.beeps == 1
    when = dt.datetime(2026, 11, 16, 10, 0, 30)
    for dev in devices.values():
        assert dev.respond(clock_broadcast(when).encode(), T0) is None
        assert dev.stats["clock_syncs"] == 1 and dev.clock_offset_s == pytest.approx(30.0)


def test_unknown_function_and_wrong_kind_are_unsupported() -> None:
    devices = _hall()
    keypad, dispenser = devices["hall-keypad-2"], devices["hall-dispenser"]
    reply = _ask(keypad, Frame(3, 0x07), T0)
    assert reply is not None and reply.encode() == bytes.fromhex("FF 68 03 03 68 03 C7 01 CB 16")
    for frame in (display_request(1, 0, 0), start_eval_request(1, 1, 0, 1)):
        reply = _ask(dispenser, frame, T0)
        assert reply is not None and reply.is_error and reply.data == b"\x01"
        with pytest.raises(DeviceRefused):
            parse_poll_reply(reply)
    bad_len = parse_frame(dispenser.respond(build_frame(1, 0x10, b"\x00\x00"), T0).data)  # type: ignore[union-attr]
    assert bad_len.func == 0xD0 and bad_len.data == b"\x02"


def test_silent_busy_and_offline_faults() -> None:
    devices = _hall()
    keypad = devices["hall-keypad-1"]
    keypad.inject("silent", 2)
    assert keypad.respond(identify_request(2).encode(), T0) is None
    assert keypad.respond(identify_request(2).encode(), T0) is None
    assert keypad.respond(identify_request(2).encode(), T0) is not None
    keypad.inject("busy", 1)
    reply = _ask(keypad, poll_request(2), T0)
    assert reply is not None and reply.func == 0xD0 and reply.data == b"\x03"
    keypad.inject("offline")
    assert keypad.respond(poll_request(2).encode(), T0 + 600) is None
    assert devices["hall-keypad-2"].respond(poll_request(3).encode(), T0 + 600) is not None
    keypad.clear("offline")
    event = _poll(keypad, 0, T0 + 600)  # its events waited while it was unplugged
    assert event is not None and event.seq == 1 and event.code == Evt.LOGIN
    with pytest.raises(KeyError):
        keypad.inject("melt")
    assert keypad.stats["silenced"] == 2 and keypad.stats["offline"] == 1
