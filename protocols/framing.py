"""Resynchronising stream splitting shared by the DL/T 645 and hall codecs: the machinery behind each
protocol's `ReplyMatcher` (one reply to one request on a shared RS-485 bus) and `FrameSplitter` (every
frame in a byte stream, for the simulators).

Layer: stream splitter (protocols). Must not: do I/O, own timeouts or read clocks; the bus decides
when the line went quiet and calls `ReplyMatcherBase.finish()`.

Both protocols delimit a frame with bytes that may also sit inside its address, data or checksum, so
no single byte is trusted as a delimiter: the buffer is cut to the next start byte, the candidate
there is checked whole (header, length, end byte, checksum), and on failure the search resumes one
byte on. A complete, valid frame further on wins over a look-alike at the head still waiting for bytes
(noise must not turn a good reply into a timeout). Every byte dropped is counted.

A protocol supplies its framing in a subclass of `FrameScanner` (start byte, candidate length, frame
check, parser, how dropped bytes are counted) and combines it with `ReplyMatcherBase` (address and
function check, how messages name a device) and `FrameSplitterBase`: see `dlt645.splitter` and
`hall.splitter`, which also document what their public classes do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Final, Generic, Protocol, TypeVar

from .errors import ChecksumError, FrameError

NOT_A_START: Final = -1  # `_candidate`: the byte there cannot start a frame
NEED_MORE: Final = 0  # `_candidate`: a frame may start there, but it is not all buffered yet


class Directed(Protocol):
    """What the shared code asks of a parsed frame: its direction (an echoed request is dropped)."""

    @property
    def is_reply(self) -> bool: ...


F = TypeVar("F", bound=Directed)


class FrameScanner(ABC, Generic[F]):
    """The buffer and the resynchronising search of both splitters; counts every byte it drops."""

    _START: ClassVar[int]  # the first byte of every frame: where a search for the next frame stops

    def __init__(self, max_buffer: int) -> None:
        self.max_buffer = max_buffer
        self.skipped = 0  # bytes dropped as line noise
        self._buf = bytearray()

    @property
    def buffered(self) -> bytes:
        return bytes(self._buf)

    @abstractmethod
    def _candidate(self, i: int) -> int:
        """Length of the frame starting at `i` once buffered, `NEED_MORE`, or `NOT_A_START`."""

    @abstractmethod
    def _frame_ok(self, i: int, length: int) -> tuple[bool, bool]:
        """(structure ok, checksum ok) of the complete candidate of `length` bytes at `i`."""

    @abstractmethod
    def _parse(self, raw: bytes) -> F:
        """The frame of `raw`, a candidate that passed `_frame_ok`."""

    def _to_next_start(self) -> bool:
        """Drop everything before the next start byte; False if there is none (all dropped)."""
        start = self._buf.find(self._START)
        self._skip(len(self._buf) if start < 0 else start)
        return start >= 0

    def _complete_frame_after(self, offset: int) -> int | None:
        """While a look-alike at `offset` waits for bytes that may never come, a complete, valid frame
        further on wins (noise must not turn a good reply into a timeout)."""
        i = self._buf.find(self._START, offset + 1)
        while i >= 0:
            length = self._candidate(i)
            if length > 0 and self._frame_ok(i, length) == (True, True):
                return i
            i = self._buf.find(self._START, i + 1)
        return None

    def _take(self, length: int) -> bytes:
        raw = bytes(self._buf[:length])
        del self._buf[:length]
        return raw

    def _skip(self, n: int) -> None:
        self.skipped += n
        del self._buf[:n]


class ReplyMatcherBase(FrameScanner[F]):
    """Collects the bytes that arrive after one request and recognises its reply (the shared loop of
    the protocols' `ReplyMatcher`, which documents it). Frames that are not replies (the adapter's
    echo of our own request) are dropped and counted in `echoes`."""

    _TRUNCATED: ClassVar[type[FrameError]]  # what `finish()` raises: the protocol's TruncatedFrame
    _COUNT_CUT_SHORT: ClassVar[bool] = True  # does `finish()` count the bytes it drops in `skipped`?

    def __init__(self, max_buffer: int) -> None:
        super().__init__(max_buffer)
        self.echoes = 0

    @abstractmethod
    def _accept(self, frame: F) -> F:
        """`frame`, a valid reply, if it answers the request; else raise the protocol's WrongAddress or
        UnexpectedReply (address matching and the message are the protocol's own)."""

    @abstractmethod
    def _who(self) -> str:
        """The addressed device as messages name it."""

    @abstractmethod
    def _who_sent(self, raw: bytes) -> str:
        """The device a complete frame `raw` names, as messages name it."""

    def feed(self, data: bytes) -> F | None:
        self._buf += data
        while self._to_next_start():
            length = self._candidate(0)
            if length == NOT_A_START:
                self._skip(1)
                continue
            if length == NEED_MORE:
                later = self._complete_frame_after(0)
                if later is None:
                    self._overflow_check()
                    return None
                self._skip(later)
                continue
            structure, cs_ok = self._frame_ok(0, length)
            if not structure:
                self._skip(1)  # a look-alike: hunt on from the next start byte
                continue
            if not cs_ok:
                later = self._complete_frame_after(0)
                if later is not None:
                    self._skip(later)
                    continue
                raw = self._take(length)
                raise ChecksumError(f"{self._who_sent(raw)}: reply with bad CS: {raw.hex(' ')}")
            frame = self._parse(self._take(length))
            if not frame.is_reply:
                self.echoes += 1
                continue
            return self._accept(frame)
        return None

    def finish(self) -> None:
        """The caller's timeout expired: raise TruncatedFrame if part of a frame is buffered."""
        start = self._buf.find(self._START)
        part = bytes(self._buf[start:]) if start >= 0 else b""
        if self._COUNT_CUT_SHORT:
            self.skipped += len(self._buf)
        self._buf.clear()
        if part:
            raise self._TRUNCATED(f"{self._who()}: reply cut short after {len(part)} bytes: {part.hex(' ')}")

    def _overflow_check(self) -> None:
        if len(self._buf) > self.max_buffer:
            dropped = len(self._buf)
            self.skipped += dropped
            self._buf.clear()
            raise FrameError(f"{self._who()}: no valid reply in {dropped} bytes")


class FrameSplitterBase(FrameScanner[F]):
    """`feed(bytes) -> frames`: every valid frame in the stream, in order, whatever its direction or
    address. Never raises: frames with a bad checksum are dropped and counted in `bad_checksum`. A
    look-alike start that would need more than `max_buffer` bytes is given up."""

    def __init__(self, max_buffer: int) -> None:
        super().__init__(max_buffer)
        self.bad_checksum = 0

    def feed(self, data: bytes) -> list[F]:
        self._buf += data
        frames: list[F] = []
        while self._to_next_start():
            length = self._candidate(0)
            if length == NEED_MORE:
                later = self._complete_frame_after(0)
                if later is not None:
                    self._skip(later)
                elif len(self._buf) > self.max_buffer:
                    self._skip(1)
                else:
                    break
                continue
            structure, cs_ok = (False, False) if length == NOT_A_START else self._frame_ok(0, length)
            if not structure:
                self._skip(1)
            elif not cs_ok:
                later = self._complete_frame_after(0)
                self.bad_checksum += 1
                self._skip(length if later is None else later)
            else:
                frames.append(self._parse(self._take(length)))
        return frames

    def reset(self) -> None:
        """Forget a partial frame (the line went quiet in the middle of it); its bytes count as skipped."""
        self.skipped += len(self._buf)
        self._buf.clear()
