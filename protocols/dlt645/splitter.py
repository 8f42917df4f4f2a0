"""DL/T 645 stream splitting: the gateway's `ReplyMatcher` (one reply to one request on a shared RS-485
bus) and the simulator's `FrameSplitter` (every frame in a byte stream).

Layer: stream splitter (protocols). Must not: do I/O, own timeouts or read clocks; the bus decides
when the line went quiet and calls `ReplyMatcher.finish()`.

dlt645.md §1.10: find `68`, check that the byte 7 on is `68` too, read L, wait for 12 + L bytes, check
the `16` and CS; on failure resynchronise from the next `68`. A `68`, `16` or `FE` may sit inside the
address or data, so no single byte is trusted as a delimiter and FE after the first `68` is never
dropped. Leading FE (wake-up preamble, 0..4 or more) is skipped and counted apart from line noise.
The search itself is shared with the hall codec (`protocols.framing`); this module says what a DL/T 645
frame looks like, how a reply's address matches and how messages name a meter. A DL/T 698.45 frame on
the same line (a mixed bus of old and new meters) is recognised whole and skipped, counted in `foreign`.
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


def _crc16_x25(data: bytes | bytearray) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def _dlt698_pending(buf: bytes | bytearray, i: int) -> bool:
    """May a DL/T 698.45 frame be arriving at `buf[i]`? Its L and AF are plausible, its HCS is valid
    once the header is in, and the frame is not all buffered yet (a complete one is `dlt698_frame_at`)."""
    if len(buf) < i + 5:
        return True
    field = int.from_bytes(buf[i + 1 : i + 3], "little")
    length, header = (field & 0x3FFF) + 2, 8 + (buf[i + 4] & 0x0F) + 1
    if field & 0xC000 or buf[i + 3] & 0x10 or length < header + 3 or len(buf) >= i + length:
        return False
    if len(buf) < i + header:
        return True
    return _crc16_x25(buf[i + 1 : i + header - 2]) == int.from_bytes(
        buf[i + header - 2 : i + header], "little"
    )


def dlt698_frame_at(buf: bytes | bytearray, i: int) -> int | None:
    """Length of a complete DL/T 698.45 frame (`68 L L C AF SA CA HCS APDU FCS 16`, HCS and FCS
    CRC-16/X-25, little-endian) at `buf[i]`, else None. Written out here because device-kind codecs are
    independent folders (import-linter) and these lines are all a 645 line needs to know of 698: a 698
    meter's frame on a mixed line is skipped whole, never half-read as a 645 look-alike (an SA byte
    `68` at offset 7 makes one) that ends in a checksum error."""
    if len(buf) < i + 5 or buf[i] != START:
        return None
    field = int.from_bytes(buf[i + 1 : i + 3], "little")
    length, header = (field & 0x3FFF) + 2, 8 + (buf[i + 4] & 0x0F) + 1
    if field & 0xC000 or length < header + 3 or len(buf) < i + length or buf[i + length - 1] != 0x16:
        return None
    hcs = int.from_bytes(buf[i + header - 2 : i + header], "little")
    fcs = int.from_bytes(buf[i + length - 3 : i + length - 1], "little")
    if _crc16_x25(buf[i + 1 : i + header - 2]) != hcs or _crc16_x25(buf[i + 1 : i + length - 3]) != fcs:
        return None
    return length


class _Scanner(FrameScanner[Frame]):
    """DL/T 645 framing for the shared search; FE dropped before a frame is counted in `preamble`,
    apart from the line noise in `skipped`."""

    _START = START

    def __init__(self, max_buffer: int) -> None:
        super().__init__(max_buffer)
        self.preamble = 0  # FE bytes dropped before a frame
        self.foreign = 0  # DL/T 698.45 frames skipped whole

    def _to_next_start(self) -> bool:
        while super()._to_next_start():
            length = dlt698_frame_at(self._buf, 0)
            if length is None:
                return True
            own = self._candidate(0)
            if own > 0 and self._frame_ok(0, own) == (True, True):
                return True  # a valid 645 frame that also looks like a 698 one: ours wins
            self.foreign += 1
            del self._buf[:length]
        return False

    def _candidate(self, i: int) -> int:
        buf = self._buf
        if buf[i] != START:
            return NOT_A_START
        if len(buf) > i + 7 and buf[i + 7] != START:
            return NEED_MORE if _dlt698_pending(buf, i) else NOT_A_START
        if len(buf) < i + HEADER:
            return NEED_MORE
        length = HEADER + buf[i + 9] + 2
        if len(buf) < i + length:
            return NEED_MORE
        if frame_ok_at(buf, i, length) != (True, True) and _dlt698_pending(buf, i):
            return NEED_MORE  # a 698 frame still arriving (its SA holds a 68): wait to skip it whole
        return length

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
