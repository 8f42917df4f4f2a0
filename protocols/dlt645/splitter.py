"""DL/T 645 stream splitting: the gateway's `ReplyMatcher` (one reply to one request on a shared RS-485
bus) and the simulator's `FrameSplitter` (every frame in a byte stream).

Layer: stream splitter (protocols). Must not: do I/O, own timeouts or read clocks; the bus decides
when the line went quiet and calls `ReplyMatcher.finish()`.

dlt645.md §1.10: find `68`, check that the byte 7 on is `68` too, read L, wait for 12 + L bytes, check
the `16` and CS; on failure resynchronise from the next `68`. A `68`, `16` or `FE` may sit inside the
address or data, so no single byte is trusted as a delimiter and FE after the first `68` is never
dropped. Leading FE (wake-up preamble, 0..4 or more) is skipped and counted apart from line noise.
The search itself is shared with the hall codec (`protocols.framing`); this module says what a DL/T 645
frame looks like, how a reply's address matches and how messages name a meter.
"""

from __future__ import annotations

from typing import Final

from ..framing import NEED_MORE, NOT_A_START, FrameScanner, FrameSplitterBase, ReplyMatcherBase
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
_MIN_FRAME: Final = HEADER + 2  # 68 A0..A5 68 C L CS 16: a frame without data


class _Scanner(FrameScanner[Frame]):
    """DL/T 645 framing for the shared search; FE dropped before a frame is counted in `preamble`,
    apart from the line noise in `skipped`."""

    _START = START

    def __init__(self, max_buffer: int) -> None:
        super().__init__(max_buffer)
        self.preamble = 0  # FE bytes dropped before a frame

    def _candidate(self, i: int) -> int:
        buf = self._buf
        if buf[i] != START or (len(buf) > i + 7 and buf[i + 7] != START):
            return NOT_A_START
        if len(buf) < i + HEADER:
            return NEED_MORE
        length = HEADER + buf[i + 9] + 2
        return length if len(buf) >= i + length else NEED_MORE

    def _frame_ok(self, i: int, length: int) -> tuple[bool, bool]:
        return frame_ok_at(self._buf, i, length)

    def _parse(self, raw: bytes) -> Frame:
        return parse_frame(raw)

    def _skip(self, n: int) -> None:
        fe = self._buf[:n].count(PREAMBLE_BYTE)
        self.preamble += fe
        self.skipped += n - fe
        del self._buf[:n]


class ReplyMatcher(ReplyMatcherBase[Frame], _Scanner):
    """Collects the bytes that arrive after one request and recognises its reply.

    `feed(data)` returns the reply `Frame` once a complete, CS-valid reply of the addressed meter and
    requested function is buffered (abnormal replies too: `messages.check_reply` raises them), or None
    while more bytes are needed. It raises `ChecksumError` for a complete frame whose CS is wrong,
    `WrongAddress` for a valid reply from another meter, `UnexpectedReply` for a valid reply of ours to
    another function (either frame is consumed; feeding may continue), and `FrameError` when
    `max_buffer` bytes arrived without a frame. Frames with D7 = 0 (the adapter's echo of our own
    request, or another master) are dropped and counted in `echoes`; leading FE in `preamble`, other
    noise in `skipped`. `finish()` raises `TruncatedFrame` if part of a frame is still buffered (the
    bytes it drops are not counted in `skipped`).

    `address` may hold `AA` wildcard bytes (the reply carries the real address, §1.4).
    """

    _TRUNCATED = TruncatedFrame
    _COUNT_CUT_SHORT = False

    def __init__(self, address: str, function: int, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        super().__init__(max_buffer)
        self.address = normalize_address(address)
        self.function = function & 0x1F

    @classmethod
    def for_request(cls, request: Frame, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> ReplyMatcher:
        return cls(request.address, request.function, max_buffer=max_buffer)

    def _accept(self, frame: Frame) -> Frame:
        if not address_matches(self.address, frame.address):
            raise WrongAddress(self.address, frame.address, frame.encode())
        if frame.function != self.function:
            raise UnexpectedReply(
                f"meter {frame.address}: reply to function {frame.function:#04x}, "
                f"expected {self.function:#04x}: {frame.encode().hex(' ')}"
            )
        return frame

    def _who(self) -> str:
        return f"meter {self.address}"

    def bytes_needed(self) -> int:
        """How many more bytes the reply needs at least (dlt645.md §1.2: a frame is 12 + L bytes, L at
        offset 9), so the bus can read the rest of a frame in one go instead of per character.
        Conservative: every `68` still buffered may start the reply, and one that has not started yet
        needs at least a frame without data (12 bytes). The second `68` of a possible frame is not
        counted as a start of its own (should that frame be a look-alike and the reply begin at its
        second `68`, the reply is read late, after the bus's hold, but never lost)."""
        buf = self._buf
        need = _MIN_FRAME
        second_starts = set()
        i = buf.find(START)
        while i >= 0:
            have = len(buf) - i
            if i not in second_starts and (have < 8 or buf[i + 7] == START):  # a possible frame start
                second_starts.add(i + 7)
                total = HEADER + buf[i + 9] + 2 if have >= HEADER else _MIN_FRAME
                need = min(need, max(total - have, 1))
            i = buf.find(START, i + 1)
        return need

    def _who_sent(self, raw: bytes) -> str:
        return f"meter {address_from_wire(raw[1:7])}"


class FrameSplitter(FrameSplitterBase[Frame], _Scanner):
    """`feed(bytes) -> frames` for the simulator side: every CS-valid frame in the stream, in order,
    whatever its direction or address. Never raises: frames with a bad CS are dropped and counted in
    `bad_checksum` (a real meter stays silent), noise in `skipped`, FE in `preamble`. The buffer is
    bounded: a look-alike start that would need more than `max_buffer` bytes is given up."""

    def __init__(self, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        super().__init__(max_buffer)


def split_frames(burst: bytes) -> list[Frame]:
    """Every valid frame in one burst (a simulator's request burst: noise, echoes, frames for others)."""
    return FrameSplitter().feed(burst)
