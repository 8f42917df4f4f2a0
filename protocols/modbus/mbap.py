"""Modbus TCP framing: the 7-byte MBAP header (transaction id, protocol id 0, length, unit id) + PDU.

Layer: pure codec + stream splitter (protocols). Must not: open sockets or own timeouts.
Reference: MODBUS Messaging on TCP/IP Implementation Guide v1.0b, section 3.1.3. There is no CRC:
TCP already checks integrity, and `length` counts the unit id plus the PDU.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from ..errors import FrameError
from .pdu import Reply, parse_reply

MBAP_HEADER: Final = 7
MAX_LENGTH: Final = 254  # unit id + 253-byte PDU


@dataclass(frozen=True, slots=True)
class MbapFrame:
    transaction_id: int
    unit: int
    pdu: bytes


def build_mbap(transaction_id: int, unit: int, pdu: bytes) -> bytes:
    if not 0 <= transaction_id <= 0xFFFF:
        raise FrameError(f"transaction id {transaction_id} outside 0..65535")
    if not 0 <= unit <= 255:
        raise FrameError(f"unit id {unit} outside 0..255")
    if not 1 <= len(pdu) <= MAX_LENGTH - 1:
        raise FrameError(f"PDU of {len(pdu)} bytes outside 1..{MAX_LENGTH - 1}")
    return struct.pack(">HHHB", transaction_id, 0, len(pdu) + 1, unit) + pdu


def _header(data: bytes) -> tuple[int, int, int]:
    tid, protocol, length, unit = struct.unpack_from(">HHHB", data)
    if protocol != 0:
        raise FrameError(f"MBAP protocol id {protocol}, Modbus is 0")
    if not 2 <= length <= MAX_LENGTH:
        raise FrameError(f"MBAP length {length} outside 2..{MAX_LENGTH}")
    return tid, length, unit


def parse_mbap(data: bytes) -> MbapFrame:
    """One whole frame (header + PDU, nothing more)."""
    if len(data) < MBAP_HEADER + 1:
        raise FrameError(f"MBAP frame of {len(data)} bytes is shorter than the minimum {MBAP_HEADER + 1}")
    tid, length, unit = _header(data)
    if len(data) != 6 + length:
        raise FrameError(f"MBAP length field says {6 + length} bytes, got {len(data)}")
    return MbapFrame(tid, unit, bytes(data[MBAP_HEADER:]))


class MbapSplitter:
    """`feed(bytes) -> frames` over a TCP byte stream. A header that breaks the rules raises
    FrameError and the buffer is dropped: on TCP there is no resynchronising, the connection is bad."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[MbapFrame]:
        self._buf += data
        frames = []
        while len(self._buf) >= MBAP_HEADER:
            try:
                _, length, _ = _header(bytes(self._buf[:MBAP_HEADER]))
            except FrameError:
                self._buf.clear()
                raise
            if len(self._buf) < 6 + length:
                break
            frames.append(parse_mbap(bytes(self._buf[: 6 + length])))
            del self._buf[: 6 + length]
        return frames


class MbapReplyMatcher:
    """The reply to one Modbus TCP request, for the gateway's bus: `feed(bytes)` returns the parsed
    `Reply` with the same transaction id (stale replies to earlier, timed-out requests are skipped and
    counted in `stale`), or None while more bytes are needed; a reply from another unit or to another
    function raises `FrameError`. TCP delivers a frame whole or not at all, so there is no `finish()`."""

    def __init__(self, transaction_id: int, unit: int, function: int) -> None:
        self.transaction_id = transaction_id
        self.unit = unit
        self.function = function
        self.stale = 0
        self._splitter = MbapSplitter()

    def feed(self, data: bytes) -> Reply | None:
        for frame in self._splitter.feed(data):
            if frame.transaction_id != self.transaction_id:
                self.stale += 1
                continue
            if frame.unit != self.unit:
                raise FrameError(f"reply from unit {frame.unit}, expected {self.unit}")
            reply = parse_reply(frame.pdu)
            if reply.function != self.function:
                raise FrameError(f"reply to function {reply.function}, expected {self.function}")
            return reply
        return None
