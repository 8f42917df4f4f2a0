"""Fuzz targets for every codec, shared by the hypothesis tests of tests/fuzz and bench/fuzz.py.

Layer: test support. Must not: do I/O (beyond building seeds), read clocks, or catch anything but
`ProtocolError` (an escaping exception of another kind is exactly the crash the fuzzers look for).

Each `Target` gives, for one codec:
  seeds    valid wire bytes built with the codec's own encoders (+ the golden vectors of its tests);
  fixup    repairs length and checksum fields of a mutated frame so that it gets past the link layer
           and exercises the message decoders behind it;
  decode   runs every decoder of the codec on the bytes; returns True when the link layer (or, for the
           MQTT payloads, at least one message type) accepted them; raises the layer's own error when
           it rejected them; anything else escapes;
  split    feeds garbage in the given chunk sizes to the codec's stream splitters, checks that their
           buffer stays below a bound derived from the largest frame after every feed, then feeds one
           valid frame and checks that it is found (resync); raises AssertionError otherwise.

Bounds: a splitter keeps bytes only while the candidate at the head of its buffer waits for the rest
of a frame whose length the header announced, so what it holds is shorter than the largest frame a
header can announce: DL/T 645 12 + 255 (L is one byte), hall 7 + 64 (L <= 64), Modbus RTU
1 + 2 + 255 + 2 (byte count is one byte), MBAP 6 + 254.

Resync: a valid frame fed after arbitrary garbage is found. A look-alike header in the garbage whose
announced length ends exactly where the valid frame ends, with a matching end byte and checksum, can
swallow that one frame (any delimiter-less framing can); the frame is then fed once more and must be
found the second time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ingest.service import Batch, Ingest, IngestStats
from ingest.subscriber import Delivery
from ingest.topology import Topology
from protocols import dlt645 as d645
from protocols import hall, topics
from protocols import messages as m
from protocols import modbus as mb
from protocols.errors import ContractError, FrameError, ProtocolError
from protocols.modbus.crc import crc_bytes
from tests.dlt645.vectors import VECTORS as DLT645_VECTORS
from tests.dlt698 import fuzz_target as dlt698
from tests.hall.vectors import VECTORS as HALL_VECTORS

DLT645_BOUND = d645.MAX_FRAME  # 12 + 255
HALL_BOUND = hall.MAX_FRAME  # 7 + 64
RTU_BOUND = 1 + 2 + 255 + 2  # unit, function, byte count, 255 data bytes, CRC
MBAP_BOUND = 6 + 254
NOW_MS = 1_763_800_000_000  # 2025-11-22: a fixed receiver clock keeps the fuzzers deterministic


@dataclass(frozen=True)
class Target:
    name: str
    seeds: Sequence[bytes]
    fixup: Callable[[bytes, random.Random], bytes]
    decode: Callable[[bytes], bool]
    split: Callable[[bytes, Sequence[int], int], None] | None


def chunks(data: bytes, cuts: Sequence[int]) -> Iterator[bytes]:
    """`data` cut into pieces of the sizes in `cuts` (cycled; 0 counts as 1); one piece if no cuts."""
    i, k = 0, 0
    while i < len(data):
        n = max(cuts[k % len(cuts)], 1) if cuts else len(data)
        yield data[i : i + n]
        i, k = i + n, k + 1


def _attempt(fn: Callable[..., Any], *args: Any) -> Any:
    with contextlib.suppress(ProtocolError):
        return fn(*args)
    return None


def drain(feed: Callable[[bytes], Any], data: bytes) -> list[Any]:
    """Feed a reply matcher until it has nothing more to say: every frame it returns, every protocol
    error it raises (the frame concerned is consumed; the caller feeds on) are collected."""
    results: list[Any] = []
    while True:
        try:
            got = feed(data)
        except ProtocolError as exc:
            results.append(exc)
        else:
            if got is None:
                return results
            results.append(got)
        data = b""


def _check_bound(buffered: bytes, bound: int, what: str) -> None:
    assert len(buffered) < bound, f"{what}: {len(buffered)} bytes buffered, bound {bound}"


# ---- DL/T 645 -------------------------------------------------------------------------------------


def _dlt645_seed_frames() -> list[d645.Frame]:
    address = "000102030425"
    frames = [d645.parse_frame(v.raw) for v in DLT645_VECTORS]
    for items in d645.CATALOGUE.values():
        for item in items.values():
            size = item.size if item.size is not None else 4 * 4
            frames.append(d645.read_reply(address, item.di, bytes(size), item.version))
    frames += [
        d645.read_request(address, 0x00010000),
        d645.read_follow_request(address, 0x00010000, 1),
        d645.read_reply(address, 0x00010000, b"\x00" * 4, seq=2, more=True),
        d645.read_address_request(),
        d645.address_reply(address),
        d645.time_sync_request(dt.datetime(2024, 5, 6, 7, 8, 9)),
        d645.change_baud_request(address, 9600),
        d645.ack_reply(address, 0x1C),
        d645.abnormal_reply(address, 0x11, 0x02),
        d645.abnormal_reply(address, 0x03, 0x0104),
        d645.freeze_request(address),
    ]
    return frames


DLT645_FRAMES = _dlt645_seed_frames()
DLT645_REPLIES = [f for f in DLT645_FRAMES if f.is_reply and not d645.is_wildcard(f.address)]


def dlt645_fixup(raw: bytes, rng: random.Random) -> bytes:
    """Restore `68 .. 68`, make L match the bytes present, the end byte and the CS."""
    n_pre, f = d645.strip_preamble(raw)
    if len(f) < 12:
        return raw
    body = bytearray(f)
    body[0] = body[7] = 0x68
    length = min(len(body) - 12, 255)
    del body[12 + length :]
    body[9] = length
    body[-1] = 0x16
    body[-2] = d645.checksum(body[: 10 + length])
    return raw[:n_pre] + bytes(body)


def dlt645_decode(raw: bytes) -> bool:
    with contextlib.suppress(ProtocolError):
        json.dumps(d645.describe(raw))
    frame = d645.parse_frame(raw)
    for version in (None, "2007", "1997"):
        reply = _attempt(d645.parse_read_reply, frame, version)
        if reply is not None:
            values = _attempt(reply.values)
            if values is not None:
                d645.canonical_values(values)
    _attempt(d645.check_reply, frame)
    _attempt(d645.parse_address_reply, frame)
    _attempt(d645.parse_change_baud_reply, frame)
    _attempt(d645.parse_ack_reply, frame, frame.function)
    _attempt(d645.parse_request, frame)
    d645.function_name(frame.function, d645.version_of(frame))
    return True


def _split(
    codec: str,
    splitter: Any,
    matcher: Any,
    bound: int,
    garbage: bytes,
    cuts: Sequence[int],
    reply: Any,
    raw: bytes,
) -> None:
    """Feed garbage in pieces to a codec's stream splitter and reply matcher (their buffers stay
    bounded), then a good reply: both must find it (resync), at the latest on its second copy."""
    for piece in chunks(garbage, cuts):
        splitter.feed(piece)
        _check_bound(splitter.buffered, bound, f"{codec} FrameSplitter")
        drain(matcher.feed, piece)
        _check_bound(matcher.buffered, bound, f"{codec} ReplyMatcher")
    assert reply in splitter.feed(raw) or reply in splitter.feed(raw), f"{codec} FrameSplitter lost sync"
    assert reply in drain(matcher.feed, raw) or reply in drain(matcher.feed, raw), (
        f"{codec} ReplyMatcher lost sync"
    )
    with contextlib.suppress(ProtocolError):
        matcher.finish()


def dlt645_split(garbage: bytes, cuts: Sequence[int], pick: int) -> None:
    reply = DLT645_REPLIES[pick % len(DLT645_REPLIES)]
    matcher = d645.ReplyMatcher(reply.address, reply.function)
    _split(
        "dlt645", d645.FrameSplitter(), matcher, DLT645_BOUND, garbage, cuts, reply, reply.encode(pick % 5)
    )


# ---- hall -----------------------------------------------------------------------------------------


def _hall_seed_frames() -> list[hall.Frame]:
    frames = [hall.parse_frame(v.raw) for v in HALL_VECTORS]
    for code, fields in hall.EVENT_FIELDS.items():
        values: dict[str, Any] = {name: (hall.Level.SATISFIED if name == "level" else 7) for name in fields}
        frames.append(hall.poll_reply(5, hall.Event(9, code, **values)))
    frames += [
        hall.poll_reply(5, None),
        hall.identify_request(5),
        hall.identify_reply(5, hall.Identity(hall.DeviceKind(1), "1.2", 0)),
        hall.beep_request(5),
        hall.cancel_eval_request(5),
        hall.start_eval_request(5, 291, 3, 1024),
        hall.clock_broadcast(dt.datetime(2024, 5, 6, 7, 8, 9)),
        hall.error_reply(5, hall.Fn.DISPLAY, 0x03),
        hall.ack_reply(5, hall.Fn.BEEP),
    ]
    return frames


HALL_FRAMES = _hall_seed_frames()
HALL_REPLIES = [f for f in HALL_FRAMES if f.is_reply and f.address != hall.BROADCAST]


def hall_fixup(raw: bytes, rng: random.Random) -> bytes:
    """Restore `FF 68 L L 68`, make L match the bytes present (clamped to 2..64), the end byte, CS."""
    if len(raw) < hall.frame.MIN_FRAME:
        return raw
    f = bytearray(raw[: 7 + 64])
    length = max(min(len(f) - 7, 64), 2)
    f[0:5] = bytes((0xFF, 0x68, length, length, 0x68))
    if rng.random() < 0.9:
        f[5] = min(f[5], 0xFE)
    f[-1] = 0x16
    f[-2] = hall.checksum(f[5:-2])
    return bytes(f)


def hall_decode(raw: bytes) -> bool:
    with contextlib.suppress(ProtocolError):
        json.dumps(hall.describe(raw))
    frame = hall.parse_frame(raw)
    _attempt(hall.check_reply, frame)
    _attempt(hall.parse_poll_reply, frame)
    _attempt(hall.parse_identify_reply, frame)
    _attempt(hall.parse_ack_reply, frame, frame.function)
    _attempt(hall.parse_request, frame)
    hall.function_name(frame.function)
    return True


def hall_split(garbage: bytes, cuts: Sequence[int], pick: int) -> None:
    reply = HALL_REPLIES[pick % len(HALL_REPLIES)]
    matcher = hall.ReplyMatcher(reply.address, reply.function)
    _split("hall", hall.FrameSplitter(), matcher, HALL_BOUND, garbage, cuts, reply, reply.encode())


# ---- Modbus ---------------------------------------------------------------------------------------

MODBUS_MAPS = [mb.load_map(name) for name in mb.builtin_maps()]
MODBUS_BLOCKS = [block for regmap in MODBUS_MAPS for block in mb.plan_map(regmap)]


def _modbus_exchanges() -> list[tuple[int, mb.Request, mb.Reply]]:
    """(unit, request, its normal reply) for every block of the built-in maps, plus writes."""
    out: list[tuple[int, mb.Request, mb.Reply]] = []
    for block in MODBUS_BLOCKS:
        req = block.request()
        if block.table.is_bits:
            padded = -(-block.count // 8) * 8  # replies carry whole bytes of bits
            reply: mb.Reply = mb.BitsReply(req.function, tuple(i % 3 == 0 for i in range(padded)))
        else:
            reply = mb.RegistersReply(req.function, tuple(range(0x4000, 0x4000 + block.count)))
        out.append((1, req, reply))
    out += [
        (2, mb.WriteCoil(0, True), mb.WriteReply(5, 0, 0xFF00)),
        (3, mb.WriteRegister(7, 0x1234), mb.WriteReply(6, 7, 0x1234)),
        (4, mb.WriteCoils(0, (True, False, True)), mb.WriteReply(15, 0, 3)),
        (5, mb.WriteRegisters(16, (1, 2, 3)), mb.WriteReply(16, 16, 3)),
        (6, mb.ReadRequest(3, 0, 2), mb.ExceptionReply(3, 2)),
    ]
    return out


MODBUS_EXCHANGES = _modbus_exchanges()
MODBUS_SEEDS = (
    [mb.build_rtu_request(unit, req) for unit, req, _ in MODBUS_EXCHANGES]
    + [mb.build_rtu_reply(unit, reply) for unit, _, reply in MODBUS_EXCHANGES]
    + [mb.build_mbap(n, unit, mb.build_request(req)) for n, (unit, req, _) in enumerate(MODBUS_EXCHANGES)]
    + [mb.build_mbap(n, unit, mb.build_reply(reply)) for n, (unit, _, reply) in enumerate(MODBUS_EXCHANGES)]
)


def modbus_fixup(raw: bytes, rng: random.Random) -> bytes:
    """MBAP: protocol id 0 and the length field; RTU: the byte count of a read reply, then the CRC."""
    if len(raw) < 4:
        return raw
    if len(raw) >= 8 and rng.random() < 0.3:
        length = min(len(raw) - 6, 254)
        return raw[:2] + b"\x00\x00" + length.to_bytes(2, "big") + raw[6 : 6 + length]
    f = bytearray(raw[: mb.rtu.MAX_ADU])
    if f[1] in (1, 2, 3, 4) and rng.random() < 0.5:
        f[2] = (len(f) - 5) & 0xFF
    return bytes(f[:-2]) + crc_bytes(bytes(f[:-2]))


def _decode_maps(reply: mb.Reply) -> None:
    """Every block of every built-in map whose kind fits, decoded from the reply's registers/bits."""
    bits = isinstance(reply, mb.BitsReply)
    if isinstance(reply, mb.BitsReply):
        data: Sequence[int] | Sequence[bool] = reply.bits
    elif isinstance(reply, mb.RegistersReply):
        data = reply.registers
    else:
        return
    if not data:
        return
    for block in MODBUS_BLOCKS:
        if block.table.is_bits != bits:
            continue
        words = [data[i % len(data)] for i in range(block.count)]
        errors: dict[str, ProtocolError] = {}
        values = mb.decode_block(block, words, errors)
        json.dumps({k: str(v) for k, v in values.items()})
        _attempt(mb.decode_block, block, words)


