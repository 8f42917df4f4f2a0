"""DL/T 698.45 link frames: `[FE…] 68 L L C AF SA… CA HCS HCS APDU… FCS FCS 16`.

Layer: pure codec (protocols). Must not: do I/O, read clocks, or interpret the APDU (that is `apdu`).

dlt698.md §1: L (2 bytes, little-endian) counts L..FCS, not `68`/`16`; bits 0-13 are the length,
bit 14 the unit (1 = kilobytes: 600888 rejects it, wenyl reads it; we accept it only while the frame
stays within 16385 bytes, and always send 0), bit 15 reserved. C: bit 7 DIR (1 = from the server),
bit 6 PRM (1 = exchange started by the client), bit 5 fragment, bit 3 SC (+0x33 on the user data; the
CRCs cover the scrambled bytes), bits 0-2 function (1 link management, 3 user data). AF: bits 0-3 SA
length - 1, bits 4-5 logical address, bits 6-7 type (single, wildcard, group, broadcast). SA is sent
reversed (meter `123456789012` -> `12 90 78 56 34 12`). CA is the client address, echoed by the meter.
HCS covers L..CA and FCS L..the last APDU byte, both CRC-16/X-25 sent low byte first. Because the FCS
also covers a header ending in its valid HCS, the FCS alone does not check the header: both are checked.

Addresses are kept as the nameplate hex string (most significant digit first); an `A` nibble is a
wildcard digit, a broadcast is AF `C0` with SA `AA`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from ..errors import ChecksumError, FrameError
from .errors import TruncatedFrame

START: Final = 0x68
END: Final = 0x16
PREAMBLE_BYTE: Final = 0xFE
SCRAMBLE: Final = 0x33
MAX_FRAME: Final = 0x3FFF + 2  # L is 14 bits and does not count 68 and 16
MAX_SA: Final = 16
MIN_HEADER: Final = 9  # 68 L L C AF SA(1) CA HCS HCS
LENGTH_UNIT_KB: Final = 0x4000
LENGTH_RESERVED: Final = 0x8000

DIR: Final = 0x80  # 1: the server (meter) sends
PRM: Final = 0x40  # 1: the client started the exchange
FRAGMENT: Final = 0x20
SC: Final = 0x08  # +0x33 scrambling of the user data
FUNCTION_MASK: Final = 0x07


class Function(enum.IntEnum):
    LINK = 1  # link management (LINK-Request / -Response: login, heartbeat, logout)
    USER_DATA = 3  # APDUs


class AddressType(enum.IntEnum):
    SINGLE = 0
    WILDCARD = 1
    GROUP = 2
    BROADCAST = 3


def crc16_x25(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/X-25 (init FFFF, reflected poly 8408, xorout FFFF); `123456789` -> 0x906E."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def normalize_sa(sa: str) -> str:
    """Check a server address given as nameplate hex digits: 2..32 hex digits, an even number (pad an
    odd address with a leading 0 yourself). Returns it upper-cased. Raises FrameError naming it."""
    text = sa.strip().upper()
    if not 2 <= len(text) <= 2 * MAX_SA or len(text) % 2:
        raise FrameError(f"meter address {sa!r}: needs an even number of 2..32 hex digits")
    if any(c not in "0123456789ABCDEF" for c in text):
        raise FrameError(f"meter address {sa!r}: not hex digits")
    return text


@dataclass(frozen=True, slots=True)
class Address:
    """The server address (AF + SA): `sa` in nameplate order, e.g. "123456789012"."""

    sa: str
    type: AddressType = AddressType.SINGLE
    logical: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "sa", normalize_sa(self.sa))
        object.__setattr__(self, "type", AddressType(self.type))
        if not 0 <= self.logical <= 3:
            raise FrameError(f"meter address {self.sa}: logical address {self.logical} outside 0..3")

    @classmethod
    def single(cls, sa: str) -> Address:
        return cls(sa)

    @classmethod
    def wildcard(cls, digits: int = 12) -> Address:
        """Any meter (dlt698.md §1: only with one meter on the bus); the reply carries the real SA."""
        return cls("A" * digits, AddressType.WILDCARD)

    @classmethod
    def broadcast(cls) -> Address:
        """Every meter, never answered (broadcast time)."""
        return cls("AA", AddressType.BROADCAST)

    @property
    def af(self) -> int:
        return (len(self.sa) // 2 - 1) | self.logical << 4 | self.type << 6

    def wire(self) -> bytes:
        return bytes((self.af,)) + bytes.fromhex(self.sa)[::-1]

    def matches(self, reply: Address) -> bool:
        """Does a reply from `reply` answer a request sent to this address? A wildcard or an `A` digit
        matches any digit of an address of the same length; broadcasts are never answered."""
        if self.type == AddressType.BROADCAST or reply.type != AddressType.SINGLE:
            return False
        if len(self.sa) != len(reply.sa):
            return False
        return all(r in ("A", g) for r, g in zip(self.sa, reply.sa, strict=True))

    def __str__(self) -> str:
        kind = "" if self.type == AddressType.SINGLE else f" ({self.type.name.lower()})"
        return f"meter {self.sa}{kind}"


def address_from_wire(af: int, sa: bytes) -> Address:
    """The address of a frame's AF and SA bytes; a corrupt SA shows up as its hex."""
    return Address(sa[::-1].hex().upper(), AddressType(af >> 6), (af >> 4) & 3)


