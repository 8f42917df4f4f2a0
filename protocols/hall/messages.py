"""Hall bus messages (hall-protocol.md "Functions", "Events", "Error replies"): typed request builders
and parsers for both ends — the gateway builds requests and parses replies, the simulator parses
requests and builds replies — over `frame.Frame`.

Layer: pure codec (protocols). Must not: do I/O, read clocks (the CLOCK broadcast takes its time as an
argument), keep SEQ state or decide when to poll (that is the gateway driver and the simulator).

Multi-byte integers are big-endian. Where the spec is silent this module says so and does not invent:
  * the time zone of the CLOCK broadcast (we send the naive local wall-clock time given; YY is 2000-2099);
  * what TICKET 0 means in DISPLAY (we pass it through; a driver may use it for "nobody served");
  * the FW byte's meaning beyond "BCD, `12` = 1.2" (we read it as major.minor digits);
  * which events a rating pad or dispenser may send is given by the "from" column (`EVENT_SOURCE`); the
    codec does not reject an event from the "wrong" kind of device, the driver decides.
No business rules here: the "at most 5 recalls" limit and same-day call-back are the master's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from ..errors import DecodeError
from .errors import BadEvent, DeviceRefused, EncodeError, UnexpectedReply, device_name
from .frame import BROADCAST, Frame, check_address, func_byte


class Fn(IntEnum):
    START_EVAL = 0x01
    DISPLAY = 0x02
    BEEP = 0x03
    CANCEL_EVAL = 0x04
    IDENTIFY = 0x05
    CLOCK = 0x08
    POLL = 0x10


class DeviceKind(IntEnum):
    KEYPAD = 0x01
    RATING_PAD = 0x02
    DISPENSER = 0x03


class Evt(IntEnum):
    SUSPEND = 0x01
    CALL_BACK = 0x03
    GIVE_UP = 0x06
    FINISH = 0x0B  # service finished; start evaluation
    CALL_NEXT = 0x0C
    RECALL = 0x0D
    RATING = 0x11
    PAUSE = 0x12
    TRANSFER = 0x13
    RESUME = 0x14
    NO_RATING = 0x15  # the customer did not rate in time
    LOGIN = 0x20
    LOGOUT = 0x21
    TICKET_ISSUED = 0x30


class Level(IntEnum):
    VERY_SATISFIED = 1
    SATISFIED = 2
    NEUTRAL = 3
    DISSATISFIED = 4


class ErrorCode(IntEnum):
    UNSUPPORTED_FUNCTION = 0x01
    BAD_LENGTH_OR_DATA = 0x02
    DEVICE_BUSY = 0x03


LEVEL_LABELS: Final = {
    Level.VERY_SATISFIED: "very satisfied",
    Level.SATISFIED: "satisfied",
    Level.NEUTRAL: "neutral",
    Level.DISSATISFIED: "dissatisfied",
}

# payload fields of each event, in wire order; widths in bytes
FIELD_WIDTH: Final = {"business": 1, "ticket": 2, "staff": 2, "level": 1}
EVENT_FIELDS: Final[dict[Evt, tuple[str, ...]]] = {
    Evt.TICKET_ISSUED: ("business", "ticket"),
    Evt.CALL_NEXT: (),
    Evt.RECALL: (),
    Evt.FINISH: (),
    Evt.GIVE_UP: (),
    Evt.SUSPEND: (),
    Evt.CALL_BACK: ("ticket",),
    Evt.PAUSE: (),
    Evt.RESUME: (),
    Evt.TRANSFER: ("business",),
    Evt.LOGIN: ("staff",),
    Evt.LOGOUT: (),
    Evt.RATING: ("level", "ticket"),
    Evt.NO_RATING: ("ticket",),
}
EVENT_SOURCE: Final[dict[Evt, DeviceKind]] = {
    e: (
        DeviceKind.DISPENSER
        if e == Evt.TICKET_ISSUED
        else DeviceKind.RATING_PAD
        if e in (Evt.RATING, Evt.NO_RATING)
        else DeviceKind.KEYPAD
    )
    for e in Evt
}
# requests whose reply is `FUNC | 80` with empty DATA
ACK_FUNCTIONS: Final = frozenset({Fn.DISPLAY, Fn.BEEP, Fn.START_EVAL, Fn.CANCEL_EVAL})


def _uint(name: str, value: int, width: int, who: str) -> bytes:
    if not 0 <= value < 1 << (8 * width):
        raise EncodeError(f"{who}: {name} {value} does not fit u{8 * width}")
    return value.to_bytes(width, "big")


def next_seq(seq: int) -> int:
    """The SEQ after `seq`: 1..255, wrapping to 1 (never 0)."""
    return seq % 255 + 1


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a `90` poll reply. Only the fields of `EVENT_FIELDS[code]` are set."""

    seq: int
    code: Evt
    business: int | None = None
    ticket: int | None = None
    staff: int | None = None
    level: Level | None = None

    @property
    def name(self) -> str:
        return self.code.name.lower()

    @property
    def source(self) -> DeviceKind:
        return EVENT_SOURCE[self.code]

    @property
    def label(self) -> str | None:
        """The rating's label ("dissatisfied", ...), None for other events."""
        return LEVEL_LABELS[self.level] if self.level is not None else None

    def payload(self, who: str = "event") -> bytes:
        if not 1 <= self.seq <= 255:
            raise EncodeError(f"{who}: SEQ {self.seq} outside 1..255")
        out = bytes((self.seq, self.code))
        for field in EVENT_FIELDS[self.code]:
            value = getattr(self, field)
            if value is None:
                raise EncodeError(f"{who}: event {self.name} needs {field}")
            out += _uint(field, int(value), FIELD_WIDTH[field], who)
        extra = [f for f in FIELD_WIDTH if f not in EVENT_FIELDS[self.code] and getattr(self, f) is not None]
        if extra:
            raise EncodeError(f"{who}: event {self.name} has no field {', '.join(extra)}")
        return out


