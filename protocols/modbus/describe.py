"""`describe(bytes) -> dict`: a field engineer's reading of one captured Modbus frame, for
`gridedge decode --protocol modbus HEX`.

Layer: pure (protocols). Must not: print or do I/O; the CLI formats the dict.

Input is one RTU ADU (unit + PDU + CRC), request or reply; a Modbus TCP frame (MBAP header) is
recognised too. An RTU frame carries no direction bit, so both readings are tried: a read request
and a read reply differ in length, a single write and its reply are identical (an echo), and a few
byte strings are valid both ways ("ambiguous": both readings are given). A frame with a bad CRC is
still decoded, flagged `crc_ok: false`. Only frames too short to hold a unit, a function and a CRC
raise (FrameError); the result is always JSON-serialisable.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from ..errors import FrameError, ProtocolError
from .crc import crc_bytes
from .mbap import parse_mbap
from .pdu import (
    BitsReply,
    ExceptionReply,
    ReadRequest,
    RegistersReply,
    Reply,
    Request,
    WriteCoil,
    WriteCoils,
    WriteRegister,
    WriteReply,
    function_name,
    parse_reply,
    parse_request,
)
from .rtu import crc_ok


def describe(data: bytes) -> dict[str, Any]:
    if len(data) < 4:
        raise FrameError(f"{len(data)} bytes: a Modbus RTU frame has at least unit, function and 2 CRC bytes")
    if not crc_ok(data) and _looks_like_mbap(data):
        return _describe_mbap(data)
    out: dict[str, Any] = {"framing": "rtu", "unit": data[0]}
    if data[0] == 0:
        out["broadcast"] = True
    out.update(_describe_pdu(data[1:-2]))
    out["crc_ok"] = crc_ok(data)
    out["crc"] = data[-2:].hex()
    if not out["crc_ok"]:
        out["crc_expected"] = crc_bytes(data[:-2]).hex()
    return out


def _looks_like_mbap(data: bytes) -> bool:
    length = int.from_bytes(data[4:6], "big") if len(data) >= 8 else 0
    return data[2:4] == b"\0\0" and 2 <= length <= 254 and length == len(data) - 6


def _describe_mbap(data: bytes) -> dict[str, Any]:
    frame = parse_mbap(data)
    out: dict[str, Any] = {"framing": "tcp", "transaction_id": frame.transaction_id, "unit": frame.unit}
    out.update(_describe_pdu(frame.pdu))
    return out


def _describe_pdu(pdu: bytes) -> dict[str, Any]:
    function = pdu[0]
    out: dict[str, Any] = {"function": function & 0x7F, "function_name": function_name(function & 0x7F)}
    readings: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    try:
        readings["request"] = _request_fields(parse_request(pdu))
    except ProtocolError as exc:
        problems.append(f"as request: {exc}")
    try:
        readings["reply"] = _reply_fields(parse_reply(pdu))
    except ProtocolError as exc:
        problems.append(f"as reply: {exc}")
    if function & 0x80 and "reply" in readings:
        out["kind"] = "exception"
        out.update(readings["reply"])
    elif len(readings) == 2 and readings["request"] == readings["reply"]:
        out["kind"] = "request or reply (echo)"
        out.update(readings["request"])
    elif len(readings) == 2:
        out["kind"] = "ambiguous"
        out.update({f"as_{k}": v for k, v in readings.items()})
    elif readings:
        ((kind, fields),) = readings.items()
        out["kind"] = kind
        out.update(fields)
    else:
        out["kind"] = "unknown"
        out["error"] = "; ".join(problems)
        out["data"] = pdu[1:].hex(" ")
    return out


def _request_fields(req: Request) -> dict[str, Any]:
    if isinstance(req, ReadRequest):
        return {"address": req.address, "count": req.count}
    if isinstance(req, WriteCoil | WriteRegister):
        return {"address": req.address, "value": req.value}
    if isinstance(req, WriteCoils):
        return {"address": req.address, "count": len(req.values), "values": [int(v) for v in req.values]}
    return {"address": req.address, "count": len(req.values), "values": list(req.values)}


def _reply_fields(reply: Reply) -> dict[str, Any]:
    if isinstance(reply, ExceptionReply):
        return {"exception_code": reply.code, "exception": reply.name}
    if isinstance(reply, BitsReply):
        return {"byte_count": len(reply.bits) // 8, "bits": [int(b) for b in reply.bits]}
    if isinstance(reply, RegistersReply):
        return {
            "byte_count": 2 * len(reply.registers),
            "registers": list(reply.registers),
            **_floats(reply.registers),
        }
    assert isinstance(reply, WriteReply)
    key = "value" if reply.function in (5, 6) else "count"
    value: Any = reply.value == 0xFF00 if reply.function == 5 else reply.value
    return {"address": reply.address, key: value}


def _floats(registers: tuple[int, ...]) -> dict[str, Any]:
    """The two common float layouts, so an engineer can spot which one the meter uses."""
    if not registers or len(registers) % 2:
        return {}
    raw = b"".join(r.to_bytes(2, "big") for r in registers)
    swapped = b"".join(raw[i + 2 : i + 4] + raw[i : i + 2] for i in range(0, len(raw), 4))
    return {"f32_abcd": _as_floats(raw), "f32_cdab": _as_floats(swapped)}


def _as_floats(raw: bytes) -> list[float | str]:
    out: list[float | str] = []
    for (value,) in struct.iter_unpack(">f", raw):
        out.append(float(f"{value:.7g}") if math.isfinite(value) else str(value))
    return out