def control_byte(
    function: int = Function.USER_DATA,
    *,
    reply: bool = False,
    prm: bool = True,
    fragment: bool = False,
    scrambled: bool = False,
) -> int:
    if not 0 <= function <= FUNCTION_MASK:
        raise FrameError(f"function code {function} outside 0..7")
    return (
        function
        | (DIR if reply else 0)
        | (PRM if prm else 0)
        | (FRAGMENT if fragment else 0)
        | (SC if scrambled else 0)
    )


def scramble(data: bytes) -> bytes:
    return bytes((b + SCRAMBLE) & 0xFF for b in data)


def unscramble(data: bytes) -> bytes:
    return bytes((b - SCRAMBLE) & 0xFF for b in data)


@dataclass(frozen=True, slots=True)
class Frame:
    """One link frame; `data` is the user data (an APDU, or a fragment with its 2-byte header), with
    the SC scrambling removed."""

    address: Address
    control: int
    data: bytes = b""
    ca: int = 0

    @property
    def is_reply(self) -> bool:
        return bool(self.control & DIR)

    @property
    def prm(self) -> bool:
        return bool(self.control & PRM)

    @property
    def fragmented(self) -> bool:
        return bool(self.control & FRAGMENT)

    @property
    def scrambled(self) -> bool:
        return bool(self.control & SC)

    @property
    def function(self) -> int:
        return self.control & FUNCTION_MASK

    def encode(self, preamble: int = 0) -> bytes:
        return build_frame(self.address, self.control, self.data, ca=self.ca, preamble=preamble)


def build_frame(address: Address, control: int, data: bytes, *, ca: int = 0, preamble: int = 0) -> bytes:
    """Wire bytes of one frame; `data` is plain (the +0x33 is added here when C has SC)."""
    if not 0 <= control <= 0xFF or control & 0x10:
        raise FrameError(f"{address}: control byte {control:#x} invalid (bit 4 is reserved)")
    if not 0 <= ca <= 0xFF:
        raise FrameError(f"{address}: client address {ca} outside 0..255")
    if not 0 <= preamble <= 16:
        raise FrameError(f"{address}: preamble of {preamble} FE bytes (0..16 allowed)")
    wire_data = scramble(data) if control & SC else data
    af_sa = address.wire()
    length = 2 + 1 + len(af_sa) + 1 + 2 + len(wire_data) + 2
    if length + 2 > MAX_FRAME:
        raise FrameError(f"{address}: frame of {length + 2} bytes, the maximum is {MAX_FRAME}")
    head = length.to_bytes(2, "little") + bytes((control,)) + af_sa + bytes((ca,))
    head += crc16_x25(head).to_bytes(2, "little")
    body = head + wire_data
    fcs = crc16_x25(body).to_bytes(2, "little")
    return bytes((PREAMBLE_BYTE,)) * preamble + bytes((START,)) + body + fcs + bytes((END,))


def strip_preamble(raw: bytes) -> tuple[int, bytes]:
    """(number of leading FE bytes, the rest). FE after the `68` is data and never dropped."""
    rest = raw.lstrip(bytes((PREAMBLE_BYTE,)))
    return len(raw) - len(rest), rest