def modbus_decode(raw: bytes) -> bool:
    with contextlib.suppress(ProtocolError):
        json.dumps(mb.describe(raw))
    mb.find_request_frame(raw)
    decoded = False
    request = _attempt(mb.parse_rtu_request, raw)
    reply = _attempt(mb.parse_rtu_reply, raw)
    frame = _attempt(mb.parse_mbap, raw)
    if frame is not None:
        request = request or _attempt(mb.parse_request, frame.pdu)
        reply = reply or _attempt(mb.parse_reply, frame.pdu)
    for got in (request, reply):
        decoded = decoded or got is not None
    pdu = reply.reply if isinstance(reply, mb.RtuReply) else reply
    if isinstance(pdu, mb.RegistersReply | mb.BitsReply):
        _decode_maps(pdu)
    if isinstance(request, mb.RtuRequest):
        for unit, req, _ in MODBUS_EXCHANGES:
            if unit == request.unit and pdu is not None:
                _attempt(mb.check_reply, req, pdu)
    if not decoded:
        mb.split_adu(raw)  # raises the RTU link layer's reason
        raise FrameError(f"neither an RTU nor an MBAP frame of a known function: {raw[:16].hex(' ')}")
    return True


def modbus_split(garbage: bytes, cuts: Sequence[int], pick: int) -> None:
    unit, req, reply = MODBUS_EXCHANGES[pick % len(MODBUS_EXCHANGES)]
    raw = mb.build_rtu_reply(unit, reply)
    matcher = mb.RtuReplyMatcher.for_request(unit, req)
    tcp = mb.MbapSplitter()
    for piece in chunks(garbage, cuts):
        drain(matcher.feed, piece)
        _check_bound(matcher.buffered, RTU_BOUND, "modbus RtuReplyMatcher")
        with contextlib.suppress(ProtocolError):
            tcp.feed(piece)
        _check_bound(bytes(tcp._buf), MBAP_BOUND, "modbus MbapSplitter")
    expected = mb.RtuReply(unit, reply)
    assert expected in drain(matcher.feed, raw) or expected in drain(matcher.feed, raw), (
        "modbus RtuReplyMatcher lost sync"
    )
    request = mb.build_rtu_request(unit, req)
    assert mb.find_request_frame(garbage + request) is not None, "find_request_frame missed a request"
    with contextlib.suppress(ProtocolError):
        matcher.finish()


