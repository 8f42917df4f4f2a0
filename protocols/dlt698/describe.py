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

import dataclasses
from typing import Any, Final

from ..errors import FrameError, ProtocolError
from .apdu import ActionRequest, FollowReport, GetResult, RecordResult, SetRequest, Tag, TimeTag, tag_name
from .axdr import Csd, Data, Rsd
from .datatypes import Oad, Omd, Ti
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
from .methods import method, method_parameters
from .objects import OBJECT_NAMES, lookup, object_values, record_rows, to_python
from .responses import ActionResponse, ErrorApdu, SecurityRequest, SecurityResponse
from .tags import DataType


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
    out: dict[str, Any] = {"service": type(apdu).__name__, "service_name": tag_name(apdu.TAG)}
    out["tag"] = f"{apdu.TAG:02X}"
    if not isinstance(apdu, ErrorApdu):  # the only APDU without a sub-type byte
        out |= {"choice": apdu.CHOICE, "choice_name": _choice_name(apdu.TAG, apdu.CHOICE)}
    out |= {"piid": f"{apdu.piid:02X}", "sequence": apdu.piid & 0x3F, "high_priority": bool(apdu.piid & 0x80)}
    if apdu.TAG >= 0x80:
        out["server_has_report"] = bool(apdu.piid & 0x40)
    # dataclasses.fields, not __dataclass_fields__: the latter also lists the ClassVars TAG and CHOICE
    for field in dataclasses.fields(apdu):
        value = getattr(apdu, field.name)
        if field.name != "piid" and value is not None and value != ():
            out[field.name] = _field(field.name, value)
    if isinstance(apdu, ErrorApdu):
        out["error_name"] = ERROR_TYPES.get(apdu.kind, "unknown")
    if isinstance(apdu, ActionRequest | ActionResponse):
        out |= _action_data(apdu.omd, apdu.data, isinstance(apdu, ActionRequest))
    elif isinstance(apdu, SetRequest):
        out["data"] = typed(apdu.data)
        if values := object_values(apdu.oad, apdu.data):
            out["values"] = _plain_values(values)
    return out


def _choice_name(tag: int, choice: int) -> str:
    names = _GET_CHOICES if tag in (Tag.GET_REQUEST, Tag.GET_RESPONSE) else _SET_CHOICES
    return names.get(choice, f"unknown sub-type {choice}")


_GET_CHOICES: Final = {1: "normal", 2: "normal_list", 3: "record", 4: "record_list", 5: "next", 6: "md5"}
_SET_CHOICES: Final = {1: "normal", 2: "normal_list", 3: "then_get_normal_list"}
TI_UNITS: Final = ("seconds", "minutes", "hours", "days", "months", "years")
RSD_SELECTORS: Final = {
    0: "no selection",
    1: "records whose column equals a value",
    2: "records with a column in [from, to)",
    3: "records in any of several ranges",
    4: "collection start time, meter set",
    5: "collection save time, meter set",
    6: "collection start time range, meter set",
    7: "collection save time range, meter set",
    8: "collection success time range, meter set",
    9: "the n-th latest record",
    10: "the latest n records of a meter set",
}


def _field(name: str, value: Any) -> Any:  # one branch per field shape
    if isinstance(value, GetResult):
        return _result(value)
    if isinstance(value, RecordResult):
        return _records(value)
    if isinstance(value, Oad | Omd):
        return _object(value)
    if isinstance(value, TimeTag):
        return {"sent": str(value.sent), "valid": _ti(value.valid)}
    if isinstance(value, Rsd):
        return _rsd(value)
    if isinstance(value, Csd):
        return _csd(value)
    if name == "dar" and isinstance(value, int):
        return {"code": value, "name": dar_name(value)}
    if name == "items" and isinstance(value, tuple):  # SET-NormalList: (OAD, Data) pairs
        return [_object(oad) | {"data": typed(data)} for oad, data in value]
    if name == "results" and value and isinstance(value[0], tuple):  # SET-NormalList answer
        return [_object(oad) | {"dar": dar, "dar_name": dar_name(dar)} for oad, dar in value]
    if isinstance(value, tuple):
        return [_field(name, item) for item in value]
    if isinstance(value, FollowReport):
        return [_field("result", r) for r in value.results]
    if isinstance(value, Data):
        return typed(value)
    return to_python_plain(value)


