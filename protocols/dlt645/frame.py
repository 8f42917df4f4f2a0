"""DL/T 645 link frames (2007 and 1997 share the layout): `[FE…] 68 A0..A5 68 C L DATA CS 16`.

Layer: pure codec (protocols). Must not: do I/O, read clocks, or know what a data identifier means
(that is `items` and `messages`).

dlt645.md §1: the address is 12 BCD digits sent lowest byte first (nameplate `123456789012` goes out
as `12 90 78 56 34 12`); every DATA byte carries +0x33 on the wire (mod 256); CS is the sum mod 256 of
all bytes from the first `68` through the last DATA byte (the FE preamble is not counted); C holds
direction (D7), abnormal reply (D6), follow-up (D5) and the function code (D4..D0).

Addresses are kept as the 12-character nameplate string. A byte may be `AA` (2007 shortened addressing
wildcard, 1997 padding); `999999999999` is the broadcast address (time sync, freeze: no reply).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..errors import ChecksumError, FrameError
from .errors import TruncatedFrame

START: Final = 0x68
END: Final = 0x16
PREAMBLE_BYTE: Final = 0xFE
SCRAMBLE: Final = 0x33
HEADER: Final = 10  # 68 A0..A5 68 C L
OVERHEAD: Final = 12  # header + CS + 16
MAX_DATA: Final = 200  # §1.6: L <= 200 for reads (50 for writes); L is one byte, parsers accept 255
MAX_FRAME: Final = OVERHEAD + 255
MAX_PREAMBLE: Final = 4

BROADCAST: Final = "999999999999"
WILDCARD: Final = "AAAAAAAAAAAA"

DIRECTION_REPLY: Final = 0x80  # D7: 1 = meter -> master
ABNORMAL: Final = 0x40  # D6: abnormal (error) reply
FOLLOW_UP: Final = 0x20  # D5: more frames follow
FUNCTION_MASK: Final = 0x1F


def normalize_address(address: str) -> str:
    """Check a nameplate address: 12 characters, each byte two decimal digits or the `AA` wildcard.
    Returns it upper-cased. Raises FrameError naming the address."""
    text = address.strip().upper()
    if len(text) != 12:
        raise FrameError(f"meter address {address!r}: must be 12 digits, got {len(text)} characters")
    for i in range(0, 12, 2):
        pair = text[i : i + 2]
        if not (pair.isdigit() and pair.isascii()) and pair != "AA":
            raise FrameError(f"meter address {address!r}: byte {pair!r} is neither two BCD digits nor AA")
    return text


def address_to_wire(address: str) -> bytes:
    return bytes.fromhex(normalize_address(address))[::-1]


def address_from_wire(wire: bytes) -> str:
    """The nameplate string of 6 wire bytes. Not validated: a corrupt byte shows up as its hex."""
    return wire[::-1].hex().upper()


def address_matches(requested: str, got: str) -> bool:
    """Does a reply from `got` answer a request sent to `requested`? `AA` bytes of the request match
    any byte (§1.4: the reply carries the real full address); an all-`99` request (used on 1997 buses
    with one meter, §1.4) matches any meter."""
    if requested == BROADCAST:
        return True
    return len(got) == 12 and all(r in ("AA", g) for r, g in zip(_pairs(requested), _pairs(got), strict=True))


def is_wildcard(address: str) -> bool:
    return "AA" in _pairs(address)


def _pairs(address: str) -> list[str]:
    return [address[i : i + 2].upper() for i in range(0, len(address), 2)]


def scramble(data: bytes) -> bytes:
    return bytes((b + SCRAMBLE) & 0xFF for b in data)


def unscramble(data: bytes) -> bytes:
    return bytes((b - SCRAMBLE) & 0xFF for b in data)


def checksum(data: bytes | bytearray) -> int:
    return sum(data) & 0xFF


def control_byte(
    function: int, *, reply: bool = False, abnormal: bool = False, follow_up: bool = False
) -> int:
    if not 0 <= function <= FUNCTION_MASK:
        raise FrameError(f"function code {function:#04x} outside 0x00..0x1f")
    return (
        function
        | (DIRECTION_REPLY if reply else 0)
        | (ABNORMAL if abnormal else 0)
        | (FOLLOW_UP if follow_up else 0)
    )


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame; `data` is the DATA field with the +0x33 already removed."""

    address: str
    control: int
    data: bytes = b""

    @property
    def is_reply(self) -> bool:
        return bool(self.control & DIRECTION_REPLY)

    @property
    def abnormal(self) -> bool:
        return bool(self.control & ABNORMAL)

    @property
    def follow_up(self) -> bool:
        return bool(self.control & FOLLOW_UP)

    @property
    def function(self) -> int:
        return self.control & FUNCTION_MASK

    def encode(self, preamble: int = 0) -> bytes:
        return build_frame(self.address, self.control, self.data, preamble=preamble)


