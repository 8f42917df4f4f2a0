"""`describe(bytes) -> dict`: a field engineer's reading of one captured DL/T 698.45 frame, for
`gridedge decode --protocol dlt698 HEX`.

Layer: pure (protocols). Must not: print or do I/O; the CLI formats the dict.

Input is one frame, request or reply, with or without its FE preamble. Every field is explained: L
(and its unit bit), C (direction, PRM, fragment, scrambling, function), AF (address type, logical
address, SA length), SA, CA, HCS, the APDU (service, PIID, objects with their names and scaled values,
DARs by name, records row by row, FollowReport, TimeTag), FCS and the end byte. A bad HCS/FCS or end
byte is still decoded and flagged (`hcs_ok`, `fcs_ok`, `end_ok` false); an APDU that does not decode
is reported under `error` with its raw bytes. Only bytes that cannot hold a frame (no `68`, shorter
than the header or than L) raise FrameError. The result is JSON-serialisable.
"""

from __future__ import annotations

from typing import Any

from ..errors import FrameError, ProtocolError
from .apdu import GetResult, RecordResult, TimeTag, tag_name
from .datatypes import Oad, Omd
from .errors import DAR_NAMES, ERROR_TYPES, TruncatedFrame, dar_name
from .fragment import parse_fragment
from .frame import (
    DIR,
    FRAGMENT,
    LENGTH_UNIT_KB,
    PRM,
    SC,
    START,
    Function,
    address_from_wire,
    crc16_x25,
    decode_length,
    header_size,
    strip_preamble,
    unscramble,
)
from .messages import Apdu, OtherApdu, parse_apdu
from .objects import lookup, object_values, record_rows, to_python
from .responses import ErrorApdu, SecurityRequest, SecurityResponse


def describe(data: bytes) -> dict[str, Any]:
    preamble, f = strip_preamble(data)
    if len(f) < 5 or f[0] != START:
        raise TruncatedFrame(f"not a DL/T 698.45 frame (it starts 68 L L C AF): {data.hex(' ')}")
    field, size = int.from_bytes(f[1:3], "little"), header_size(f[4])
    total = decode_length(field)
    if total is None or total < size + 3:
        raise FrameError(f"length field {field:04X} cannot hold a frame with a {size}-byte header")
    if len(f) < total:
        raise TruncatedFrame(f"L announces {total} bytes, got {len(f)}: {data.hex(' ')}")
    c = f[3]
    out: dict[str, Any] = {"protocol": "dlt698", "preamble": preamble, **_link(f, field, total, size)}
    out |= _crc("hcs", f[1 : size - 2], f[size - 2 : size])
    user = f[size : total - 3]
    user = unscramble(user) if c & SC else user
    out["user_data"] = user.hex(" ").upper()
    try:
        out |= _user_data(user, bool(c & FRAGMENT))
    except ProtocolError as exc:
        out["error"] = str(exc)
    out |= _crc("fcs", f[1 : total - 3], f[total - 3 : total - 1])
    out["end_ok"] = f[total - 1] == 0x16
    if len(f) > total:
        out["trailing"] = f[total:].hex(" ").upper()
    return out


def _link(f: bytes, field: int, total: int, size: int) -> dict[str, Any]:
    """L, C, AF, SA and CA explained."""
    address = address_from_wire(f[4], f[5 : size - 3])
    c = f[3]
    return {
        "length": field & 0x3FFF,
        "length_unit": "kilobytes" if field & LENGTH_UNIT_KB else "bytes",
        "frame_bytes": total,
        "control": f"{c:02X}",
        "direction": "meter->master" if c & DIR else "master->meter",
        "prm": "started by the client" if c & PRM else "started by the server",
        "fragment": bool(c & FRAGMENT),
        "scrambled": bool(c & SC),
        "function": c & 7,
        "function_name": Function(c & 7).name.lower() if c & 7 in (1, 3) else "reserved",
        "af": f"{f[4]:02X}",
        "address_type": address.type.name.lower(),
        "logical_address": address.logical,
        "sa_length": len(address.sa) // 2,
        "address": address.sa,
        "ca": f[size - 3],
    }


def _crc(name: str, covered: bytes, got: bytes) -> dict[str, Any]:
    value, expected = int.from_bytes(got, "little"), crc16_x25(covered)
    out: dict[str, Any] = {name: f"{value:04X}", f"{name}_ok": value == expected}
    if value != expected:
        out[f"{name}_expected"] = f"{expected:04X}"
    return out


def _user_data(user: bytes, fragment: bool) -> dict[str, Any]:
    if fragment:
        part = parse_fragment(user)
        return {
            "fragment_sequence": part.sequence,
            "fragment_type": part.type.name.lower(),
            "fragment_data": part.data.hex(" ").upper(),
        }
    return {"apdu": apdu_fields(parse_apdu(user))}