def _parse_event(address: int, data: bytes) -> Event:
    who, seq = device_name(address), data[0]
    if seq == 0:
        raise DecodeError(f"{who}: poll reply with SEQ 0 (SEQ is 1..255): {data.hex(' ')}")
    if len(data) < 2:
        raise BadEvent(address, seq, "no EVT byte")
    if data[1] not in Evt._value2member_map_:
        raise BadEvent(address, seq, f"unknown EVT {data[1]:02X}: {data.hex(' ')}")
    code = Evt(data[1])
    fields = EVENT_FIELDS[code]
    need = 2 + sum(FIELD_WIDTH[f] for f in fields)
    if len(data) != need:
        raise BadEvent(address, seq, f"{code.name.lower()} needs {need} data bytes, got {len(data)}")
    values: dict[str, int] = {}
    at = 2
    for field in fields:
        values[field] = int.from_bytes(data[at : at + FIELD_WIDTH[field]], "big")
        at += FIELD_WIDTH[field]
    level = values.pop("level", None)
    if level is not None and level not in Level._value2member_map_:
        raise BadEvent(address, seq, f"rating level {level} outside 1..4")
    return Event(seq, code, level=None if level is None else Level(level), **values)


# ---------------------------------------------------------------- requests (master -> device)


@dataclass(frozen=True, slots=True)
class Poll:
    ack_seq: int = 0  # 0 = nothing to acknowledge


@dataclass(frozen=True, slots=True)
class Identify:
    pass


@dataclass(frozen=True, slots=True)
class Display:
    waiting: int
    ticket: int


@dataclass(frozen=True, slots=True)
class Beep:
    pass


@dataclass(frozen=True, slots=True)
class StartEval:
    ticket: int
    counter: int
    staff: int


@dataclass(frozen=True, slots=True)
class CancelEval:
    pass


@dataclass(frozen=True, slots=True)
class Clock:
    when: dt.datetime


Request = Poll | Identify | Display | Beep | StartEval | CancelEval | Clock


