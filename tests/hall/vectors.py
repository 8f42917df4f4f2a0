"""The example frames of hall-protocol.md "Examples (hex)", verbatim, with the message each one is."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from protocols.hall import (
    DeviceKind,
    Event,
    Evt,
    Fn,
    Frame,
    Identity,
    Level,
    ack_reply,
    clock_broadcast,
    display_request,
    error_reply,
    identify_reply,
    identify_request,
    poll_reply,
    poll_request,
    start_eval_request,
)


@dataclass(frozen=True)
class Vector:
    id: str
    what: str
    hex: str
    built: Frame

    @property
    def raw(self) -> bytes:
        return bytes.fromhex(self.hex)


VECTORS = [
    Vector("P1", "poll keypad 3, nothing to acknowledge", "FF 68 03 03 68 03 10 00 13 16", poll_request(3)),
    Vector(
        "P2",
        "keypad 3: event SEQ 1 = call next",
        "FF 68 04 04 68 03 90 01 0C A0 16",
        poll_reply(3, Event(1, Evt.CALL_NEXT)),
    ),
    Vector(
        "P3", "poll keypad 3 acknowledging SEQ 1", "FF 68 03 03 68 03 10 01 14 16", poll_request(3, ack_seq=1)
    ),
    Vector("P4", "keypad 3: no pending event", "FF 68 02 02 68 03 90 93 16", poll_reply(3, None)),
    Vector(
        "P5",
        "dispenser 1: SEQ 7 ticket issued, business 2, ticket 291",
        "FF 68 07 07 68 01 90 07 30 02 01 23 EE 16",
        poll_reply(1, Event(7, Evt.TICKET_ISSUED, business=2, ticket=291)),
    ),
    Vector(
        "D1",
        "keypad 3 display: 12 waiting, serving ticket 291",
        "FF 68 06 06 68 03 02 00 0C 01 23 35 16",
        display_request(3, waiting=12, ticket=291),
    ),
    Vector("D2", "keypad 3 acknowledges the display", "FF 68 02 02 68 03 82 85 16", ack_reply(3, Fn.DISPLAY)),
    Vector(
        "E1",
        "pad 33: start evaluation of ticket 291 at counter 3, staff 1057",
        "FF 68 07 07 68 21 01 01 23 03 04 21 6E 16",
        start_eval_request(0x21, ticket=291, counter=3, staff=1057),
    ),
    Vector("E2", "pad 33 acknowledges", "FF 68 02 02 68 21 81 A2 16", ack_reply(0x21, Fn.START_EVAL)),
    Vector(
        "E3",
        "pad 33: SEQ 4 rating 4 (dissatisfied) for ticket 291",
        "FF 68 07 07 68 21 90 04 11 04 01 23 EE 16",
        poll_reply(0x21, Event(4, Evt.RATING, level=Level.DISSATISFIED, ticket=291)),
    ),
    Vector("I1", "identify keypad 3", "FF 68 02 02 68 03 05 08 16", identify_request(3)),
    Vector(
        "I2",
        "keypad 3 is a keypad, firmware 1.2, counter 3",
        "FF 68 05 05 68 03 85 01 12 03 9E 16",
        identify_reply(3, Identity(DeviceKind.KEYPAD, "1.2", 3)),
    ),
    Vector(
        "X1", "keypad 3: unsupported function", "FF 68 03 03 68 03 C7 01 CB 16", error_reply(3, 0x07, 0x01)
    ),
    Vector(
        "C1",
        "broadcast clock 2026-11-22 14:05:09",
        "FF 68 08 08 68 00 08 26 11 22 14 05 09 83 16",
        clock_broadcast(dt.datetime(2026, 11, 22, 14, 5, 9)),
    ),
]
BY_ID = {v.id: v for v in VECTORS}