def build_frame(address: str, control: int, data: bytes = b"", *, preamble: int = 0) -> bytes:
    """Wire bytes of one frame; `data` is plain (the +0x33 is added here)."""
    if len(data) > MAX_DATA:
        raise FrameError(f"meter {address}: {len(data)} data bytes, the maximum is {MAX_DATA}")
    if not 0 <= control <= 0xFF:
        raise FrameError(f"meter {address}: control byte {control} outside 0..255")
    if not 0 <= preamble <= 16:
        raise FrameError(f"meter {address}: preamble of {preamble} FE bytes (0..16 allowed)")
    body = bytes((START,)) + address_to_wire(address) + bytes((START, control, len(data))) + scramble(data)
    return bytes((PREAMBLE_BYTE,)) * preamble + body + bytes((checksum(body), END))


def strip_preamble(raw: bytes) -> tuple[int, bytes]:
    """(number of leading FE bytes, the rest). FE after the first `68` is data and never dropped."""
    rest = raw.lstrip(bytes((PREAMBLE_BYTE,)))
    return len(raw) - len(rest), rest


def parse_frame(raw: bytes) -> Frame:
    """Parse exactly one frame (leading FE allowed). Raises TruncatedFrame, ChecksumError or FrameError,
    each naming the address once it can be read."""
    _, f = strip_preamble(raw)
    if len(f) < OVERHEAD:
        raise TruncatedFrame(
            f"frame of {len(f)} bytes is shorter than the minimum {OVERHEAD}: {raw.hex(' ')}"
        )
    address = address_from_wire(f[1:7])
    if f[0] != START or f[7] != START:
        raise FrameError(f"meter {address}: frame must start 68 A0..A5 68: {raw.hex(' ')}")
    length = OVERHEAD + f[9]
    if len(f) < length:
        raise TruncatedFrame(
            f"meter {address}: frame of {len(f)} bytes, L={f[9]} needs {length}: {raw.hex(' ')}"
        )
    if len(f) > length:
        raise FrameError(
            f"meter {address}: {len(f) - length} bytes after the end of the frame: {raw.hex(' ')}"
        )
    if f[-1] != END:
        raise FrameError(f"meter {address}: frame ends {f[-1]:02X}, not 16: {raw.hex(' ')}")
    expected = checksum(f[: HEADER + f[9]])
    if f[-2] != expected:
        raise ChecksumError(
            f"meter {address}: checksum {f[-2]:02X} != computed {expected:02X}: {raw.hex(' ')}"
        )
    return Frame(address, f[8], unscramble(f[HEADER:-2]))


def frame_length_at(buf: bytes | bytearray, i: int) -> int | None:
    """Length of the frame that may start at `buf[i]` (a `68` with another `68` seven bytes on and the L
    byte buffered), or None if that is not yet known or `buf[i]` cannot start a frame."""
    if len(buf) < i + HEADER or buf[i] != START or buf[i + 7] != START:
        return None
    return OVERHEAD + buf[i + 9]


def frame_ok_at(buf: bytes | bytearray, i: int, length: int) -> tuple[bool, bool]:
    """(structure ok: end byte `16` in place, checksum ok) for a complete candidate at `buf[i]`."""
    end = i + length
    structure = buf[end - 1] == END
    return structure, structure and checksum(buf[i : end - 2]) == buf[end - 2]
