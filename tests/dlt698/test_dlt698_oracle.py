"""Cross-checks against PyPI `dlt698` 1.0.1 (bindings of the 600888/dlt698 C++ library, another
author's implementation): frames and APDUs we build parse with it to the same fields and re-encode to
the same bytes, and frames it builds parse with ours.

Where the two disagree, which side is right:
- The library refuses values it considers invalid that we decode and re-encode unchanged: TI units
  above 5, COMDCB fields outside their enums, a TSA whose first byte does not announce its length,
  bit-strings with non-zero padding bits, visible-strings with non-printable bytes, MS regions whose
  bounds are not of the set's type, PIID bit 6 in a request, ERROR-Response types other than 1/2/255,
  a GET-Next DAR block that is not the last, empty SET lists. Our decoder is deliberately lenient
  (dlt698.md §7: a field engineer must see what a meter sent; the value tree shows it, nothing is
  guessed) and the builders a master uses (`piid()`, `Rsd`, the catalogue) never produce such values,
  so those inputs are excluded here rather than "fixed".
- Broadcast frames: the library accepts only SA `AA` (dlt698.md §1: AF `C0`, SA `AA`); our frame
  parser reads any broadcast SA so `describe` can show a malformed one, and our `Address.broadcast()`
  builds only `AA`.
No case was found where both accept the same bytes and read them differently.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.dlt698 import (
    Address,
    AddressType,
    Data,
    DataType,
    ErrorApdu,
    Frame,
    GetListRequest,
    GetListResponse,
    GetNextResponse,
    Request,
    SetListRequest,
    crc16_x25,
    parse_apdu,
    parse_fragment,
    parse_frame,
)

from . import strategies as S
from .vectors import VECTORS, Vector

dlt698 = pytest.importorskip("dlt698", reason="the dlt698 oracle is in the test extra of pyproject.toml")
from dlt698 import codec  # noqa: E402
from dlt698.protocol import link  # noqa: E402

CHECKS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


def _data_ok(d: Data) -> bool:
    """Values the library validates beyond the wire format (see the module docstring)."""
    v = d.value
    if d.type in (DataType.ARRAY, DataType.STRUCTURE):
        return all(_data_ok(x) for x in v)
    if d.type == DataType.TI:
        return bool(v.unit <= 5)
    if d.type == DataType.TSA:
        return len(v.data) >= 2 and (v.data[0] & 0x0F) + 2 == len(v.data)
    if d.type == DataType.BIT_STRING:
        return v.bits % 8 == 0 or v.data[-1] & ((1 << (8 - v.bits % 8)) - 1) == 0
    if d.type == DataType.VISIBLE_STRING:
        return all(0x20 <= ord(c) < 0x7F for c in v)
    return d.type not in (DataType.COMDCB, DataType.MS, DataType.RSD)


def _walk_ok(x: Any) -> bool:
    if isinstance(x, Data):
        return _data_ok(x)
    if isinstance(x, tuple):
        return all(_walk_ok(i) for i in x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        if type(x).__name__ == "Ms":
            return x.choice in (0, 1, 2, 4)
        if type(x).__name__ == "Rsd":
            return (
                x.selector not in (6, 7, 8) and _walk_ok(x.ms) and _walk_ok(x.values) and _walk_ok(x.ranges)
            )
        return all(_walk_ok(getattr(x, f.name)) for f in dataclasses.fields(x))
    return True


def _apdu_ok(a: Any) -> bool:
    if isinstance(a, Request) and a.piid & 0x40:
        return False
    if isinstance(a, ErrorApdu) and (a.kind not in (1, 2, 255) or a.piid & 0x40):
        return False
    if isinstance(a, GetNextResponse) and a.dar is not None and not a.last:
        return False
    if isinstance(a, SetListRequest | GetListRequest | GetListResponse) and not (
        getattr(a, "items", None) or getattr(a, "oads", None) or getattr(a, "results", None)
    ):
        return False
    return _walk_ok(a)


@pytest.mark.parametrize("vector", VECTORS, ids=[v.id for v in VECTORS])
def test_reference_frames_read_the_same(vector: Vector) -> None:
    theirs = codec.decode_frame(vector.raw)
    ours = parse_frame(vector.raw)
    assert theirs.control == ours.control
    assert theirs.client == ours.ca
    assert theirs.server.bytes == bytes.fromhex(ours.address.sa)[::-1]
    assert int(theirs.server.type) == int(ours.address.type)
    assert theirs.payload == ours.data
    decode = codec.decode_security if ours.data[0] in (0x10, 0x90) else codec.decode_apdu
    encode = codec.encode_security if ours.data[0] in (0x10, 0x90) else codec.encode_apdu
    assert encode(decode(ours.data)) == parse_apdu(ours.data).encode()


@st.composite
def _frames(draw: st.DrawFn) -> Frame:
    frame = draw(S.frames)
    if frame.address.type == AddressType.BROADCAST:
        frame = dataclasses.replace(
            frame, address=Address("AA", AddressType.BROADCAST, frame.address.logical)
        )
    return frame


@CHECKS
@given(_frames())
def test_our_frames_parse_with_the_library(frame: Frame) -> None:
    raw = frame.encode()
    theirs = codec.decode_frame(raw)
    assert theirs.control == frame.control
    assert theirs.client == frame.ca
    assert theirs.server.bytes == bytes.fromhex(frame.address.sa)[::-1]
    assert int(theirs.server.type) == int(frame.address.type)
    assert theirs.server.logical == frame.address.logical
    assert theirs.payload == frame.data  # both hand out the user data with the +0x33 removed


@CHECKS
@given(_frames())
def test_library_frames_parse_with_ours(frame: Frame) -> None:
    server = link.ServerAddress(
        bytes=bytes.fromhex(frame.address.sa)[::-1],
        logical=frame.address.logical,
        type=link.AddressType(int(frame.address.type)),
    )
    raw = codec.encode_frame(
        codec.Frame(client=frame.ca, control=frame.control, payload=frame.data, server=server)
    )
    assert parse_frame(raw) == frame


@CHECKS
@given(S.data.filter(_data_ok))
def test_data_reencodes_identically(data: Data) -> None:
    raw = data.encode()
    assert codec.encode_data(codec.decode_data(raw)) == raw
    assert Data.decode(raw) == data


@CHECKS
@given(st.one_of(S.requests, S.responses).filter(_apdu_ok))
def test_apdus_reencode_identically(apdu: Any) -> None:
    raw = apdu.encode()
    assert codec.encode_apdu(codec.decode_apdu(raw)) == raw
    assert parse_apdu(raw) == apdu


@CHECKS
@given(st.binary(max_size=64))
def test_crc(data: bytes) -> None:
    assert codec.crc16(data) == crc16_x25(data)


@pytest.mark.parametrize(("raw", "sequence", "kind"), [("0240AA", 2, "last"), ("0180", 1, "acknowledgement")])
def test_fragment_header_as_the_reference_checked_it(raw: str, sequence: int, kind: str) -> None:
    """dlt698.md §1: last seq 2 = `02 40`, ack seq 1 = `01 80` (the library wants data after a last)."""
    theirs = link.decode_fragment(bytes.fromhex(raw))
    ours = parse_fragment(bytes.fromhex(raw))
    assert theirs.sequence == ours.sequence == sequence
    assert theirs.type.name == kind
    assert ours.type.name.lower() == {"acknowledgement": "ack"}.get(kind, kind)