def decode_length(field: int) -> int | None:
    """Frame length in bytes (68 and 16 included) of an L field; None if it cannot be a frame."""
    if field & LENGTH_RESERVED:
        return None
    length = (field & 0x3FFF) * (1024 if field & LENGTH_UNIT_KB else 1)
    return length + 2 if length + 2 <= MAX_FRAME else None


def header_size(af: int) -> int:
    """Bytes from `68` through the HCS for an address byte `af`."""
    return 8 + (af & 0x0F) + 1


def header_ok_at(buf: bytes | bytearray, i: int) -> bool | None:
    """Is the header at `buf[i]` plausible with a valid HCS? None while it is not all buffered."""
    if len(buf) < i + 5:
        return None
    total = decode_length(int.from_bytes(buf[i + 1 : i + 3], "little"))
    size = header_size(buf[i + 4])
    if total is None or total < size + 3 or buf[i + 3] & 0x10:
        return False
    if len(buf) < i + size:
        return None
    hcs = int.from_bytes(buf[i + size - 2 : i + size], "little")
    return crc16_x25(buf[i + 1 : i + size - 2]) == hcs


def frame_length_at(buf: bytes | bytearray, i: int) -> int:
    """The frame length announced at `buf[i]` (call once the L bytes are buffered)."""
    return decode_length(int.from_bytes(buf[i + 1 : i + 3], "little")) or 0


def frame_ok_at(buf: bytes | bytearray, i: int, length: int) -> tuple[bool, bool]:
    """(structure ok: `68` at the start, `16` at the end; FCS ok) for a complete candidate."""
    end = i + length
    structure = buf[i] == START and buf[end - 1] == END
    fcs = int.from_bytes(buf[end - 3 : end - 1], "little")
    return structure, structure and crc16_x25(buf[i + 1 : end - 3]) == fcs


def parse_frame(raw: bytes) -> Frame:
    """Parse exactly one frame (leading FE allowed). Raises TruncatedFrame, ChecksumError or
    FrameError, each naming the address once it can be read."""
    _, f = strip_preamble(raw)
    if len(f) < MIN_HEADER + 3 or f[0] != START:
        raise TruncatedFrame(f"not a DL/T 698.45 frame (68 L L C AF SA CA HCS ... FCS 16): {raw.hex(' ')}")
    field = int.from_bytes(f[1:3], "little")
    total, size = decode_length(field), header_size(f[4])
    if total is None:
        raise FrameError(f"length field {field:04X}: reserved bit set or longer than {MAX_FRAME} bytes")
    if len(f) < size:
        raise TruncatedFrame(f"frame of {len(f)} bytes, its header needs {size}: {raw.hex(' ')}")
    address = address_from_wire(f[4], f[5 : 5 + (f[4] & 0x0F) + 1])
    if total < size + 3:
        raise FrameError(f"{address}: L={field} is shorter than the header: {raw.hex(' ')}")
    if len(f) < total:
        raise TruncatedFrame(f"{address}: frame of {len(f)} bytes, L needs {total}: {raw.hex(' ')}")
    if len(f) > total:
        raise FrameError(f"{address}: {len(f) - total} bytes after the end of the frame: {raw.hex(' ')}")
    if f[-1] != END:
        raise FrameError(f"{address}: frame ends {f[-1]:02X}, not 16: {raw.hex(' ')}")
    if f[3] & 0x10:
        raise FrameError(f"{address}: control byte {f[3]:02X} has the reserved bit 4 set")
    _check_crc(f[1 : size - 2], f[size - 2 : size], "HCS", address, raw)
    _check_crc(f[1:-3], f[-3:-1], "FCS", address, raw)
    data = f[size:-3]
    return Frame(address, f[3], unscramble(data) if f[3] & SC else data, f[size - 3])


def _check_crc(covered: bytes, got: bytes, name: str, address: Address, raw: bytes) -> None:
    expected = crc16_x25(covered)
    value = int.from_bytes(got, "little")
    if value != expected:
        raise ChecksumError(f"{address}: {name} {value:04X} != computed {expected:04X}: {raw.hex(' ')}")