# ---- MQTT payloads (protocols.messages) and the ingest's payload path -----------------------------

MESSAGE_TYPES: tuple[type[Any], ...] = (
    m.Reading,
    m.Event,
    m.Health,
    m.Status,
    m.Command,
    m.CommandResult,
    m.Alert,
    m.DeadLetter,
)
_HEAD: dict[str, Any] = {"schema": 1, "gw": "gw1", "dev": "m1", "seq": 5, "ts": NOW_MS}
PAYLOAD_SEEDS: list[bytes] = [
    m.encode(
        m.Reading(
            **_HEAD,
            values={"voltage_a_v": 230.5, "energy_import_kwh": 12.5, "relay": "closed"},
            quality={"current_a_a": "error"},
            protocol="dlt645",
            more=[m.Sample(seq=4, ts=NOW_MS - 1000, values={"voltage_a_v": 229.0}, source="backfilled")],
        )
    ),
    m.encode(m.Event(**_HEAD, event=m.EventKind.RELAY_CHANGE, data={"relay": "open"})),
    m.encode(
        m.Event(**_HEAD, event=m.EventKind.TICKET_ISSUED, data={"hall": "h1", "ticket": 3, "business": 2})
    ),
    m.encode(
        m.Health(**_HEAD, state="online", last_success_ts=NOW_MS, latency_ms=12.5, errors={"timeout": 1})
    ),
    m.encode(
        m.Status(
            schema=1,
            gw="gw1",
            seq=1,
            ts=NOW_MS,
            state="online",
            buses=[m.BusStatus(name="bus1", port="/dev/ttyUSB0", state="open", devices=2)],
        )
    ),
    m.encode(
        m.Command(
            id="c1",
            gw="gw1",
            dev="m1",
            action="relay",
            params={"state": "open"},
            issued_at=NOW_MS,
            expires_at=NOW_MS + 60_000,
            nonce="n1",
            sig="00",
        )
    ),
    m.encode(m.CommandResult(**_HEAD, id="c1", status="done", state={"relay": "open"})),
    m.encode(
        m.Alert(
            schema=1,
            ts=NOW_MS,
            rule="r",
            subject="gw1/m1",
            severity="major",
            state="firing",
            change="firing",
            start_ts=NOW_MS,
            message="x",
            value=1.5,
        )
    ),
    m.encode(m.DeadLetter(schema=1, ts=NOW_MS, topic="t", field="$", reason="r", payload="{}")),
]
_INGEST_KINDS = (topics.TopicKind.READING, topics.TopicKind.EVENT, topics.TopicKind.HEALTH)


