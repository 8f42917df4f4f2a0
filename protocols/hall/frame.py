"""Hall bus link frames (hall-protocol.md "Frame"): `FF 68 L L 68 ADDR FUNC DATA CS 16`.

Layer: pure codec (protocols). Must not: do I/O, read clocks, or know what a function's DATA means
(that is `messages`).

L counts ADDR, FUNC and DATA (= 2 + len(DATA), 2 <= L <= 64) and is sent twice; both copies must
match. CS is the sum of ADDR, FUNC and DATA mod 256 (not the header bytes). ADDR `01`..`FE` is a
device, `00` the master's broadcast (never answered); `FF` is not an address. A device's reply sets
bit 7 of FUNC (`FUNC | 80`), an error reply bits 7 and 6 (`FUNC | C0`), so request functions fit in
six bits (the spec's are `01`..`10`).

The single `FF` wake byte is part of the frame and required: the spec makes the family strict for a
multi-drop bus, and a frame whose wake byte was lost is treated as noise (the master retries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..errors import ChecksumError, FrameError
from .errors import TruncatedFrame, device_name

WAKE: Final = 0xFF
START: Final = 0x68
END: Final = 0x16
HEADER: Final = 5  # FF 68 L L 68
OVERHEAD: Final = 7  # header + CS + 16; a frame is L + 7 bytes
MIN_L: Final = 2
MAX_L: Final = 64
MAX_DATA: Final = MAX_L - 2
MIN_FRAME: Final = OVERHEAD + MIN_L
MAX_FRAME: Final = OVERHEAD + MAX_L

BROADCAST: Final = 0x00
MAX_ADDRESS: Final = 0xFE

REPLY: Final = 0x80  # bit 7: device -> master
ERROR: Final = 0x40  # bit 6 (with bit 7): error reply
FUNCTION_MASK: Final = 0x3F


def check_address(address: int, *, broadcast_ok: bool = True) -> int:
    """`address` if it is a device address (01..FE) or, when allowed, the broadcast 00."""
    low = BROADCAST if broadcast_ok else 1
    if not low <= address <= MAX_ADDRESS:
        allowed = "00..FE" if broadcast_ok else "01..FE"
        raise FrameError(f"hall address {address!r}: outside {allowed}")
    return address


def checksum(data: bytes | bytearray) -> int:
    """Sum mod 256 of the bytes given: pass ADDR, FUNC and DATA."""
    return sum(data) & 0xFF


def func_byte(function: int, *, reply: bool = False, error: bool = False) -> int:
    if not 0 <= function <= FUNCTION_MASK:
        raise FrameError(f"hall function {function:#04x} outside 00..3F")
    return function | (REPLY if reply or error else 0) | (ERROR if error else 0)


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: `func` is the FUNC byte as sent (with the reply/error bits)."""

    address: int
    func: int
    data: bytes = b""

    @property
    def is_reply(self) -> bool:
        return bool(self.func & REPLY)

    @property
    def is_error(self) -> bool:
        return self.func & (REPLY | ERROR) == REPLY | ERROR

    @property
    def function(self) -> int:
        """The request function this frame is or answers (FUNC without the reply/error bits)."""
        return self.func & FUNCTION_MASK if self.is_reply else self.func

    @property
    def device(self) -> str:
        return device_name(self.address)

    def encode(self) -> bytes:
        return build_frame(self.address, self.func, self.data)


def build_frame(address: int, func: int, data: bytes = b"") -> bytes:
    """Wire bytes of one frame; `func` is the FUNC byte as sent."""
    check_address(address)
    if len(data) > MAX_DATA:
        raise FrameError(f"{device_name(address)}: {len(data)} data bytes, the maximum is {MAX_DATA}")
    if not 0 <= func <= 0xFF:
        raise FrameError(f"{device_name(address)}: FUNC {func} outside 00..FF")
    length = 2 + len(data)
    body = bytes((address, func)) + data
    return bytes((WAKE, START, length, length, START)) + body + bytes((checksum(body), END))


def parse_frame(raw: bytes) -> Frame:
    """Parse exactly one frame. Raises TruncatedFrame, ChecksumError or FrameError, each naming the
    device address once it can be read."""
    if len(raw) < MIN_FRAME:
        raise TruncatedFrame(
            f"hall frame of {len(raw)} bytes is shorter than the minimum {MIN_FRAME}: {raw.hex(' ')}"
        )
    who = device_name(raw[5])
    if raw[0] != WAKE or raw[1] != START or raw[4] != START:
        raise FrameError(f"{who}: frame must start FF 68 L L 68: {raw.hex(' ')}")
    if raw[2] != raw[3]:
        raise FrameError(f"{who}: the two L bytes differ ({raw[2]:02X} != {raw[3]:02X}): {raw.hex(' ')}")
    if not MIN_L <= raw[2] <= MAX_L:
        raise FrameError(f"{who}: L={raw[2]} outside {MIN_L}..{MAX_L}: {raw.hex(' ')}")
    length = OVERHEAD + raw[2]
    if len(raw) < length:
        raise TruncatedFrame(f"{who}: frame of {len(raw)} bytes, L={raw[2]} needs {length}: {raw.hex(' ')}")
    if len(raw) > length:
        raise FrameError(f"{who}: {len(raw) - length} bytes after the end of the frame: {raw.hex(' ')}")
    if raw[-1] != END:
        raise FrameError(f"{who}: frame ends {raw[-1]:02X}, not 16: {raw.hex(' ')}")
    expected = checksum(raw[HEADER:-2])
    if raw[-2] != expected:
        raise ChecksumError(f"{who}: checksum {raw[-2]:02X} != computed {expected:02X}: {raw.hex(' ')}")
    if raw[5] > MAX_ADDRESS:
        raise FrameError(f"{who}: address FF is not a device address: {raw.hex(' ')}")
    return Frame(raw[5], raw[6], bytes(raw[HEADER + 2 : -2]))


def frame_length_at(buf: bytes | bytearray, i: int) -> int | None:
    """Length of the frame that may start at `buf[i]`: 0 if more bytes are needed to tell, None if
    `buf[i]` cannot start a frame (no `FF 68 L L 68` with a legal L)."""
    avail = len(buf) - i
    head = (WAKE, START, None, None, START)
    for k, want in enumerate(head[: min(avail, HEADER)]):
        if want is not None and buf[i + k] != want:
            return None
    if avail >= 4 and (buf[i + 2] != buf[i + 3] or not MIN_L <= buf[i + 2] <= MAX_L):
        return None
    if avail < HEADER:
        return 0
    return OVERHEAD + buf[i + 2]


def frame_ok_at(buf: bytes | bytearray, i: int, length: int) -> tuple[bool, bool]:
    """(structure ok: end byte `16` in place and a device address, checksum ok) for a complete
    candidate at `buf[i]`."""
    end = i + length
    structure = buf[end - 1] == END and buf[i + HEADER] <= MAX_ADDRESS
    return structure, structure and checksum(buf[i + HEADER : end - 2]) == buf[end - 2]