def to_python_plain(value: Any) -> Any:
    if isinstance(value, bool | int | str | float) or value is None:
        return value
    if isinstance(value, bytes):
        return value.hex(" ").upper()
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _field(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


def typed(data: Data) -> str:
    """Data with its type named at every level, on one line: `array(1) [structure(2) {oad F2050201,
    enum 1}]`: a field engineer sees `unsigned 0`, not a bare 0 (the catalogue's names, where it knows
    the object or method, are beside it as `values` / `parameters`)."""
    kind = _type_name(data)
    items = data.items()
    if data.type == DataType.ARRAY:
        return f"{kind}({len(items)}) [{', '.join(typed(i) for i in items)}]"
    if data.type == DataType.STRUCTURE:
        return f"{kind}({len(items)}) {{{', '.join(typed(i) for i in items)}}}"
    if data.type == DataType.NULL:
        return kind
    value = to_python(data)
    return f"{kind} {str(value).lower() if isinstance(value, bool) else value}"


def _type_name(data: Data) -> str:
    return data.type.name.lower().replace("_", "-") if isinstance(data.type, DataType) else str(data.type)


def _ti(ti: Ti) -> dict[str, Any]:
    unit = TI_UNITS[ti.unit] if ti.unit < len(TI_UNITS) else f"unknown unit {ti.unit}"
    return {"value": ti.value, "unit": unit}


def _rsd(rsd: Rsd) -> dict[str, Any]:
    out: dict[str, Any] = {"selector": rsd.selector}
    out["selector_name"] = RSD_SELECTORS.get(rsd.selector, f"unknown selector {rsd.selector}")
    if rsd.oad is not None:
        out["column"] = _object(rsd.oad)
    if rsd.values:
        out["values"] = [typed(v) for v in rsd.values]
    if rsd.ranges:
        out["ranges"] = [_rsd(r) for r in rsd.ranges]
    if rsd.times:
        out["times"] = [str(t) for t in rsd.times]
    if rsd.ti is not None:
        out["interval"] = _ti(rsd.ti)
    if rsd.ms is not None:
        name = _METER_SETS.get(rsd.ms.choice, f"unknown meter set {rsd.ms.choice}")
        out["meter_set"] = {
            "choice": rsd.ms.choice,
            "choice_name": name,
            "items": [str(i) for i in rsd.ms.items],
        }
    if rsd.selector in (9, 10):
        out["n"] = rsd.n
    return out


_METER_SETS: Final = {
    0: "no meter",
    1: "all meters",
    2: "by user type",
    3: "by address",
    4: "by configuration number",
    5: "by user type range",
    6: "by address range",
    7: "by configuration number range",
}


def _csd(csd: Csd) -> dict[str, Any]:
    if isinstance(csd.target, Oad):
        return _object(csd.target)
    road = csd.target
    return _object(road.oad) | {"columns": [_object(c) for c in road.columns]}


def _object(target: Oad | Omd) -> dict[str, Any]:
    if isinstance(target, Omd):
        return _method(target)
    out: dict[str, Any] = {"oad": str(target), "oi": f"{target.oi:04X}", "attribute": target.number}
    if target.attribute >> 5:
        out["attribute_feature"] = target.attribute >> 5
    out["index"] = target.index
    entry = lookup(target)
    if entry is not None:
        out["object"] = entry.description
        if target.index and entry.array and target.index <= len(entry.names):
            out["element"] = entry.names[target.index - 1] or f"element {target.index}"
        if not entry.verified:
            out["verified"] = False
    elif target.oi in OBJECT_NAMES:
        out["object"] = OBJECT_NAMES[target.oi]
    if "element" not in out:
        out["element"] = "the whole attribute" if target.index == 0 else f"element {target.index}"
    return out


def _method(omd: Omd) -> dict[str, Any]:
    out: dict[str, Any] = {"omd": str(omd), "oi": f"{omd.oi:04X}", "method": omd.method, "mode": omd.mode}
    if omd.oi in OBJECT_NAMES:
        out["object"] = OBJECT_NAMES[omd.oi]
    known = method(omd.oi, omd.method)
    out["method_name"] = known.name if known else f"method {omd.method} (not in the catalogue)"
    if known is not None:
        out["method_description"] = known.description
        if not known.verified:
            out["verified"] = False
    return out


def _action_data(omd: Omd, data: Data | None, request: bool) -> dict[str, Any]:
    """An ACTION's parameter (request) or return value (response) as typed Data, and a request's
    parameter by the names the method catalogue gives its members."""
    if data is None:
        return {}
    out: dict[str, Any] = {"data": typed(data)}
    known = method(omd.oi, omd.method)
    if request and known is not None:
        named = method_parameters(known, data)
        if named is not None:
            out["parameters"] = named
    return out


def _plain_values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: to_python_plain(v) if not hasattr(v, "isoformat") else str(v) for k, v in values.items()}


def _result(result: GetResult) -> dict[str, Any]:
    out = _object(result.oad)
    if result.data is None:
        return out | {"dar": result.dar, "dar_name": DAR_NAMES.get(result.dar, "unknown")}
    out["data_type"] = _type_summary(result.data)
    out["data"] = to_python(result.data)
    if values := object_values(result.oad, result.data):
        out["values"] = _plain_values(values)
    return out


def _type_summary(data: Data) -> str:
    kind, items = _type_name(data), data.items()
    if data.type in (DataType.ARRAY, DataType.STRUCTURE):
        inner = {_type_summary(i) for i in items}
        return f"{kind}({len(items)}) of {inner.pop()}" if len(inner) == 1 else f"{kind}({len(items)})"
    return kind


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
    tag = Tag.SECURITY_REQUEST if isinstance(apdu, SecurityRequest) else Tag.SECURITY_RESPONSE
    out: dict[str, Any] = {"service": type(apdu).__name__, "service_name": tag_name(tag), "tag": f"{tag:02X}"}
    out["ciphered"] = apdu.ciphered
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
