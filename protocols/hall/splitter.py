"""Hall bus stream splitting: the gateway's `ReplyMatcher` (one reply to one request on the shared
RS-485 line) and the simulator's `FrameSplitter` (every frame in a byte stream).

Layer: stream splitter (protocols). Must not: do I/O, own timeouts or read clocks; the bus decides
when the line went quiet and calls `ReplyMatcher.finish()`.

A frame is found at `FF 68 L L 68` with both L equal and 2..64, then L + 7 bytes are awaited and the
`16` and CS checked; on failure the search resumes one byte on. `FF`, `68` and `16` may all sit inside
ADDR/DATA/CS, so no single byte is trusted as a delimiter; a complete valid frame found further on wins
over a look-alike still waiting for bytes (noise must not turn a good reply into a timeout). Every byte
dropped is counted in `skipped`. The search itself is shared with the DL/T 645 codec
(`protocols.framing`); this module says what a hall frame looks like, how a reply's address matches
and how messages name a device.
"""

from __future__ import annotations

from typing import Final

from ..framing import NEED_MORE, NOT_A_START, FrameScanner, FrameSplitterBase, ReplyMatcherBase
from .errors import TruncatedFrame, UnexpectedReply, WrongAddress, device_name
from .frame import MAX_FRAME, WAKE, Frame, check_address, frame_length_at, frame_ok_at, parse_frame

DEFAULT_MAX_BUFFER: Final = 2 * MAX_FRAME


class _Scanner(FrameScanner[Frame]):
    """Hall framing for the shared search: a frame starts at `FF` (`FF 68 L L 68`)."""

    _START = WAKE

    def _candidate(self, i: int) -> int:
        length = frame_length_at(self._buf, i)
        if length is None:
            return NOT_A_START
        return length if length and len(self._buf) >= i + length else NEED_MORE

    def _frame_ok(self, i: int, length: int) -> tuple[bool, bool]:
        return frame_ok_at(self._buf, i, length)

    def _parse(self, raw: bytes) -> Frame:
        return parse_frame(raw)


class ReplyMatcher(ReplyMatcherBase[Frame], _Scanner):
    """Collects the bytes that arrive after one request and recognises its reply.

    `feed(data)` returns the reply `Frame` once a complete, CS-valid reply (FUNC bit 7 set) of the
    addressed device to the requested function is buffered (error replies `FUNC | C0` too:
    `messages.check_reply` raises them), or None while more bytes are needed. It raises `ChecksumError`
    for a complete frame whose CS is wrong, `WrongAddress` for a valid reply from another device,
    `UnexpectedReply` for a valid reply of ours to another function (the frame is consumed; feeding
    may continue), and `FrameError` when more than `max_buffer` bytes arrived without a frame. Frames
    without bit 7 (the adapter's echo of our own request) are dropped and counted in `echoes`, other
    noise in `skipped`. `finish()` raises `TruncatedFrame` if part of a frame is still buffered.
    """

    _TRUNCATED = TruncatedFrame

    def __init__(self, address: int, function: int, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        super().__init__(max_buffer)
        # hall-protocol.md: a broadcast (00) is never answered, so there is nothing to match
        self.address = check_address(address, broadcast_ok=False)
        self.function = function & 0x3F

    @classmethod
    def for_request(cls, request: Frame, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> ReplyMatcher:
        return cls(request.address, request.function, max_buffer=max_buffer)

    def _accept(self, frame: Frame) -> Frame:
        if frame.address != self.address:
            raise WrongAddress(self.address, frame.address, frame.encode())
        if frame.function != self.function:
            raise UnexpectedReply(
                f"{frame.device}: reply to function {frame.function:02X}, "
                f"expected {self.function:02X}: {frame.encode().hex(' ')}"
            )
        return frame

    def _who(self) -> str:
        return device_name(self.address)

    def _who_sent(self, raw: bytes) -> str:
        return device_name(raw[5])


class FrameSplitter(FrameSplitterBase[Frame], _Scanner):
    """`feed(bytes) -> frames` for the simulator side: every CS-valid frame in the stream, in order,
    whatever its direction or address. Never raises: frames with a bad CS are dropped and counted in
    `bad_checksum` (a real device stays silent), noise in `skipped`. The buffer is bounded: a
    look-alike start that would need more than `max_buffer` bytes is given up."""

    def __init__(self, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        super().__init__(max_buffer)


def split_frames(burst: bytes) -> list[Frame]:
    """Every valid frame in one burst (noise, echoes, frames for other devices included)."""
    return FrameSplitter().feed(burst)
