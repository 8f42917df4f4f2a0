"""DL/T 698.45 link-layer fragmentation (C bit 5): split an APDU into fragments, and reassemble them.

Layer: pure codec (protocols). Must not: send the acknowledgements itself or time anything out; the
caller sends `ack_frame(...)` for each first/middle fragment and decides when a transfer is abandoned.

dlt698.md §1 "Fragments": the user data of a fragment starts with a 2-byte little-endian word, bits 0-11
the sequence number (dlt698_rs masks 11 bits; we use 12 as 600888 does), bits 14-15 the type:
0 first, 1 last, 2 acknowledgement, 3 middle. The receiver acknowledges every first and middle
fragment with the same sequence and no data; the last is not acknowledged (checked: last seq 2 =
`02 40`, ack seq 1 = `01 80`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from .errors import FragmentError
from .frame import FRAGMENT, MAX_FRAME, Frame

SEQUENCE_MASK: Final = 0x0FFF
MAX_APDU: Final = 64 * 1024  # a reassembly larger than this is refused (bounded memory)


class FragmentType(enum.IntEnum):
    FIRST = 0
    LAST = 1
    ACK = 2
    MIDDLE = 3


@dataclass(frozen=True, slots=True)
class Fragment:
    sequence: int
    type: FragmentType
    data: bytes = b""

    def encode(self) -> bytes:
        if not 0 <= self.sequence <= SEQUENCE_MASK:
            raise FragmentError(f"fragment sequence {self.sequence} outside 0..4095")
        return (self.sequence | self.type << 14).to_bytes(2, "little") + self.data


def parse_fragment(user_data: bytes) -> Fragment:
    if len(user_data) < 2:
        raise FragmentError(f"fragment of {len(user_data)} bytes has no 2-byte header: {user_data.hex(' ')}")
    word = int.from_bytes(user_data[:2], "little")
    return Fragment(word & SEQUENCE_MASK, FragmentType(word >> 14), user_data[2:])


def split_apdu(apdu: bytes, size: int) -> list[Fragment]:
    """`apdu` in fragments of at most `size` bytes each (first, middles, last); an APDU that fits one
    fragment is refused: send it unfragmented."""
    if not 1 <= size <= MAX_FRAME - 64:
        raise FragmentError(f"fragment size {size} outside 1..{MAX_FRAME - 64}")
    pieces = [apdu[i : i + size] for i in range(0, len(apdu), size)]
    if len(pieces) < 2:
        raise FragmentError(f"APDU of {len(apdu)} bytes fits one fragment of {size}: send it unfragmented")
    if len(pieces) > SEQUENCE_MASK + 1:
        raise FragmentError(f"APDU of {len(apdu)} bytes needs more than 4096 fragments of {size}")
    out = []
    for n, piece in enumerate(pieces):
        kind = FragmentType.FIRST if n == 0 else FragmentType.MIDDLE
        out.append(Fragment(n, FragmentType.LAST if n == len(pieces) - 1 else kind, piece))
    return out


def ack_frame(received: Frame) -> Frame:
    """The acknowledgement of a first/middle fragment: same address and CA, the other direction."""
    fragment = parse_fragment(received.data)
    ack = Fragment(fragment.sequence, FragmentType.ACK)
    return Frame(received.address, (received.control ^ 0x80) | FRAGMENT, ack.encode(), received.ca)


class Reassembler:
    """Collects the fragments of one APDU in order. `add(frame)` returns the whole APDU once the last
    fragment arrives, else None; it raises FragmentError for a gap, a repeat out of order, a fragment
    without a first one, or a reassembly over `max_apdu` bytes (the partial APDU is dropped; `dropped`
    counts the fragments thrown away). A repeated fragment (the sender did not get our ack) is ignored
    and counted in `duplicates`."""

    def __init__(self, max_apdu: int = MAX_APDU) -> None:
        self.max_apdu = max_apdu
        self.dropped = 0
        self.duplicates = 0
        self._parts: list[bytes] = []
        self._next = 0

    @property
    def in_progress(self) -> bool:
        return bool(self._parts)

    def add(self, frame: Frame) -> bytes | None:
        fragment = parse_fragment(frame.data)
        if fragment.type == FragmentType.ACK:
            raise FragmentError(f"{frame.address}: an acknowledgement (seq {fragment.sequence}) is not data")
        if fragment.type == FragmentType.FIRST:
            self._drop()
            self._next = fragment.sequence
        elif not self._parts:
            self.dropped += 1
            raise FragmentError(f"{frame.address}: fragment {fragment.sequence} without a first fragment")
        elif fragment.sequence == (self._next - 1) & SEQUENCE_MASK:
            self.duplicates += 1
            return None
        elif fragment.sequence != self._next:
            got = len(self._parts) + 1
            self._drop()
            raise FragmentError(
                f"{frame.address}: fragment {fragment.sequence} where {self._next} was due ({got} dropped)"
            )
        self._parts.append(fragment.data)
        self._next = (fragment.sequence + 1) & SEQUENCE_MASK
        if sum(map(len, self._parts)) > self.max_apdu:
            self._drop()
            raise FragmentError(f"{frame.address}: reassembled APDU over {self.max_apdu} bytes")
        if fragment.type != FragmentType.LAST:
            return None
        apdu = b"".join(self._parts)
        self._parts = []
        return apdu

    def reset(self) -> None:
        """Abandon a partial APDU (the caller's deadline passed); its fragments count as dropped."""
        self._drop()

    def _drop(self) -> None:
        self.dropped += len(self._parts)
        self._parts = []