def _request(address: int, fn: Fn, data: bytes = b"", *, broadcast: bool = False) -> Frame:
    check_address(address, broadcast_ok=broadcast)
    return Frame(address, func_byte(fn), data)


def poll_request(address: int, ack_seq: int = 0) -> Frame:
    return _request(address, Fn.POLL, _uint("ACK_SEQ", ack_seq, 1, device_name(address)))


def identify_request(address: int) -> Frame:
    return _request(address, Fn.IDENTIFY)


def display_request(address: int, waiting: int, ticket: int) -> Frame:
    who = device_name(address)
    return _request(address, Fn.DISPLAY, _uint("WAITING", waiting, 2, who) + _uint("TICKET", ticket, 2, who))


def beep_request(address: int) -> Frame:
    return _request(address, Fn.BEEP)


def start_eval_request(address: int, ticket: int, counter: int, staff: int) -> Frame:
    who = device_name(address)
    data = _uint("TICKET", ticket, 2, who) + _uint("COUNTER", counter, 1, who) + _uint("STAFF", staff, 2, who)
    return _request(address, Fn.START_EVAL, data)


def cancel_eval_request(address: int) -> Frame:
    return _request(address, Fn.CANCEL_EVAL)


def clock_broadcast(when: dt.datetime) -> Frame:
    """CLOCK to ADDR 00 (never answered): YY MM DD hh mm ss in BCD; `when` as given (spec: no zone)."""
    if not 2000 <= when.year <= 2099:
        raise EncodeError(f"broadcast: clock year {when.year} outside 2000..2099")
    parts = (when.year % 100, when.month, when.day, when.hour, when.minute, when.second)
    return _request(BROADCAST, Fn.CLOCK, bytes(int(str(p), 16) for p in parts), broadcast=True)


_REQUEST_SIZES: Final = {
    Fn.POLL: 1,
    Fn.IDENTIFY: 0,
    Fn.DISPLAY: 4,
    Fn.BEEP: 0,
    Fn.START_EVAL: 5,
    Fn.CANCEL_EVAL: 0,
    Fn.CLOCK: 6,
}


def parse_request(frame: Frame) -> Request | None:
    """The request in a master frame, for the simulator. None for a function the spec does not define
    (the device answers error `01`). Raises DecodeError for a wrong DATA length or value (answer `02`)
    and UnexpectedReply for a reply frame."""
    who = frame.device
    if frame.is_reply:
        raise UnexpectedReply(f"{who}: FUNC {frame.func:02X} is a reply, not a request")
    if frame.func not in Fn._value2member_map_:
        return None
    fn, d = Fn(frame.func), frame.data
    if len(d) != _REQUEST_SIZES[fn]:
        raise DecodeError(f"{who}: {fn.name} needs {_REQUEST_SIZES[fn]} data bytes, got {len(d)}")
    if (fn == Fn.CLOCK) != (frame.address == BROADCAST):
        rule = "must be broadcast" if fn == Fn.CLOCK else "cannot be broadcast"
        raise DecodeError(f"{who}: {fn.name} {rule}")
    if fn == Fn.POLL:
        return Poll(d[0])
    if fn == Fn.DISPLAY:
        return Display(_u16(d, 0), _u16(d, 2))
    if fn == Fn.START_EVAL:
        return StartEval(_u16(d, 0), d[2], _u16(d, 3))
    if fn == Fn.CLOCK:
        return Clock(_parse_clock(who, d))
    empty: dict[Fn, Request] = {Fn.IDENTIFY: Identify(), Fn.BEEP: Beep(), Fn.CANCEL_EVAL: CancelEval()}
    return empty[fn]


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "big")


def _parse_clock(who: str, d: bytes) -> dt.datetime:
    try:
        yy, mo, dd, hh, mi, ss = (int(f"{b:02X}") for b in d)
        return dt.datetime(2000 + yy, mo, dd, hh, mi, ss)
    except ValueError:
        raise DecodeError(f"{who}: CLOCK {d.hex(' ')} is not a BCD date and time") from None


# ---------------------------------------------------------------- replies (device -> master)


