"""A-XDR primitives of DL/T 698.45: a bounds-checked byte reader and a writer, the variable-length
count (one byte < 128, else `8n` + n big-endian bytes) and big-endian fixed-width integers.

Layer: pure codec (protocols). Must not: know data types or APDUs (that is `axdr`, `apdu`).

Every read past the end raises DecodeError naming what was being read and the offset, so a malformed
APDU from a meter or a fuzzer never escapes as IndexError or struct.error.
"""

from __future__ import annotations

import struct
from typing import Final

from ..errors import DecodeError
from .errors import EncodeError

MAX_LENGTH_BYTES: Final = 4  # `84 hh hh ll ll`: larger counts cannot occur in a 16 kB frame


class Reader:
    """Reads A-XDR fields from `data`; `what` prefixes every error (e.g. "meter 123456789012 APDU")."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str = "APDU", pos: int = 0) -> None:
        self.data = data
        self.pos = pos
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def error(self, message: str) -> DecodeError:
        return DecodeError(f"{self.what}: {message} at offset {self.pos}: {self.data.hex(' ')}")

    def take(self, n: int, field: str = "bytes") -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.error(f"{field}: needs {n} bytes, {self.remaining} left")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, field: str = "byte") -> int:
        return self.take(1, field)[0]

    def uint(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "big")

    def sint(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "big", signed=True)

    def float(self, size: int, field: str) -> float:
        raw = self.take(size, field)
        value: float = struct.unpack(">f" if size == 4 else ">d", raw)[0]
        return value

    def length(self, field: str = "length") -> int:
        first = self.u8(field)
        if first < 0x80:
            return first
        n = first & 0x7F
        if not 1 <= n <= MAX_LENGTH_BYTES:
            raise self.error(f"{field}: length prefix {first:02X} (1..{MAX_LENGTH_BYTES} bytes allowed)")
        return self.uint(n, field)

    def count(self, field: str, min_item: int = 1) -> int:
        """A SEQUENCE OF count, refused at once when the bytes left cannot hold that many items."""
        n = self.length(field)
        if n * min_item > self.remaining:
            raise self.error(f"{field}: {n} items cannot fit in {self.remaining} bytes")
        return n

    def octets(self, field: str) -> bytes:
        return self.take(self.length(field), field)

    def end(self) -> None:
        if self.remaining:
            raise self.error(f"{self.remaining} bytes after the end")


class Writer:
    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self.buf)

    def raw(self, data: bytes) -> Writer:
        self.buf += data
        return self

    def u8(self, value: int, field: str = "byte") -> Writer:
        return self.uint(value, 1, field)

    def uint(self, value: int, size: int, field: str) -> Writer:
        if not 0 <= value < 1 << (8 * size):
            raise EncodeError(f"{field}: {value} does not fit {size} unsigned bytes")
        self.buf += value.to_bytes(size, "big")
        return self

    def sint(self, value: int, size: int, field: str) -> Writer:
        bound = 1 << (8 * size - 1)
        if not -bound <= value < bound:
            raise EncodeError(f"{field}: {value} does not fit {size} signed bytes")
        self.buf += value.to_bytes(size, "big", signed=True)
        return self

    def float(self, value: float, size: int) -> Writer:
        try:
            self.buf += struct.pack(">f" if size == 4 else ">d", value)
        except (OverflowError, struct.error) as exc:
            raise EncodeError(f"float{8 * size}: {value}: {exc}") from None
        return self

    def length(self, n: int, field: str = "length") -> Writer:
        if n < 0:
            raise EncodeError(f"{field}: negative length {n}")
        if n < 0x80:
            return self.u8(n)
        size = (n.bit_length() + 7) // 8
        if size > MAX_LENGTH_BYTES:
            raise EncodeError(f"{field}: length {n} too large")
        self.buf.append(0x80 | size)
        self.buf += n.to_bytes(size, "big")
        return self

    def octets(self, data: bytes, field: str = "octet-string") -> Writer:
        return self.length(len(data), field).raw(data)
