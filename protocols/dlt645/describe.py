"""`describe(bytes) -> dict`: a field engineer's reading of one captured DL/T 645 frame, for
`gridedge decode --protocol dlt645 HEX`.

Layer: pure (protocols). Must not: print or do I/O; the CLI formats the dict.

Input is one frame, request or reply, with or without its FE preamble. The C byte says the direction
and (mostly) the version: 2007 and 1997 share only `03` and `08`. A frame with a bad CS or a wrong end
byte is still decoded and flagged (`cs_ok: false`, `end_ok: false`); a DI outside the catalogue or a
value that does not decode is reported under `error`, with the raw bytes. Only bytes that cannot hold a
frame (too short, no `68 … 68`, shorter than 12 + L) raise FrameError. The result is JSON-serialisable.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..errors import FrameError, ProtocolError
from .errors import ERR_1997, ERR_2007, SERR_2007, TruncatedFrame, bit_names
from .formats import Value
from .frame import (
    BROADCAST,
    HEADER,
    OVERHEAD,
    START,
    address_from_wire,
    checksum,
    is_wildcard,
    strip_preamble,
    unscramble,
)
from .frame import Frame as _Frame
from .items import DI_SIZE, Version, find_item
from .messages import (
    ControlCommand,
    ControlRequest,
    Fn2007,
    OtherRequest,
    ReadAddressRequest,
    ReadRequest,
    TimeSyncRequest,
    WriteRequest,
    function_name,
    parse_address_reply,
    parse_read_reply,
    parse_request,
    version_of,
)
from .status import canonical_values, status_bits, status_word_3


def describe(data: bytes) -> dict[str, Any]:
    preamble, f = strip_preamble(data)
    if len(f) < OVERHEAD:
        raise TruncatedFrame(f"{len(f)} bytes after the preamble: a DL/T 645 frame has at least {OVERHEAD}")
    if f[0] != START or f[7] != START:
        raise FrameError(f"not a DL/T 645 frame: it must start 68 A0..A5 68: {data.hex(' ')}")
    address, length = address_from_wire(f[1:7]), f[9]
    if len(f) < OVERHEAD + length:
        raise TruncatedFrame(f"meter {address}: L={length} needs {OVERHEAD + length} bytes, got {len(f)}")
    frame = _Frame(address, f[8], unscramble(f[HEADER : HEADER + length]))
    version = version_of(frame)
    out: dict[str, Any] = {"protocol": "dlt645", "preamble": preamble, "address": address}
    if address == BROADCAST:
        out["broadcast"] = True
    elif is_wildcard(address):
        out["wildcard"] = True
    out |= {
        "control": f"{frame.control:02X}",
        "direction": "meter->master" if frame.is_reply else "master->meter",
        "abnormal": frame.abnormal,
        "follow_up": frame.follow_up,
        "function": f"{frame.function:02X}",
        "function_name": function_name(frame.function, version),
        "version": str(version) if version else "2007 or 1997",
        "length": length,
        "data": frame.data.hex(" "),
    }
    try:
        out |= _content(frame, version or Version.V2007)
    except ProtocolError as exc:
        out["error"] = str(exc)
    cs, expected = f[HEADER + length], checksum(f[: HEADER + length])
    out |= {"cs": f"{cs:02X}", "cs_ok": cs == expected}
    if cs != expected:
        out["cs_expected"] = f"{expected:02X}"
    out["end_ok"] = f[HEADER + length + 1] == 0x16
    if len(f) > OVERHEAD + length:
        out["trailing"] = f[OVERHEAD + length :].hex(" ")
    return out


def _content(frame: _Frame, version: Version) -> dict[str, Any]:
    if not frame.is_reply:
        return _request(parse_request(frame))
    if frame.abnormal:
        return _abnormal(frame, version)
    if frame.function == Fn2007.READ_ADDRESS:
        return {"kind": "read-address reply", "meter_address": parse_address_reply(frame)}
    if frame.function in (0x01, 0x02, 0x11, 0x12):
        return _read_reply(frame, version)
    return {"kind": "reply" if not frame.data else "reply with data"}


def _request(req: object) -> dict[str, Any]:
    if isinstance(req, ReadRequest):
        out: dict[str, Any] = {"kind": "read follow-up request" if req.follow else "read request"}
        out |= _di(req.di, req.version)
        if req.seq is not None:
            out["seq"] = req.seq
        if req.extra:
            out["extra"] = req.extra.hex(" ")
        return out
    if isinstance(req, ReadAddressRequest):
        return {"kind": "read-address request"}
    if isinstance(req, TimeSyncRequest):
        return {"kind": "time sync", "time": _json(req.when)}
    if isinstance(req, ControlRequest):
        return _control(req)
    if isinstance(req, WriteRequest):
        cred = req.credentials
        return {
            "kind": "write request",
            **_di(req.di, req.version),
            "password_level": cred.level,
            "password": cred.password,
            "operator": cred.operator,
            "value_data": req.data.hex(" "),
        }
    assert isinstance(req, OtherRequest)
    return {"kind": "request"}


def _control(req: ControlRequest) -> dict[str, Any]:
    cred = req.credentials
    out: dict[str, Any] = {
        "kind": "remote control",
        "password_level": cred.level,
        "password": cred.password,
        "operator": cred.operator,
    }
    if req.command is None:
        return out | {"ciphertext": req.ciphertext.hex(" ")}
    name = (
        ControlCommand(req.command).name.lower() if req.command in ControlCommand._value2member_map_ else None
    )
    return out | {
        "command": f"{req.command:02X}",
        "command_name": name,
        "valid_until": _json(req.valid_until),
    }


def _abnormal(frame: _Frame, version: Version) -> dict[str, Any]:
    if version == Version.V2007 and frame.function == Fn2007.SECURITY:
        code = int.from_bytes(frame.data[:2], "little")
        return {
            "kind": "abnormal reply",
            "serr": f"{code:04X}",
            "errors": list(bit_names(code, SERR_2007, 16)),
        }
    code = frame.data[0] if frame.data else 0
    names = ERR_1997 if version == Version.V1997 else ERR_2007
    return {"kind": "abnormal reply", "err": f"{code:02X}", "errors": list(bit_names(code, names))}


def _read_reply(frame: _Frame, version: Version) -> dict[str, Any]:
    reply = parse_read_reply(frame, version)
    out: dict[str, Any] = {"kind": "read reply", **_di(reply.di, version)}
    if reply.seq is not None:
        out["seq"] = reply.seq
    out["value_data"] = reply.data.hex(" ")
    if reply.item is None:
        return out
    values = reply.values()
    out["values"] = {k: _json(v) for k, v in values.items()}
    canonical = canonical_values(values)
    if canonical:
        out["canonical"] = canonical
    for name, value in values.items():
        if name.startswith("status_word_") and name[-1].isdigit() and isinstance(value, int):
            n = int(name[-1])
            out.setdefault("status", {})[name] = (
                status_word_3(value) if n == 3 else list(status_bits(n, value))
            )
    return out


def _di(di: int, version: Version) -> dict[str, Any]:
    item = find_item(di, version)
    out: dict[str, Any] = {"di": f"{di:0{2 * DI_SIZE[version]}X}"}
    if item is not None:
        out |= {"item": item.name, "unit": item.unit, "description": item.description}
        if not item.verified:
            out["verified"] = False
    return out


def _json(value: Value) -> Any:
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return value