def _ingest() -> Ingest:
    """The ingest service reduced to its payload path (`_add`): no broker, no database, no config."""
    ingest = Ingest.__new__(Ingest)
    ingest.stats = IngestStats()
    ingest.topology = Topology.empty()
    return ingest


INGEST = _ingest()


def _topics_for(raw: bytes) -> list[str]:
    """The topics a broker could have carried `raw` on: from its own gw/dev when it names them."""
    gw, dev = "gw1", "m1"
    with contextlib.suppress(ValueError, RecursionError):
        obj = json.loads(raw)
        if isinstance(obj, dict):
            gw = obj["gw"] if isinstance(obj.get("gw"), str) and obj["gw"] else gw
            dev = obj["dev"] if isinstance(obj.get("dev"), str) and obj["dev"] else dev
    names = [f"{topics.PREFIX}/{gw}/status"] + [
        f"{topics.PREFIX}/{gw}/{dev}/{k.value}" for k in _INGEST_KINDS
    ]
    return names


def ingest_add(topic: str, payload: bytes) -> bool:
    """One delivery through the ingest's decode + line-protocol path; True if it made lines. The
    ingest dead-letters ContractError and ValueError (its `_add` catches both); nothing else may
    escape, or the consumer task dies."""
    batch = Batch()
    INGEST._add(batch, Delivery(0, 1, 1, topic, payload, 0.0))
    return not batch.dead and bool(batch.lines)


