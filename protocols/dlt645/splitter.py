"""DL/T 645 stream splitting: the gateway's `ReplyMatcher` (one reply to one request on a shared RS-485
bus) and the simulator's `FrameSplitter` (every frame in a byte stream).

Layer: stream splitter (protocols). Must not: do I/O, own timeouts or read clocks; the bus decides
when the line went quiet and calls `ReplyMatcher.finish()`.

dlt645.md §1.10: find `68`, check that the byte 7 on is `68` too, read L, wait for 12 + L bytes, check
the `16` and CS; on failure resynchronise from the next `68`. A `68`, `16` or `FE` may sit inside the
address or data, so no single byte is trusted as a delimiter and FE after the first `68` is never
dropped. Leading FE (wake-up preamble, 0..4 or more) is skipped and counted apart from line noise.
"""

from __future__ import annotations

from typing import Final

from ..errors import ChecksumError, FrameError
from .errors import TruncatedFrame, UnexpectedReply, WrongAddress
from .frame import (
    HEADER,
    MAX_FRAME,
    PREAMBLE_BYTE,
    START,
    Frame,
    address_from_wire,
    address_matches,
    frame_ok_at,
    normalize_address,
    parse_frame,
)

DEFAULT_MAX_BUFFER: Final = 2 * MAX_FRAME
_NOT_A_START: Final = -1
_NEED_MORE: Final = 0


class _Scanner:
    """The resynchronising search shared by both splitters; counts every byte it drops."""

    def __init__(self, max_buffer: int) -> None:
        self.max_buffer = max_buffer
        self.skipped = 0  # line-noise bytes dropped (not FE)
        self.preamble = 0  # FE bytes dropped before a frame
        self._buf = bytearray()

    @property
    def buffered(self) -> bytes:
        return bytes(self._buf)

    def _candidate(self, i: int) -> int:
        """Length of the frame starting at `i` once buffered, `_NEED_MORE`, or `_NOT_A_START`."""
        buf = self._buf
        if buf[i] != START or (len(buf) > i + 7 and buf[i + 7] != START):
            return _NOT_A_START
        if len(buf) < i + HEADER:
            return _NEED_MORE
        length = HEADER + buf[i + 9] + 2
        return length if len(buf) >= i + length else _NEED_MORE

    def _to_next_start(self) -> bool:
        """Drop everything before the next `68`; False if there is none (all dropped)."""
        start = self._buf.find(START)
        self._skip(len(self._buf) if start < 0 else start)
        return start >= 0

    def _complete_frame_after(self, offset: int) -> int | None:
        """While a look-alike at `offset` waits for bytes that may never come, a complete, valid frame
        further on wins (noise must not turn a good reply into a timeout)."""
        i = self._buf.find(START, offset + 1)
        while i >= 0:
            length = self._candidate(i)
            if length > 0 and frame_ok_at(self._buf, i, length) == (True, True):
                return i
            i = self._buf.find(START, i + 1)
        return None

    def _take(self, length: int) -> bytes:
        raw = bytes(self._buf[:length])
        del self._buf[:length]
        return raw

    def _skip(self, n: int) -> None:
        fe = self._buf[:n].count(PREAMBLE_BYTE)
        self.preamble += fe
        self.skipped += n - fe
        del self._buf[:n]


