"""Modbus RTU framing: ADU = unit id + PDU + CRC-16/MODBUS (low byte first); request scanning for
a simulated server and a bounded reply matcher for the gateway's shared RS-485 bus.

Layer: pure codec + stream splitter (protocols). Must not: do I/O, own timeouts or read clocks; the
bus decides when the line went quiet and calls `RtuReplyMatcher.finish()`.

RTU has no delimiters: a frame ends where the line goes quiet for 3.5 characters (Modbus over
Serial Line v1.02, section 2.5.1.1). Over USB adapters and serial servers that timing is lost, so,
like every practical master, the length of a reply is computed from its function code and byte
count, and the CRC decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..errors import ChecksumError, FrameError
from .crc import crc16, crc_bytes
from .errors import TruncatedFrame, WrongUnit
from .pdu import (
    ExceptionReply,
    Reply,
    Request,
    build_reply,
    build_request,
    expected_reply_pdu_length,
    parse_reply,
    parse_request,
    reply_length,
    request_length,
)

MAX_ADU: Final = 256  # section 2.5.1: 1 address + 253 PDU + 2 CRC
BROADCAST: Final = 0
KNOWN_FUNCTIONS: Final = frozenset((1, 2, 3, 4, 5, 6, 15, 16))


@dataclass(frozen=True, slots=True)
class RtuRequest:
    unit: int
    request: Request


@dataclass(frozen=True, slots=True)
class RtuReply:
    unit: int
    reply: Reply


def build_adu(unit: int, pdu: bytes) -> bytes:
    if not 0 <= unit <= 255:
        raise FrameError(f"unit id {unit} outside 0..255")
    frame = bytes((unit,)) + pdu
    return frame + crc_bytes(frame)


def build_rtu_request(unit: int, req: Request) -> bytes:
    return build_adu(unit, build_request(req))


def build_rtu_reply(unit: int, reply: Reply) -> bytes:
    return build_adu(unit, build_reply(reply))


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")


def split_adu(frame: bytes) -> tuple[int, bytes]:
    """Check length and CRC of one whole ADU; return (unit, pdu)."""
    if len(frame) < 4:
        raise FrameError(f"RTU frame of {len(frame)} bytes is shorter than the minimum 4")
    if len(frame) > MAX_ADU:
        raise FrameError(f"RTU frame of {len(frame)} bytes is longer than the maximum {MAX_ADU}")
    if not crc_ok(frame):
        got = frame[-2:].hex(" ")
        raise ChecksumError(f"CRC {got} != computed {crc_bytes(frame[:-2]).hex(' ')}")
    return frame[0], frame[1:-2]


def parse_rtu_request(frame: bytes) -> RtuRequest:
    unit, pdu = split_adu(frame)
    return RtuRequest(unit, parse_request(pdu))


def parse_rtu_reply(frame: bytes) -> RtuReply:
    unit, pdu = split_adu(frame)
    return RtuReply(unit, parse_reply(pdu))


def find_request_frame(burst: bytes) -> tuple[int, bytes] | None:
    """Locate the first CRC-valid request ADU in a burst (which may carry leading noise or an echo
    fragment). Returns (offset, frame). A frame whose function code is unknown is taken to run to
    the end of the burst, so a server can still answer it with ILLEGAL_FUNCTION."""
    for start in range(max(len(burst) - 3, 0)):
        end = _request_end(burst, start)
        if end is not None and crc_ok(burst[start:end]):
            return start, burst[start:end]
    return None


def _request_end(burst: bytes, start: int) -> int | None:
    head = burst[start + 1 :]
    if head[0] not in KNOWN_FUNCTIONS:
        return len(burst) if len(burst) - start <= MAX_ADU else None
    length = request_length(head)
    if length is None or start + 1 + length + 2 > len(burst):
        return None
    return start + 1 + length + 2


class RtuReplyMatcher:
    """Collects the bytes that arrive after one request and recognises its reply.

    `feed(data)` returns the `RtuReply` once a complete, CRC-valid reply of the expected unit and
    function is buffered (an exception reply is returned as `ExceptionReply`: call
    `pdu.check_reply` or `.error()` to raise it), or None while more bytes are needed. It raises
    `ChecksumError` when the reply is complete but its CRC is wrong, `WrongUnit` for a complete,
    valid reply from another unit (that frame is consumed; feeding may continue), and `FrameError`
    when `max_buffer` bytes arrived without any frame. Leading noise (a byte glitched by the
    transceiver turn-around is common) is skipped and counted in `skipped`.

    `echo`: the request's own bytes, when the RS-485 adapter reads back what it sends (2-wire
    adapters without echo suppression). They are dropped once if they arrive first; without this a
    write's echo would be taken for its reply (function 5/6 replies are identical to the request).
    """

    def __init__(
        self,
        unit: int,
        function: int,
        expected_len_hint: int | None = None,
        max_buffer: int = 2 * MAX_ADU,
        *,
        echo: bytes = b"",
    ):
        if function & 0x7F not in KNOWN_FUNCTIONS:
            raise FrameError(f"cannot frame replies to function {function:#04x}")
        self.unit = unit
        self.function = function & 0x7F
        self.expected_len = expected_len_hint  # whole ADU length of the normal reply, if known
        self.max_buffer = max_buffer
        self.skipped = 0
        self.echo_seen = False
        self._echo = echo
        self._buf = bytearray()

    @classmethod
    def for_request(cls, unit: int, req: Request, *, echo: bool = False) -> RtuReplyMatcher:
        """A matcher for the reply to `req`; `echo=True` if the adapter echoes the request."""
        return cls(
            unit,
            req.function,
            1 + expected_reply_pdu_length(req) + 2,
            echo=build_rtu_request(unit, req) if echo else b"",
        )

    @property
    def buffered(self) -> bytes:
        return bytes(self._buf)

    def feed(self, data: bytes) -> RtuReply | None:
        self._buf += data
        if self._echo and not self._drop_echo():
            return None
        while True:
            start = self._next_start(0)
            if start is None:
                # nothing here can begin a frame; the last byte may be the unit id of one to come
                self._skip(max(len(self._buf) - 1, 0))
                return None
            self._skip(start)
            length = self._frame_length(0)
            if length is None or length > len(self._buf):
                later = self._complete_own_frame_after(0)
                if later is None:
                    self._overflow_check()
                    return None
                self._skip(later)
                continue
            frame = bytes(self._buf[:length])
            if crc_ok(frame):
                del self._buf[:length]
                return self._accept(frame)
            later = self._complete_own_frame_after(0)
            if self._is_own(0) and later is None:
                del self._buf[:length]
                raise ChecksumError(f"reply with bad CRC: {frame.hex(' ')}")
            # a look-alike with a bad CRC is noise: hunt on from the valid reply behind it, or the next byte
            self._skip(later or 1)

    def _drop_echo(self) -> bool:
        """False while the buffer is still a strict prefix of the expected echo."""
        head = bytes(self._buf[: len(self._echo)])
        if not self._echo.startswith(head):
            self._echo = b""  # no echo this time: the adapter suppressed it, or the reply came first
            return True
        if len(head) < len(self._echo):
            return False
        del self._buf[: len(self._echo)]
        self._echo, self.echo_seen = b"", True
        return True

    def finish(self) -> None:
        """The caller's timeout expired: raise TruncatedFrame if part of a reply is buffered."""
        start = self._next_start(0)
        part = bytes(self._buf[start:]) if start is not None else b""
        self._buf.clear()
        if part:
            raise TruncatedFrame(f"reply cut short after {len(part)} bytes: {part.hex(' ')}")

    def _accept(self, frame: bytes) -> RtuReply:
        if frame[0] != self.unit:
            raise WrongUnit(self.unit, frame[0], frame)
        if frame[1] & 0x7F != self.function:
            raise FrameError(
                f"reply to function {frame[1] & 0x7F}, expected {self.function}: {frame.hex(' ')}"
            )
        reply = parse_reply(frame[1:-2])
        if not isinstance(reply, ExceptionReply) and self.expected_len not in (None, len(frame)):
            raise FrameError(f"reply of {len(frame)} bytes, expected {self.expected_len}: {frame.hex(' ')}")
        return RtuReply(frame[0], reply)

    def _is_own(self, i: int) -> bool:
        return self._buf[i] == self.unit and self._buf[i + 1] & 0x7F == self.function

    def _next_start(self, offset: int) -> int | None:
        """First position that can begin a reply: a unit id (ours, or a real one, 1..247) followed by
        a function code we can frame (or its exception flavour)."""
        buf = self._buf
        for i in range(offset, len(buf) - 1):
            if (buf[i] == self.unit or 1 <= buf[i] <= 247) and buf[i + 1] & 0x7F in KNOWN_FUNCTIONS:
                return i
        return None

    def _complete_own_frame_after(self, offset: int) -> int | None:
        """While a look-alike at `offset` waits for bytes that may never come, a complete, valid reply
        of ours further on wins (noise must not turn a good reply into a timeout)."""
        for i in range(offset + 1, len(self._buf) - 1):
            if not self._is_own(i):
                continue
            length = self._frame_length(i)
            if (
                length is not None
                and i + length <= len(self._buf)
                and crc_ok(bytes(self._buf[i : i + length]))
            ):
                return i
        return None

    def _frame_length(self, i: int) -> int | None:
        pdu_len = reply_length(bytes(self._buf[i + 1 : i + 3]))
        return None if pdu_len is None else 1 + pdu_len + 2

    def _skip(self, n: int) -> None:
        self.skipped += n
        del self._buf[:n]

    def _overflow_check(self) -> None:
        if len(self._buf) > self.max_buffer:
            dropped = len(self._buf)
            self._buf.clear()
            raise FrameError(f"no valid reply in {dropped} bytes")
