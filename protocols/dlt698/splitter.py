"""DL/T 698.45 stream splitting: the gateway's `ReplyMatcher` (one reply to one request on a shared
RS-485 bus) and the simulator's `FrameSplitter` (every frame in a byte stream).

Layer: stream splitter (protocols). Must not: do I/O, own timeouts or read clocks; the bus decides
when the line went quiet and calls `ReplyMatcher.finish()`.

dlt698.md §7 (600888's method): skip `FE`, find `68`, check the HCS as soon as the header is in (so
noise never makes us wait for the up to 16 kB a random L announces), wait for L + 2 bytes, check `16`
and the FCS; on failure drop one byte and resynchronise on the next `68`. The search itself is shared
with the other codecs (`protocols.framing`). A DL/T 645 frame on the same line (a mixed bus of old and
new meters) is recognised whole and skipped, counted in `foreign`, not treated as noise or an error.
"""

from __future__ import annotations

from typing import Final

from ..framing import NEED_MORE, NOT_A_START, FrameScanner, FrameSplitterBase, ReplyMatcherBase
from .errors import TruncatedFrame, UnexpectedReply, WrongAddress
from .frame import (
    MAX_FRAME,
    MIN_HEADER,
    PREAMBLE_BYTE,
    START,
    Address,
    Frame,
    address_from_wire,
    frame_length_at,
    frame_ok_at,
    header_ok_at,
    parse_frame,
)
from .messages import Apdu, mismatch, parse_apdu, unwrap

_MIN_FRAME: Final = MIN_HEADER + 3  # a frame without an APDU: header, FCS, 16
DEFAULT_MAX_BUFFER: Final = 2 * MAX_FRAME


def dlt645_frame_at(buf: bytes | bytearray, i: int) -> int | None:
    """Length of a complete, valid DL/T 645 frame (`68 A0..A5 68 C L DATA CS 16`, CS = sum mod 256)
    at `buf[i]`, else None. Written out here because device-kind codecs are independent folders
    (import-linter) and these lines are all a 698 line needs to know of 645."""
    if len(buf) < i + 12 or buf[i] != START or buf[i + 7] != START:
        return None
    length = 12 + buf[i + 9]
    if len(buf) < i + length or buf[i + length - 1] != 0x16:
        return None
    return length if sum(buf[i : i + length - 2]) & 0xFF == buf[i + length - 2] else None


class _Scanner(FrameScanner[Frame]):
    """DL/T 698.45 framing for the shared search; FE before a frame is counted in `preamble`, whole
    DL/T 645 frames in `foreign`, other line noise in `skipped`."""

    _START = START

    def __init__(self, max_buffer: int) -> None:
        super().__init__(max_buffer)
        self.preamble = 0  # FE bytes dropped before a frame
        self.foreign = 0  # DL/T 645 frames skipped whole

    def _candidate(self, i: int) -> int:
        if self._buf[i] != START:
            return NOT_A_START
        header = header_ok_at(self._buf, i)
        if header is None:
            return NEED_MORE
        if not header:
            # a DL/T 645 frame still arriving: wait for it whole (<= 267 bytes) so it is skipped as one
            return NEED_MORE if self._dlt645_pending(i) else NOT_A_START
        length = frame_length_at(self._buf, i)
        return length if len(self._buf) >= i + length else NEED_MORE

    def _dlt645_pending(self, i: int) -> bool:
        buf = self._buf
        if len(buf) <= i + 7:
            return True
        if buf[i + 7] != START:
            return False
        return len(buf) < i + 10 or len(buf) < i + 12 + buf[i + 9]

    def _frame_ok(self, i: int, length: int) -> tuple[bool, bool]:
        return frame_ok_at(self._buf, i, length)

    def _parse(self, raw: bytes) -> Frame:
        return parse_frame(raw)

    def _to_next_start(self) -> bool:
        while super()._to_next_start():
            length = dlt645_frame_at(self._buf, 0)
            if length is None:
                return True
            if self._candidate(0) > 0:
                return True  # a valid 698 frame that also looks like a 645 one: ours wins
            self.foreign += 1
            del self._buf[:length]
        return False

    def _skip(self, n: int) -> None:
        fe = self._buf[:n].count(PREAMBLE_BYTE)
        self.preamble += fe
        self.skipped += n - fe
        del self._buf[:n]


