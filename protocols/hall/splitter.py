"""Hall bus stream splitting: the gateway's `ReplyMatcher` (one reply to one request on the shared
RS-485 line) and the simulator's `FrameSplitter` (every frame in a byte stream).

Layer: stream splitter (protocols). Must not: do I/O, own timeouts or read clocks; the bus decides
when the line went quiet and calls `ReplyMatcher.finish()`.

A frame is found at `FF 68 L L 68` with both L equal and 2..64, then L + 7 bytes are awaited and the
`16` and CS checked; on failure the search resumes one byte on. `FF`, `68` and `16` may all sit inside
ADDR/DATA/CS, so no single byte is trusted as a delimiter; a complete valid frame found further on wins
over a look-alike still waiting for bytes (noise must not turn a good reply into a timeout). Every byte
dropped is counted in `skipped`.
"""

from __future__ import annotations

from typing import Final

from ..errors import ChecksumError, FrameError
from .errors import TruncatedFrame, UnexpectedReply, WrongAddress, device_name
from .frame import MAX_FRAME, WAKE, Frame, check_address, frame_length_at, frame_ok_at, parse_frame

DEFAULT_MAX_BUFFER: Final = 2 * MAX_FRAME


class _Scanner:
    """The resynchronising search shared by both splitters; counts every byte it drops."""

    def __init__(self, max_buffer: int) -> None:
        self.max_buffer = max_buffer
        self.skipped = 0
        self._buf = bytearray()

    @property
    def buffered(self) -> bytes:
        return bytes(self._buf)

    def _to_next_start(self) -> bool:
        """Drop everything before the next `FF`; False if there is none (all dropped)."""
        start = self._buf.find(WAKE)
        self._skip(len(self._buf) if start < 0 else start)
        return start >= 0

    def _complete_frame_after(self, offset: int) -> int | None:
        i = self._buf.find(WAKE, offset + 1)
        while i >= 0:
            length = frame_length_at(self._buf, i)
            if length and len(self._buf) >= i + length and frame_ok_at(self._buf, i, length) == (True, True):
                return i
            i = self._buf.find(WAKE, i + 1)
        return None

    def _take(self, length: int) -> bytes:
        raw = bytes(self._buf[:length])
        del self._buf[:length]
        return raw

    def _skip(self, n: int) -> None:
        self.skipped += n
        del self._buf[:n]

    def _state(self) -> tuple[str, int]:
        """What sits at buf[0] (a WAKE byte): ("noise", 1), ("more", 0) or ("frame", length)."""
        length = frame_length_at(self._buf, 0)
        if length is None:
            return "noise", 1
        if length == 0 or len(self._buf) < length:
            return "more", 0
        return "frame", length


class ReplyMatcher(_Scanner):
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

    def __init__(self, address: int, function: int, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        super().__init__(max_buffer)
        # hall-protocol.md: a broadcast (00) is never answered, so there is nothing to match
        self.address = check_address(address, broadcast_ok=False)
        self.function = function & 0x3F
        self.echoes = 0

    @classmethod
    def for_request(cls, request: Frame, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> ReplyMatcher:
        return cls(request.address, request.function, max_buffer=max_buffer)

    def feed(self, data: bytes) -> Frame | None:
        self._buf += data
        while self._to_next_start():
            state, length = self._state()
            if state == "noise":
                self._skip(1)
                continue
            later = self._complete_frame_after(0) if state == "more" else None
            if state == "more":
                if later is None:
                    self._overflow_check()
                    return None
                self._skip(later)
                continue
            structure, cs_ok = frame_ok_at(self._buf, 0, length)
            if not structure:
                self._skip(1)  # a look-alike: hunt on from the next FF
                continue
            if not cs_ok:
                later = self._complete_frame_after(0)
                if later is not None:
                    self._skip(later)
                    continue
                raw = self._take(length)
                raise ChecksumError(f"{device_name(raw[5])}: reply with bad CS: {raw.hex(' ')}")
            frame = parse_frame(self._take(length))
            if not frame.is_reply:
                self.echoes += 1
                continue
            return self._accept(frame)
        return None

    def _accept(self, frame: Frame) -> Frame:
        if frame.address != self.address:
            raise WrongAddress(self.address, frame.address, frame.encode())
        if frame.function != self.function:
            raise UnexpectedReply(
                f"{frame.device}: reply to function {frame.function:02X}, "
                f"expected {self.function:02X}: {frame.encode().hex(' ')}"
            )
        return frame

    def finish(self) -> None:
        """The caller's timeout expired: raise TruncatedFrame if part of a frame is buffered."""
        start = self._buf.find(WAKE)
        part = bytes(self._buf[start:]) if start >= 0 else b""
        self.skipped += len(self._buf)
        self._buf.clear()
        if part:
            raise TruncatedFrame(
                f"{device_name(self.address)}: reply cut short after {len(part)} bytes: {part.hex(' ')}"
            )

    def _overflow_check(self) -> None:
        if len(self._buf) > self.max_buffer:
            dropped = len(self._buf)
            self.skipped += dropped
            self._buf.clear()
            raise FrameError(f"{device_name(self.address)}: no valid reply in {dropped} bytes")


class FrameSplitter(_Scanner):
    """`feed(bytes) -> frames` for the simulator side: every CS-valid frame in the stream, in order,
    whatever its direction or address. Never raises: frames with a bad CS are dropped and counted in
    `bad_checksum` (a real device stays silent), noise in `skipped`. The buffer is bounded: a
    look-alike start that would need more than `max_buffer` bytes is given up."""

    def __init__(self, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        super().__init__(max_buffer)
        self.bad_checksum = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while self._to_next_start():
            state, length = self._state()
            if state == "more":
                later = self._complete_frame_after(0)
                if later is not None:
                    self._skip(later)
                elif len(self._buf) > self.max_buffer:
                    self._skip(1)
                else:
                    break
                continue
            structure, cs_ok = (False, False) if state == "noise" else frame_ok_at(self._buf, 0, length)
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
    """Every valid frame in one burst (noise, echoes, frames for other devices included)."""
    return FrameSplitter().feed(burst)