def payload_decode(raw: bytes) -> bool:
    decoded = False
    last: ContractError | None = None
    for type_ in MESSAGE_TYPES:
        try:
            message = m.decode(type_, raw, now_ms=NOW_MS)
        except ContractError as exc:
            last = exc
            continue
        decoded = True
        m.encode(message)
        m.to_builtins(message)
    for topic in _topics_for(raw):
        ingest_add(topic, raw)
    if not decoded:
        assert last is not None
        raise last
    return True


def payload_fixup(raw: bytes, rng: random.Random) -> bytes:
    return raw


TARGETS: dict[str, Target] = {
    "dlt645": Target(
        "dlt645", [f.encode() for f in DLT645_FRAMES], dlt645_fixup, dlt645_decode, dlt645_split
    ),
    "modbus": Target("modbus", MODBUS_SEEDS, modbus_fixup, modbus_decode, modbus_split),
    "hall": Target("hall", [f.encode() for f in HALL_FRAMES], hall_fixup, hall_decode, hall_split),
    "payload": Target("payload", PAYLOAD_SEEDS, payload_fixup, payload_decode, None),
    # the DL/T 698.45 target lives beside its codec's tests (tests/dlt698/fuzz_target.py)
    "dlt698": Target("dlt698", dlt698.SEEDS, dlt698.fixup, dlt698.decode, dlt698.split),
}