class ReplyMatcher(ReplyMatcherBase[Frame], _Scanner):
    """Collects the bytes that arrive after one request and recognises its reply.

    `feed(data)` returns the reply `Frame` once a complete, CRC-valid reply (DIR = 1) from the addressed
    meter (any meter for a wildcard request) to our client address, answering our request (service,
    PIID, OAD/OMD; ERROR-Response and security DARs answer anything) is buffered, or None while more
    bytes are needed. A fragment is matched by address and CA only (the caller reassembles). It raises
    `ChecksumError` for a complete frame whose HCS/FCS is wrong, `WrongAddress` for a valid reply from
    another meter or to another client, `UnexpectedReply` for a reply of ours that answers something
    else (a late reply to an earlier PIID), and `FrameError` when more than `max_buffer` bytes arrived
    without a frame; the frame concerned is consumed and feeding may continue. Frames with DIR = 0 (the
    adapter's echo of our own request) are counted in `echoes`, FE in `preamble`, DL/T 645 frames in
    `foreign`, other noise in `skipped`. `finish()` raises `TruncatedFrame` if part of a frame is
    still buffered.
    """

    _TRUNCATED = TruncatedFrame
    _COUNT_CUT_SHORT = False

    def __init__(
        self,
        address: Address,
        ca: int = 0,
        request: Apdu | None = None,
        *,
        max_buffer: int = DEFAULT_MAX_BUFFER,
    ) -> None:
        super().__init__(max_buffer)
        self.address = address
        self.ca = ca
        self.request = request

    @classmethod
    def for_request(cls, request: Frame, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> ReplyMatcher:
        apdu = None if request.fragmented else unwrap(parse_apdu(request.data, f"{request.address} request"))
        return cls(request.address, request.ca, apdu, max_buffer=max_buffer)

    def bytes_needed(self) -> int:
        """How many more bytes the reply needs at least, so the bus can sleep through the wire time of
        the rest of a frame instead of waking up per byte (as DL/T 645's matcher does). Conservative:
        every `68` still buffered may start the reply (a `68` inside data announces some length; the
        smallest need wins), and one not started yet needs at least a frame without an APDU."""
        buf = self._buf
        need = _MIN_FRAME
        i = buf.find(START)
        while i >= 0:
            have = len(buf) - i
            total = frame_length_at(buf, i) if have >= 3 else _MIN_FRAME
            need = min(need, max((total or _MIN_FRAME) - have, 1))
            i = buf.find(START, i + 1)
        return need

    def _accept(self, frame: Frame) -> Frame:
        if not self.address.matches(frame.address):
            raise WrongAddress(str(self.address), str(frame.address), frame.encode())
        if frame.ca != self.ca:
            raise WrongAddress(f"client {self.ca}", f"client {frame.ca}", frame.encode())
        if self.request is None or frame.fragmented:
            return frame
        reply = unwrap(parse_apdu(frame.data, f"{frame.address} reply"))
        why = mismatch(self.request, reply)
        if why is not None:
            raise UnexpectedReply(f"{frame.address}: {why}: {frame.encode().hex(' ')}")
        return frame

    def _who(self) -> str:
        return str(self.address)

    def _who_sent(self, raw: bytes) -> str:
        n = (raw[4] & 0x0F) + 1
        return str(address_from_wire(raw[4], raw[5 : 5 + n]))


class FrameSplitter(FrameSplitterBase[Frame], _Scanner):
    """`feed(bytes) -> frames` for the simulator side: every CRC-valid frame in the stream, in order,
    whatever its direction or address. Never raises: frames with a bad FCS are dropped and counted in
    `bad_checksum` (a real meter stays silent), noise in `skipped`, FE in `preamble`, DL/T 645 frames in
    `foreign`. The buffer is bounded: a look-alike start that would need more than `max_buffer` bytes
    is given up."""

    def __init__(self, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        super().__init__(max_buffer)


def split_frames(burst: bytes) -> list[Frame]:
    """Every valid frame in one burst (noise, echoes, frames for other meters, 645 frames skipped)."""
    return FrameSplitter().feed(burst)
