"""The DL/T 698.45 fuzz target, registered in tests/fuzz/targets.py (bench/fuzz.py --codec dlt698).

Layer: test support. Must not: do I/O, read clocks, or catch anything but `ProtocolError`.

Seeds: the worked frames of dlt698.md §6 and frames our builders make for every catalogue object,
every APDU shape, the security wrappings and fragments. `fixup` restores `68`, makes L match the bytes
present (unit bit and reserved bit cleared), recomputes HCS and FCS and the end byte, so a mutated
frame reaches the APDU and A-XDR decoders. `decode` runs everything a gateway, a simulator and
`gridedge decode` would run on the bytes. `split` checks the splitter and matcher stay bounded
(a candidate waits at most for the 16385 bytes its header announces) and resynchronise.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable, Sequence
from typing import Any

from protocols import dlt698 as d
from protocols.dlt698.frame import MAX_FRAME, header_size
from protocols.errors import ProtocolError

from .vectors import METER, VECTORS

BOUND = MAX_FRAME
T = d.DataType


def _exchanges() -> list[tuple[d.Frame, d.Frame]]:
    """(request, its reply) pairs: a GET of every catalogue object, records, SET, ACTION, security."""
    out: list[tuple[d.Frame, d.Frame]] = []
    for n, entry in enumerate(d.ENTRIES):
        request = d.get_request(METER, entry.oad, n % 64)
        value = d.Data.array(*(d.Data(T.DOUBLE_LONG_UNSIGNED, 1000 + i) for i in range(len(entry.names))))
        out.append(
            (request, d.reply_frame(request, METER, d.GetResponse(n % 64, d.GetResult(entry.oad, value))))
        )
    cols = d.columns(d.FREEZE_TIME, d.Oad(0x0010, 2))
    rec = d.last_records_request(METER, d.Oad(0x5004, 2), 2, cols, 7)
    rows = (
        (d.Data(T.DATE_TIME_S, d.DateTimeS(2024, 5, 20)), d.Data.array(d.Data(T.DOUBLE_LONG_UNSIGNED, 5))),
    )
    result = d.RecordResult(d.Oad(0x5004, 2), cols, rows)
    out.append((rec, d.reply_frame(rec, METER, d.GetRecordResponse(7, result))))
    clock = d.Data(T.DATE_TIME_S, d.DateTimeS(2024, 5, 20, 12))
    st = d.set_request(METER, d.Oad(0x4000, 2), clock, 8)
    out.append((st, d.reply_frame(st, METER, d.SetResponse(8, d.Oad(0x4000, 2), 3))))
    act = d.action_request(METER, d.Omd(0x8001, 127), d.NULL, 9)
    out.append((act, d.reply_frame(act, METER, d.ActionResponse(9, d.Omd(0x8001, 127), 0, d.NULL))))
    nxt = d.next_request(METER, 1, 10)
    out.append((nxt, d.reply_frame(nxt, METER, d.GetNextResponse(10, True, 2, results=(result_normal(),)))))
    inner = d.GetRequest(11, d.Oad(0x0010, 2))
    sec = d.secured_request(METER, inner, bytes(16))
    answer = d.GetResponse(11, result_normal()).encode()
    out.append((sec, d.reply_frame(sec, METER, d.SecurityResponse(answer, mac=b"\x01\x02\x03\x04"))))
    return out


def result_normal() -> d.GetResult:
    return d.GetResult(d.Oad(0x0010, 2), d.Data.array(d.Data(T.DOUBLE_LONG_UNSIGNED, 123456)))


EXCHANGES = _exchanges()
FRAGMENTS = [
    d.Frame(METER, d.control_byte(reply=True, fragment=True), part.encode())
    for part in d.split_apdu(EXCHANGES[0][1].data * 4, 40)
]
SEEDS: list[bytes] = (
    [v.raw for v in VECTORS]
    + [f.encode(n % 5) for pair in EXCHANGES for n, f in enumerate(pair)]
    + [f.encode() for f in FRAGMENTS]
)


def fixup(raw: bytes, rng: random.Random) -> bytes:
    n_pre, f = d.strip_preamble(raw)
    if len(f) < 5:
        return raw
    body = bytearray(f[:MAX_FRAME])
    body[0] = 0x68
    body[3] &= 0xEF
    size = header_size(body[4])
    if len(body) < size + 3:
        return raw
    body[1:3] = (len(body) - 2).to_bytes(2, "little")
    body[size - 2 : size] = d.crc16_x25(body[1 : size - 2]).to_bytes(2, "little")
    body[-1] = 0x16
    body[-3:-1] = d.crc16_x25(body[1:-3]).to_bytes(2, "little")
    return raw[:n_pre] + bytes(body)


def _attempt(fn: Callable[..., Any], *args: Any) -> Any:
    with contextlib.suppress(ProtocolError):
        return fn(*args)
    return None


def _values(apdu: Any) -> None:
    results = getattr(apdu, "results", ()) or ()
    result = getattr(apdu, "result", None)
    for item in (*results, *([result] if result is not None else ()), *getattr(apdu, "records", ())):
        if isinstance(item, d.GetResult):
            d.result_values(item)
            if item.data is not None:
                json.dumps(d.to_python(item.data))
                d.canonical_values(item.oad, item.data)
        elif isinstance(item, d.RecordResult):
            d.record_rows(item)


def decode(raw: bytes) -> bool:
    with contextlib.suppress(ProtocolError):
        json.dumps(d.describe(raw))
    frame = d.parse_frame(raw)
    if frame.fragmented:
        _attempt(d.Reassembler().add, frame)
        return True
    reply = _attempt(d.parse_reply, frame)
    if reply is not None:
        _values(reply.apdu)
        _attempt(d.raise_for_dar, reply)
    for request, _ in EXCHANGES[-6:]:
        _attempt(d.check_reply, request, frame)
    apdu = _attempt(d.parse_apdu, frame.data)
    if apdu is not None:
        _attempt(d.unwrap, apdu)
    return True


def split(garbage: bytes, cuts: Sequence[int], pick: int) -> None:
    from tests.fuzz.targets import _split  # the shared resync check (imported late: it imports us)

    request, reply = EXCHANGES[pick % len(EXCHANGES)]
    matcher = d.ReplyMatcher.for_request(request)
    _split("dlt698", d.FrameSplitter(), matcher, BOUND, garbage, cuts, reply, reply.encode(pick % 5))
