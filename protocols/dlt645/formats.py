"""DL/T 645 value formats: packed BCD (with decimals and a sign bit), digit strings, dates/times, bit
words and fixed records; each value goes out least-significant byte first (dlt645.md §1.9).

Layer: pure codec (protocols). Must not: read clocks (a date is always given), know DIs or names.
The +0x33 is not handled here: these codecs see the plain DATA bytes.

Decoding returns `None` for fill values: a field made only of `FF` (what a meter puts in a block for
an item it lacks) or `EE` (a concentrator's "invalid"), and for an all-zero date (no event recorded;
an all-zero `hhmmss` is midnight). Any other non-BCD nibble is a DecodeError; every error message
starts with `where` (the item).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final, TypeAlias

from ..errors import DecodeError
from .errors import EncodeError

Scalar: TypeAlias = float | int | str | dt.datetime | dt.date | dt.time | None
Value: TypeAlias = Scalar | dict[str, Scalar]

_FILL: Final = (0xFF, 0xEE)
_LAYOUTS: Final = ("YYMMDDhhmmss", "YYMMDDhhmm", "YYMMDDWW", "YYMMDDWWhhmmss", "hhmmss")


@dataclass(frozen=True, slots=True)
class Bcd:
    """`size` bytes of packed BCD, `decimals` after the point; `signed`: the top bit of the most
    significant byte is the sign (1 = negative); `integer`: decode to int (counts, constants)."""

    size: int
    decimals: int = 0
    signed: bool = False
    integer: bool = False

    @property
    def limit(self) -> int:
        """Largest magnitude in units of the last digit."""
        return int((8 if self.signed else 10) * 10 ** (2 * self.size - 1) - 1)


@dataclass(frozen=True, slots=True)
class Digits:
    """`size` bytes of BCD read as a digit string (addresses, meter numbers, `DDhh`)."""

    size: int


@dataclass(frozen=True, slots=True)
class Stamp:
    """A BCD date/time in the written order of `layout` (one of _LAYOUTS); the wire carries it lowest
    unit first, e.g. `YYMMDDhhmmss` -> `ss mm hh DD MM YY`. WW is the weekday, 0 = Sunday."""

    layout: str

    def __post_init__(self) -> None:
        if self.layout not in _LAYOUTS:
            raise ValueError(f"unknown date layout {self.layout!r}")

    @property
    def size(self) -> int:
        return len(self.layout) // 2


@dataclass(frozen=True, slots=True)
class Word:
    """A bit field of `size` bytes (status words): decoded as an unsigned int, never as fill."""

    size: int


@dataclass(frozen=True, slots=True)
class Record:
    """Fixed fields one after another, each in its own format (e.g. demand + the time it occurred)."""

    fields: tuple[tuple[str, Bcd | Digits | Stamp | Word], ...]

    @property
    def size(self) -> int:
        return sum(f.size for _, f in self.fields)


Format: TypeAlias = Bcd | Digits | Stamp | Word | Record


def _is_fill(raw: bytes) -> bool:
    return len(raw) > 0 and any(raw == bytes((b,)) * len(raw) for b in _FILL)


def _bcd_text(raw: bytes, where: str) -> str:
    text = raw[::-1].hex()
    if not text.isdigit():
        raise DecodeError(f"{where}: {raw.hex(' ')} is not BCD")
    return text


def decode(fmt: Format, raw: bytes, where: str) -> Value:
    if len(raw) != fmt.size:
        raise DecodeError(f"{where}: {len(raw)} bytes, the format needs {fmt.size}: {raw.hex(' ')}")
    if isinstance(fmt, Record):
        out: dict[str, Scalar] = {}
        offset = 0
        for name, part in fmt.fields:
            out[name] = _decode_scalar(part, raw[offset : offset + part.size], f"{where}.{name}")
            offset += part.size
        return out
    return _decode_scalar(fmt, raw, where)


def _decode_scalar(fmt: Bcd | Digits | Stamp | Word, raw: bytes, where: str) -> Scalar:
    if isinstance(fmt, Word):
        return int.from_bytes(raw, "little")
    if _is_fill(raw):
        return None
    if isinstance(fmt, Digits):
        return _bcd_text(raw, where)
    if isinstance(fmt, Stamp):
        return _decode_stamp(fmt, raw, where)
    negative = fmt.signed and bool(raw[-1] & 0x80)
    if negative:
        raw = raw[:-1] + bytes((raw[-1] & 0x7F,))
    number = int(_bcd_text(raw, where)) * (-1 if negative else 1)
    if fmt.integer:
        return number
    return round(number / 10**fmt.decimals, fmt.decimals) if fmt.decimals else float(number)


def _decode_stamp(fmt: Stamp, raw: bytes, where: str) -> Scalar:
    text = _bcd_text(raw, where)
    if int(text) == 0 and fmt.layout != "hhmmss":
        return None  # an event record that never happened; 00:00:00 is a real time of day
    parts = {fmt.layout[i : i + 2]: int(text[i : i + 2]) for i in range(0, len(text), 2)}
    try:
        if fmt.layout == "hhmmss":
            return dt.time(parts["hh"], parts["mm"], parts["ss"])
        date = dt.date(2000 + parts["YY"], parts["MM"], parts["DD"])
        if "hh" not in parts:
            return date
        return dt.datetime.combine(date, dt.time(parts["hh"], parts["mm"], parts.get("ss", 0)))
    except ValueError as exc:
        raise DecodeError(f"{where}: {text} is not a valid {fmt.layout}: {exc}") from None


def encode(fmt: Format, value: Value, where: str) -> bytes:
    if isinstance(fmt, Record):
        if value is None:
            return b"\xff" * fmt.size
        if not isinstance(value, dict):
            raise EncodeError(f"{where}: expected a mapping of {[n for n, _ in fmt.fields]}, got {value!r}")
        return b"".join(_encode_scalar(part, value.get(name), f"{where}.{name}") for name, part in fmt.fields)
    if isinstance(value, dict):
        raise EncodeError(f"{where}: expected a single value, got a mapping")
    return _encode_scalar(fmt, value, where)


def _encode_scalar(fmt: Bcd | Digits | Stamp | Word, value: Scalar, where: str) -> bytes:
    if value is None:
        return b"\xff" * fmt.size
    if isinstance(fmt, Word):
        if not isinstance(value, int) or not 0 <= value < 1 << (8 * fmt.size):
            raise EncodeError(f"{where}: {value!r} is not a {8 * fmt.size}-bit word")
        return value.to_bytes(fmt.size, "little")
    if isinstance(fmt, Digits):
        if not isinstance(value, str) or len(value) != 2 * fmt.size or not value.isdigit():
            raise EncodeError(f"{where}: {value!r} is not a string of {2 * fmt.size} digits")
        return bytes.fromhex(value)[::-1]
    if isinstance(fmt, Stamp):
        return _encode_stamp(fmt, value, where)
    return _encode_bcd(fmt, value, where)


def _encode_bcd(fmt: Bcd, value: Scalar, where: str) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EncodeError(f"{where}: {value!r} is not a number")
    scaled = round(value * 10**fmt.decimals)
    if scaled < 0 and not fmt.signed:
        raise EncodeError(f"{where}: {value} is negative and the item is unsigned")
    if abs(scaled) > fmt.limit:
        raise EncodeError(f"{where}: {value} does not fit {fmt.size} BCD bytes with {fmt.decimals} decimals")
    raw = bytes.fromhex(f"{abs(scaled):0{2 * fmt.size}d}")[::-1]
    return raw[:-1] + bytes((raw[-1] | 0x80,)) if scaled < 0 else raw


def _encode_stamp(fmt: Stamp, value: Scalar, where: str) -> bytes:
    if fmt.layout == "hhmmss":
        if not isinstance(value, dt.time | dt.datetime):
            raise EncodeError(f"{where}: {value!r} is not a time")
        t = value if isinstance(value, dt.time) else value.time()
        return _stamp_bytes((t.hour, t.minute, t.second))
    if not isinstance(value, dt.date) or not 2000 <= value.year <= 2099:
        raise EncodeError(f"{where}: {value!r} is not a date in 2000..2099")
    fields = [value.year - 2000, value.month, value.day]
    if "WW" in fmt.layout:
        fields.append(value.isoweekday() % 7)
    if "hh" in fmt.layout:
        if not isinstance(value, dt.datetime):
            raise EncodeError(f"{where}: {value!r} has no time of day")
        fields += [value.hour, value.minute] + ([value.second] if fmt.layout.endswith("ss") else [])
    return _stamp_bytes(tuple(fields))


def _stamp_bytes(fields: tuple[int, ...]) -> bytes:
    """Fields in written order (most significant first) -> wire bytes (least significant first)."""
    return bytes.fromhex("".join(f"{f:02d}" for f in fields))[::-1]
