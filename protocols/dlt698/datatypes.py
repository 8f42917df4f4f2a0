"""DL/T 698.45 fixed-layout A-XDR types: dates and times, bit-strings, OAD / OMD / ROAD, TI, TSA,
Scaler_Unit, COMDCB, SID and SID_MAC, each with `encode(writer)` and `decode(reader)`.

Layer: pure codec (protocols). Must not: know the tagged Data tree or APDUs (that is `axdr`, `apdu`).

dlt698.md §3: integers big-endian; a date field `FF` (year `FFFF`) means "unspecified", kept as is so
that every value round-trips; `to_datetime()` gives None for such a value. An OAD is OI (2 bytes),
attribute (bits 0-4 number, bits 5-7 feature) and index (0 = the whole attribute, n = its n-th element).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..errors import DecodeError
from .wire import Reader, Writer

UNSPECIFIED = 0xFF


@dataclass(frozen=True, slots=True)
class Oad:
    oi: int
    attribute: int
    index: int = 0

    @classmethod
    def parse(cls, text: str) -> Oad:
        """`Oad.parse("00100201")`: 8 hex digits, OI attribute index."""
        try:
            value = int(text, 16)
        except ValueError:
            raise DecodeError(f"OAD {text!r}: not 8 hex digits") from None
        if len(text.strip()) != 8:
            raise DecodeError(f"OAD {text!r}: not 8 hex digits")
        return cls(value >> 16, (value >> 8) & 0xFF, value & 0xFF)

    @property
    def number(self) -> int:
        return self.attribute & 0x1F

    @property
    def feature(self) -> int:
        return self.attribute >> 5

    def whole(self) -> Oad:
        return Oad(self.oi, self.attribute, 0)

    def encode(self, w: Writer) -> None:
        w.uint(self.oi, 2, "OI").u8(self.attribute, "attribute").u8(self.index, "index")

    @classmethod
    def decode(cls, r: Reader) -> Oad:
        return cls(r.uint(2, "OI"), r.u8("attribute"), r.u8("index"))

    def __str__(self) -> str:
        return f"{self.oi:04X}{self.attribute:02X}{self.index:02X}"


@dataclass(frozen=True, slots=True)
class Omd:
    oi: int
    method: int
    mode: int = 0

    def encode(self, w: Writer) -> None:
        w.uint(self.oi, 2, "OI").u8(self.method, "method").u8(self.mode, "mode")

    @classmethod
    def decode(cls, r: Reader) -> Omd:
        return cls(r.uint(2, "OI"), r.u8("method"), r.u8("mode"))

    def __str__(self) -> str:
        return f"{self.oi:04X}{self.method:02X}{self.mode:02X}"


@dataclass(frozen=True, slots=True)
class Road:
    """A record OAD with the OADs of its columns (a ROAD column of a record read)."""

    oad: Oad
    columns: tuple[Oad, ...] = ()

    def encode(self, w: Writer) -> None:
        self.oad.encode(w)
        w.length(len(self.columns), "ROAD columns")
        for oad in self.columns:
            oad.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> Road:
        oad = Oad.decode(r)
        return cls(oad, tuple(Oad.decode(r) for _ in range(r.count("ROAD columns", 4))))

    def __str__(self) -> str:
        return f"{self.oad}[{','.join(map(str, self.columns))}]"


@dataclass(frozen=True, slots=True)
class DateTime:
    """date_time: year, month, day, weekday (0 = Sunday), hour, minute, second, milliseconds."""

    year: int
    month: int
    day: int
    weekday: int
    hour: int
    minute: int
    second: int
    ms: int = 0

    def encode(self, w: Writer) -> None:
        w.uint(self.year, 2, "year")
        for name in ("month", "day", "weekday", "hour", "minute", "second"):
            w.u8(getattr(self, name), name)
        w.uint(self.ms, 2, "milliseconds")

    @classmethod
    def decode(cls, r: Reader) -> DateTime:
        year, month, day, weekday = r.uint(2, "year"), r.u8("month"), r.u8("day"), r.u8("weekday")
        hour, minute, second = r.u8("hour"), r.u8("minute"), r.u8("second")
        return cls(year, month, day, weekday, hour, minute, second, r.uint(2, "milliseconds"))

    @classmethod
    def of(cls, when: dt.datetime) -> DateTime:
        weekday = (when.weekday() + 1) % 7
        ms = when.microsecond // 1000
        return cls(when.year, when.month, when.day, weekday, when.hour, when.minute, when.second, ms)

    def to_datetime(self) -> dt.datetime | None:
        return _datetime((self.year, self.month, self.day, self.hour, self.minute, self.second), self.ms)


@dataclass(frozen=True, slots=True)
class DateTimeS:
    """date_time_s: year, month, day, hour, minute, second (what meters use for clock and freezes)."""

    year: int
    month: int
    day: int
    hour: int = 0
    minute: int = 0
    second: int = 0

    def encode(self, w: Writer) -> None:
        w.uint(self.year, 2, "year")
        for name in ("month", "day", "hour", "minute", "second"):
            w.u8(getattr(self, name), name)

    @classmethod
    def decode(cls, r: Reader) -> DateTimeS:
        return cls(r.uint(2, "year"), *(r.u8("date_time_s") for _ in range(5)))

    @classmethod
    def of(cls, when: dt.datetime) -> DateTimeS:
        return cls(when.year, when.month, when.day, when.hour, when.minute, when.second)

    def to_datetime(self) -> dt.datetime | None:
        return _datetime((self.year, self.month, self.day, self.hour, self.minute, self.second), 0)

    def __str__(self) -> str:
        date = f"{self.year:04d}-{self.month:02d}-{self.day:02d}"
        return f"{date} {self.hour:02d}:{self.minute:02d}:{self.second:02d}"


@dataclass(frozen=True, slots=True)
class Date:
    year: int
    month: int
    day: int
    weekday: int

    def encode(self, w: Writer) -> None:
        w.uint(self.year, 2, "year").u8(self.month, "month").u8(self.day, "day").u8(self.weekday, "weekday")

    @classmethod
    def decode(cls, r: Reader) -> Date:
        return cls(r.uint(2, "year"), r.u8("month"), r.u8("day"), r.u8("weekday"))


@dataclass(frozen=True, slots=True)
class Time:
    hour: int
    minute: int
    second: int

    def encode(self, w: Writer) -> None:
        w.u8(self.hour, "hour").u8(self.minute, "minute").u8(self.second, "second")

    @classmethod
    def decode(cls, r: Reader) -> Time:
        return cls(r.u8("hour"), r.u8("minute"), r.u8("second"))


def _datetime(fields: tuple[int, int, int, int, int, int], ms: int) -> dt.datetime | None:
    y, mo, d, h, mi, s = fields
    if UNSPECIFIED in (mo, d, h, mi, s) or y == 0xFFFF:
        return None
    try:
        return dt.datetime(y, mo, d, h, mi, s, ms * 1000 if ms < 1000 else 0)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class BitString:
    """`bits` bits (the wire count is in bits, dlt698.md §7 "Pitfalls"), `data` the ceil(bits/8) bytes;
    bit 0 is the most significant bit of the first byte."""

    bits: int
    data: bytes

    def __post_init__(self) -> None:
        if len(self.data) != (self.bits + 7) // 8:
            raise DecodeError(f"bit-string of {self.bits} bits needs {(self.bits + 7) // 8} bytes")

    def bit(self, n: int) -> bool:
        return 0 <= n < self.bits and bool(self.data[n // 8] >> (7 - n % 8) & 1)

    def set_bits(self) -> tuple[int, ...]:
        return tuple(n for n in range(self.bits) if self.bit(n))

    def encode(self, w: Writer) -> None:
        w.length(self.bits, "bit-string length").raw(self.data)

    @classmethod
    def decode(cls, r: Reader) -> BitString:
        bits = r.length("bit-string length")
        return cls(bits, r.take((bits + 7) // 8, "bit-string"))

    def __str__(self) -> str:
        return "".join("1" if self.bit(n) else "0" for n in range(self.bits))


@dataclass(frozen=True, slots=True)
class Ti:
    """Time interval: unit 0 s, 1 min, 2 h, 3 day, 4 month, 5 year; `value` long-unsigned."""

    unit: int
    value: int

    def encode(self, w: Writer) -> None:
        w.u8(self.unit, "TI unit").uint(self.value, 2, "TI value")

    @classmethod
    def decode(cls, r: Reader) -> Ti:
        return cls(r.u8("TI unit"), r.uint(2, "TI value"))


@dataclass(frozen=True, slots=True)
class Tsa:
    """A target server address as sent: an AF-like byte then the address bytes (kept raw)."""

    data: bytes

    def encode(self, w: Writer) -> None:
        w.octets(self.data, "TSA")

    @classmethod
    def decode(cls, r: Reader) -> Tsa:
        return cls(r.octets("TSA"))


@dataclass(frozen=True, slots=True)
class ScalerUnit:
    """`59 FE 21` = 10^-2 kWh; unit codes: 27 W, 33 kWh, 36 A, 38 V, 47 Hz, 51 %."""

    scaler: int
    unit: int

    def encode(self, w: Writer) -> None:
        w.sint(self.scaler, 1, "scaler").u8(self.unit, "unit")

    @classmethod
    def decode(cls, r: Reader) -> ScalerUnit:
        return cls(r.sint(1, "scaler"), r.u8("unit"))


@dataclass(frozen=True, slots=True)
class Comdcb:
    """Serial settings: baud code (6 = 9600), parity, data bits, stop bits, flow control."""

    baud: int
    parity: int
    data_bits: int
    stop_bits: int
    flow: int

    def encode(self, w: Writer) -> None:
        for name in ("baud", "parity", "data_bits", "stop_bits", "flow"):
            w.u8(getattr(self, name), name)

    @classmethod
    def decode(cls, r: Reader) -> Comdcb:
        return cls(*(r.u8("COMDCB") for _ in range(5)))


@dataclass(frozen=True, slots=True)
class Sid:
    """Security identifier: 4-byte identity plus additional data."""

    ident: int
    extra: bytes

    def encode(self, w: Writer) -> None:
        w.uint(self.ident, 4, "SID").octets(self.extra, "SID data")

    @classmethod
    def decode(cls, r: Reader) -> Sid:
        return cls(r.uint(4, "SID"), r.octets("SID data"))


@dataclass(frozen=True, slots=True)
class SidMac:
    sid: Sid
    mac: bytes

    def encode(self, w: Writer) -> None:
        self.sid.encode(w)
        w.octets(self.mac, "MAC")

    @classmethod
    def decode(cls, r: Reader) -> SidMac:
        return cls(Sid.decode(r), r.octets("MAC"))