@dataclass(frozen=True, slots=True)
class Identity:
    kind: DeviceKind
    firmware: str  # "1.2" from BCD 12
    counter: int  # 0 for a dispenser


def poll_reply(address: int, event: Event | None) -> Frame:
    """`90` with `SEQ EVT payload`, or empty DATA when no event is pending."""
    check_address(address, broadcast_ok=False)
    data = b"" if event is None else event.payload(device_name(address))
    return Frame(address, func_byte(Fn.POLL, reply=True), data)


def identify_reply(address: int, identity: Identity) -> Frame:
    check_address(address, broadcast_ok=False)
    who = device_name(address)
    major, _, minor = identity.firmware.partition(".")
    if not (major.isdigit() and minor.isdigit() and len(major) == 1 and len(minor) == 1):
        raise EncodeError(f"{who}: firmware {identity.firmware!r} is not d.d (one BCD byte)")
    data = bytes((identity.kind, int(major + minor, 16))) + _uint("COUNTER", identity.counter, 1, who)
    return Frame(address, func_byte(Fn.IDENTIFY, reply=True), data)


def ack_reply(address: int, function: int) -> Frame:
    """The empty `FUNC | 80` reply to DISPLAY, BEEP, START_EVAL or CANCEL_EVAL."""
    check_address(address, broadcast_ok=False)
    return Frame(address, func_byte(function, reply=True))


def error_reply(address: int, function: int, code: int) -> Frame:
    check_address(address, broadcast_ok=False)
    return Frame(
        address, func_byte(function & 0x3F, error=True), _uint("error code", code, 1, device_name(address))
    )


def check_reply(frame: Frame) -> Frame:
    """`frame` unchanged, or DeviceRefused for an error reply (`FUNC | C0`)."""
    if frame.is_error:
        if len(frame.data) != 1:
            raise DecodeError(f"{frame.device}: error reply needs 1 data byte, got {len(frame.data)}")
        raise DeviceRefused(frame.address, frame.function, frame.data[0])
    return frame


def _reply_of(frame: Frame, fn: Fn) -> Frame:
    check_reply(frame)
    if not frame.is_reply or frame.function != fn:
        raise UnexpectedReply(f"{frame.device}: FUNC {frame.func:02X} is not a reply to {fn.name} ({fn:02X})")
    return frame


def parse_poll_reply(frame: Frame) -> Event | None:
    """The event in a `90` reply, None for empty DATA. Raises DeviceRefused, UnexpectedReply, BadEvent
    (unknown EVT or wrong payload; its `seq` must still be acknowledged) or DecodeError (SEQ 0)."""
    data = _reply_of(frame, Fn.POLL).data
    return _parse_event(frame.address, data) if data else None


def parse_identify_reply(frame: Frame) -> Identity:
    d = _reply_of(frame, Fn.IDENTIFY).data
    if len(d) != 3:
        raise DecodeError(f"{frame.device}: IDENTIFY reply needs 3 data bytes, got {len(d)}")
    if d[0] not in DeviceKind._value2member_map_:
        raise DecodeError(f"{frame.device}: unknown device KIND {d[0]:02X}")
    if d[1] >> 4 > 9 or d[1] & 0xF > 9:
        raise DecodeError(f"{frame.device}: firmware byte {d[1]:02X} is not BCD")
    return Identity(DeviceKind(d[0]), f"{d[1] >> 4}.{d[1] & 0xF}", d[2])


def parse_ack_reply(frame: Frame, function: int) -> None:
    """Check the empty `FUNC | 80` acknowledgement of DISPLAY, BEEP, START_EVAL or CANCEL_EVAL."""
    if function not in ACK_FUNCTIONS:
        raise UnexpectedReply(f"{frame.device}: function {function:02X} has no empty acknowledgement")
    d = _reply_of(frame, Fn(function)).data
    if d:
        raise DecodeError(f"{frame.device}: {Fn(function).name} reply must be empty, got {d.hex(' ')}")


def function_name(function: int) -> str | None:
    return Fn(function).name.lower() if function in Fn._value2member_map_ else None
