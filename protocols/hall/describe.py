"""`describe(bytes) -> dict`: a field engineer's reading of one captured hall bus frame, for
`gridedge decode --protocol hall HEX`.

Layer: pure (protocols). Must not: print or do I/O; the CLI formats the dict.

Input is one frame, request or reply. A frame with a bad CS, a wrong end byte or unequal L copies is
still decoded and flagged (`cs_ok`, `end_ok`, `l_ok`: false); DATA that does not fit its function is
reported under `error` with the raw bytes. Only bytes that cannot hold a frame (too short, no
`FF 68 .. 68`, shorter than L + 7) raise FrameError. The result is JSON-serialisable.

The address is shown as the docs and the health topics speak of it: decimal (`"address": 34`, the
wire byte beside it as `address_hex`) with its role in the field guide's address plan (`rating pad of
counter 2`); an identify reply states the device's own kind and counter besides.
"""

from __future__ import annotations

from typing import Any, Final

from ..errors import FrameError, ProtocolError
from .errors import ERROR_CODES, BadEvent, TruncatedFrame, device_name
from .frame import BROADCAST, END, HEADER, MIN_FRAME, OVERHEAD, START, WAKE, Frame, checksum
from .messages import (
    ACK_FUNCTIONS,
    Beep,
    CancelEval,
    Clock,
    Display,
    Fn,
    Identify,
    Poll,
    StartEval,
    function_name,
    parse_identify_reply,
    parse_poll_reply,
    parse_request,
)

# The field guide's address plan (the gateway's and the simulator's defaults): dispenser at 1, the
# caller keypad of counter k at 1 + k, its rating pad at 32 + k, for counters 1..31.
DISPENSER: Final = 1
KEYPAD_BASE: Final = 1
PAD_BASE: Final = 32
MAX_COUNTER: Final = 31


def role(address: int) -> str:
    """What the device at `address` is in the default address plan ("keypad of counter 3")."""
    if address == BROADCAST:
        return "broadcast"
    if address == DISPENSER:
        return "dispenser"
    if KEYPAD_BASE < address <= KEYPAD_BASE + MAX_COUNTER:
        return f"keypad of counter {address - KEYPAD_BASE}"
    if PAD_BASE < address <= PAD_BASE + MAX_COUNTER:
        return f"rating pad of counter {address - PAD_BASE}"
    return "outside the default address plan (dispenser 1, keypads 2-32, rating pads 33-63)"


def describe(data: bytes) -> dict[str, Any]:
    if len(data) < MIN_FRAME:
        raise TruncatedFrame(f"{len(data)} bytes: a hall frame has at least {MIN_FRAME}")
    if data[0] != WAKE or data[1] != START or data[4] != START:
        raise FrameError(f"not a hall frame: it must start FF 68 L L 68: {data.hex(' ')}")
    length = data[2]
    if length < 2 or len(data) < OVERHEAD + length:
        raise TruncatedFrame(
            f"{device_name(data[5])}: L={length} needs {OVERHEAD + length} bytes, got {len(data)}"
        )
    frame = Frame(data[5], data[6], bytes(data[HEADER + 2 : HEADER + length]))
    out: dict[str, Any] = {
        "protocol": "hall",
        "address": frame.address,
        "address_hex": f"{frame.address:02X}",
        "role": role(frame.address),
    }
    if frame.address == BROADCAST:
        out["broadcast"] = True
    out |= {
        "func": f"{frame.func:02X}",
        "direction": "device->master" if frame.is_reply else "master->device",
        "error_reply": frame.is_error,
        "function": f"{frame.function:02X}",
        "function_name": function_name(frame.function),
        "length": length,
        "l_ok": data[3] == length and 2 <= length <= 64,
        "data": frame.data.hex(" "),
    }
    try:
        out |= _content(frame)
    except ProtocolError as exc:
        out["error"] = str(exc)
        if isinstance(exc, BadEvent):
            out["seq"] = exc.seq
    cs, expected = data[HEADER + length], checksum(data[HEADER : HEADER + length])
    out |= {"cs": f"{cs:02X}", "cs_ok": cs == expected}
    if cs != expected:
        out["cs_expected"] = f"{expected:02X}"
    out["end_ok"] = data[HEADER + length + 1] == END
    if len(data) > OVERHEAD + length:
        out["trailing"] = data[OVERHEAD + length :].hex(" ")
    return out


def _content(frame: Frame) -> dict[str, Any]:
    if not frame.is_reply:
        return _request(frame)
    if frame.is_error:
        code = frame.data[0] if frame.data else None
        return {
            "kind": "error reply",
            "code": None if code is None else f"{code:02X}",
            "reason": None if code is None else ERROR_CODES.get(code, "unknown_error"),
        }
    if frame.function == Fn.POLL:
        event = parse_poll_reply(frame)
        if event is None:
            return {"kind": "poll reply", "event": None}
        fields = {
            f: getattr(event, f) for f in ("business", "ticket", "staff") if getattr(event, f) is not None
        }
        if event.level is not None:
            fields |= {"level": int(event.level), "label": event.label}
        return {
            "kind": "poll reply",
            "seq": event.seq,
            "event": event.name,
            "evt": f"{int(event.code):02X}",
            "source": event.source.name.lower(),
            **fields,
        }
    if frame.function == Fn.IDENTIFY:
        ident = parse_identify_reply(frame)
        return {
            "kind": "identify reply",
            "device_kind": ident.kind.name.lower(),
            "firmware": ident.firmware,
            "counter": ident.counter,
        }
    if frame.function in ACK_FUNCTIONS:
        return {"kind": "acknowledgement" if not frame.data else "acknowledgement with unexpected data"}
    return {"kind": "reply"}


def _request(frame: Frame) -> dict[str, Any]:
    req = parse_request(frame)
    if req is None:
        return {"kind": "request (function not in hall-protocol.md)"}
    if isinstance(req, Poll):
        return {"kind": "poll", "ack_seq": req.ack_seq}
    if isinstance(req, Display):
        return {"kind": "display", "waiting": req.waiting, "ticket": req.ticket}
    if isinstance(req, StartEval):
        return {"kind": "start evaluation", "ticket": req.ticket, "counter": req.counter, "staff": req.staff}
    if isinstance(req, Clock):
        return {"kind": "clock", "time": req.when.isoformat()}
    names = {Identify: "identify", Beep: "beep", CancelEval: "cancel evaluation"}
    assert isinstance(req, Identify | Beep | CancelEval)
    return {"kind": names[type(req)]}