def apdu_fields(apdu: Apdu) -> dict[str, Any]:
    """Every field of an APDU, by name."""
    if isinstance(apdu, OtherApdu):
        return {"service": tag_name(apdu.tag), "tag": f"{apdu.tag:02X}", "body": apdu.body.hex(" ").upper()}
    if isinstance(apdu, SecurityRequest | SecurityResponse):
        return _security(apdu)
    out: dict[str, Any] = {"service": type(apdu).__name__, "tag": f"{apdu.TAG:02X}", "choice": apdu.CHOICE}
    out |= {"piid": f"{apdu.piid:02X}", "sequence": apdu.piid & 0x3F, "high_priority": bool(apdu.piid & 0x80)}
    if apdu.TAG >= 0x80:
        out["server_has_report"] = bool(apdu.piid & 0x40)
    for name in apdu.__dataclass_fields__:
        if name == "piid":
            continue
        value = getattr(apdu, name)
        if value is not None and value != ():
            out[name] = _field(name, value)
    if isinstance(apdu, ErrorApdu):
        out["error_name"] = ERROR_TYPES.get(apdu.kind, "unknown")
    return out


def _field(name: str, value: Any) -> Any:  # one branch per field shape
    if isinstance(value, GetResult):
        return _result(value)
    if isinstance(value, RecordResult):
        return _records(value)
    if isinstance(value, Oad | Omd):
        return _object(value)
    if isinstance(value, TimeTag):
        return {"sent": str(value.sent), "valid": {"unit": value.valid.unit, "value": value.valid.value}}
    if name == "dar" and isinstance(value, int):
        return {"code": value, "name": dar_name(value)}
    if isinstance(value, tuple):
        return [_field(name, item) for item in value]
    if hasattr(value, "results"):  # FollowReport
        return [_field("result", r) for r in value.results]
    if hasattr(value, "type") and hasattr(value, "value"):  # Data
        return to_python(value)
    return to_python_plain(value)


def to_python_plain(value: Any) -> Any:
    if isinstance(value, bool | int | str | float) or value is None:
        return value
    if isinstance(value, bytes):
        return value.hex(" ").upper()
    if hasattr(value, "__dataclass_fields__"):
        return {name: _field(name, getattr(value, name)) for name in value.__dataclass_fields__}
    return str(value)


def _object(target: Oad | Omd) -> dict[str, Any]:
    if isinstance(target, Omd):
        return {"omd": str(target), "oi": f"{target.oi:04X}", "method": target.method}
    out: dict[str, Any] = {"oad": str(target), "oi": f"{target.oi:04X}", "attribute": target.number}
    out["index"] = target.index
    entry = lookup(target)
    if entry is not None:
        out["object"] = entry.description
        if not entry.verified:
            out["verified"] = False
    return out


def _result(result: GetResult) -> dict[str, Any]:
    out = _object(result.oad)
    if result.data is None:
        return out | {"dar": result.dar, "dar_name": DAR_NAMES.get(result.dar, "unknown")}
    out["data"] = to_python(result.data)
    values = object_values(result.oad, result.data)
    if values:
        out["values"] = {
            k: to_python_plain(v) if not hasattr(v, "isoformat") else str(v) for k, v in values.items()
        }
    return out


def _records(result: RecordResult) -> dict[str, Any]:
    out = _object(result.oad)
    out["columns"] = [str(csd.target) for csd in result.rcsd]
    if result.rows is None:
        return out | {"dar": result.dar, "dar_name": DAR_NAMES.get(result.dar, "unknown")}
    out["rows"] = [[to_python(cell) for cell in row] for row in result.rows]
    out["records"] = [
        {k: (str(v) if hasattr(v, "isoformat") else v) for k, v in row.items()} for row in record_rows(result)
    ]
    return out


def _security(apdu: SecurityRequest | SecurityResponse) -> dict[str, Any]:
    out: dict[str, Any] = {"service": type(apdu).__name__, "ciphered": apdu.ciphered}
    if isinstance(apdu, SecurityResponse) and apdu.dar is not None:
        out["dar"] = {"code": apdu.dar, "name": dar_name(apdu.dar)}
    elif apdu.ciphered:
        out["ciphertext"] = apdu.apdu.hex(" ").upper()
    else:
        try:
            out["inner"] = apdu_fields(parse_apdu(apdu.apdu, "secured plaintext"))
        except ProtocolError as exc:
            out["inner_error"] = str(exc)
            out["inner_raw"] = apdu.apdu.hex(" ").upper()
    if isinstance(apdu, SecurityRequest):
        out["verify"] = ("SID_MAC", "RN", "RN_MAC", "SID")[apdu.verify] if apdu.verify < 4 else apdu.verify
        for name in ("rn", "mac"):
            if getattr(apdu, name):
                out[name] = getattr(apdu, name).hex(" ").upper()
        if apdu.sid is not None:
            out["sid"] = {"ident": f"{apdu.sid.ident:08X}", "extra": apdu.sid.extra.hex(" ").upper()}
    elif apdu.mac is not None:
        out["mac"] = apdu.mac.hex(" ").upper()
        out["mac_verified"] = False  # no ESAM in the gateway: kept and flagged (dlt698.md §5)
    return out