class ReplyMatcher(_Scanner):
    """Collects the bytes that arrive after one request and recognises its reply.

    `feed(data)` returns the reply `Frame` once a complete, CS-valid reply of the addressed meter and
    requested function is buffered (abnormal replies too: `messages.check_reply` raises them), or None
    while more bytes are needed. It raises `ChecksumError` for a complete frame whose CS is wrong,
    `WrongAddress` for a valid reply from another meter, `UnexpectedReply` for a valid reply of ours to
    another function (either frame is consumed; feeding may continue), and `FrameError` when
    `max_buffer` bytes arrived without a frame. Frames with D7 = 0 (the adapter's echo of our own
    request, or another master) are dropped and counted in `echoes`; leading FE in `preamble`, other
    noise in `skipped`.

    `address` may hold `AA` wildcard bytes (the reply carries the real address, §1.4).
    """

    def __init__(self, address: str, function: int, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        super().__init__(max_buffer)
        self.address = normalize_address(address)
        self.function = function & 0x1F
        self.echoes = 0

    @classmethod
    def for_request(cls, request: Frame, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> ReplyMatcher:
        return cls(request.address, request.function, max_buffer=max_buffer)

    def feed(self, data: bytes) -> Frame | None:
        self._buf += data
        while self._to_next_start():
            length = self._candidate(0)
            if length == _NOT_A_START:
                self._skip(1)
                continue
            if length == _NEED_MORE:
                later = self._complete_frame_after(0)
                if later is None:
                    self._overflow_check()
                    return None
                self._skip(later)
                continue
            structure, cs_ok = frame_ok_at(self._buf, 0, length)
            if not structure:
                self._skip(1)  # a look-alike: hunt on from the next 68
                continue
            if not cs_ok:
                later = self._complete_frame_after(0)
                if later is not None:
                    self._skip(later)
                    continue
                raw = self._take(length)
                raise ChecksumError(f"meter {address_from_wire(raw[1:7])}: reply with bad CS: {raw.hex(' ')}")
            frame = parse_frame(self._take(length))
            if not frame.is_reply:
                self.echoes += 1
                continue
            return self._accept(frame)
        return None

    def _accept(self, frame: Frame) -> Frame:
        if not address_matches(self.address, frame.address):
            raise WrongAddress(self.address, frame.address, frame.encode())
        if frame.function != self.function:
            raise UnexpectedReply(
                f"meter {frame.address}: reply to function {frame.function:#04x}, "
                f"expected {self.function:#04x}: {frame.encode().hex(' ')}"
            )
        return frame

    def finish(self) -> None:
        """The caller's timeout expired: raise TruncatedFrame if part of a frame is buffered."""
        start = self._buf.find(START)
        part = bytes(self._buf[start:]) if start >= 0 else b""
        self._buf.clear()
        if part:
            raise TruncatedFrame(
                f"meter {self.address}: reply cut short after {len(part)} bytes: {part.hex(' ')}"
            )

    def _overflow_check(self) -> None:
        if len(self._buf) > self.max_buffer:
            dropped = len(self._buf)
            self.skipped += dropped
            self._buf.clear()
            raise FrameError(f"meter {self.address}: no valid reply in {dropped} bytes")


class FrameSplitter(_Scanner):
    """`feed(bytes) -> frames` for the simulator side: every CS-valid frame in the stream, in order,
    whatever its direction or address. Never raises: frames with a bad CS are dropped and counted in
    `bad_checksum` (a real meter stays silent), noise in `skipped`, FE in `preamble`. The buffer is
    bounded: a look-alike start that would need more than `max_buffer` bytes is given up."""

    def __init__(self, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        super().__init__(max_buffer)
        self.bad_checksum = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while self._to_next_start():
            length = self._candidate(0)
            if length == _NEED_MORE:
                later = self._complete_frame_after(0)
                if later is not None:
                    self._skip(later)
                elif len(self._buf) > self.max_buffer:
                    self._skip(1)
                else:
                    break
                continue
            structure, cs_ok = (False, False) if length == _NOT_A_START else frame_ok_at(self._buf, 0, length)
            if not structure:
                self._skip(1)
            elif not cs_ok:
                later = self._complete_frame_after(0)
                self.bad_checksum += 1
                self._skip(length if later is None else later)
            else:
                frames.append(parse_frame(self._take(length)))
        return frames

    def reset(self) -> None:
        """Forget a partial frame (the line went quiet in the middle of it); its bytes count as skipped."""
        self.skipped += len(self._buf)
        self._buf.clear()


def split_frames(burst: bytes) -> list[Frame]:
    """Every valid frame in one burst (a simulator's request burst: noise, echoes, frames for others)."""
    return FrameSplitter().feed(burst)
