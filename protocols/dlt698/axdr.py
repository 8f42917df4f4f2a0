"""DL/T 698.45 A-XDR data: the tagged `Data` tree (dlt698.md §3) and the selector types that carry
Data inside them (Region, MS, CSD, RCSD, RSD).

Layer: pure codec (protocols). Must not: know APDUs or what an object means (`apdu`, `objects`).

`Data(type, value)`: the Python value per type is None (null), a tuple of Data (array, structure),
bool, int (the integer types, enum, OI), float, bytes (octet-string, MAC, RN), str (visible-string,
read as Latin-1 so any byte round-trips; UTF8-string) or one of the classes of `datatypes`. Encoding
checks the value against its type and raises EncodeError naming it; decoding raises DecodeError with the
offset. Nesting is limited to `MAX_DEPTH` (a fuzzed `01 01 01 …` must not exhaust the stack).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .datatypes import DateTimeS, Oad, Road, Ti, Tsa
from .errors import EncodeError
from .tags import FIXED, INTEGERS, DataType, T
from .wire import Reader, Writer

MAX_DEPTH: Final = 16


@dataclass(frozen=True, slots=True)
class Data:
    type: DataType
    value: Any = None

    @classmethod
    def array(cls, *items: Data) -> Data:
        return cls(T.ARRAY, tuple(items))

    @classmethod
    def structure(cls, *items: Data) -> Data:
        return cls(T.STRUCTURE, tuple(items))

    def encode(self) -> bytes:
        w = Writer()
        encode_data(w, self)
        return w.getvalue()

    @classmethod
    def decode(cls, raw: bytes, what: str = "Data") -> Data:
        r = Reader(raw, what)
        data = decode_data(r)
        r.end()
        return data

    def items(self) -> tuple[Data, ...]:
        return self.value if self.type in (T.ARRAY, T.STRUCTURE) else ()


NULL: Final = Data(T.NULL)


@dataclass(frozen=True, slots=True)
class Region:
    """unit 0 [start, end), 1 (start, end], 2 [start, end], 3 (start, end)."""

    unit: int
    start: Data
    end: Data


@dataclass(frozen=True, slots=True)
class Ms:
    """Meter set: 0 none, 1 all, 2 user types (unsigned), 3 addresses (TSA), 4 configuration numbers
    (long-unsigned), 5/6/7 regions of those three."""

    choice: int
    items: tuple[int | Tsa | Region, ...] = ()


@dataclass(frozen=True, slots=True)
class Csd:
    """A column: one OAD, or a ROAD (a record object with its own columns)."""

    target: Oad | Road


@dataclass(frozen=True, slots=True)
class Rsd:
    """Row selector. 0 none; 1 `oad` = `values[0]`; 2 `oad` in [values[0], values[1]) every
    values[2]; 3 `ranges` (selectors 2); 4/5 `times[0]` + `ms`; 6/7/8 `times[0..1]`, `ti`, `ms`;
    9 the `n`-th latest record; 10 the latest `n` records of `ms`."""

    selector: int
    oad: Oad | None = None
    values: tuple[Data, ...] = ()
    ranges: tuple[Rsd, ...] = ()
    times: tuple[DateTimeS, ...] = ()
    ti: Ti | None = None
    ms: Ms | None = None
    n: int = 0

    @classmethod
    def last(cls, n: int = 1) -> Rsd:
        """Selector 9: the n-th latest record (1 = the latest)."""
        return cls(9, n=n)

    @classmethod
    def time_range(cls, oad: Oad, start: DateTimeS, end: DateTimeS, interval: Data = NULL) -> Rsd:
        """Selector 2: records whose `oad` (20210200 freeze time, 201E0200 event start) is in [start, end)."""
        return cls(2, oad, (Data(T.DATE_TIME_S, start), Data(T.DATE_TIME_S, end), interval))

    @classmethod
    def equal(cls, oad: Oad, value: Data) -> Rsd:
        """Selector 1: the record whose `oad` equals `value`."""
        return cls(1, oad, (value,))


Rcsd = tuple[Csd, ...]


# ---- encoding -------------------------------------------------------------------------------------


def encode_data(w: Writer, data: Data) -> None:
    t, v = data.type, data.value
    w.u8(int(t), "type")
    try:
        _encode_value(w, t, v)
    except (TypeError, AttributeError, ValueError, UnicodeEncodeError) as exc:
        raise EncodeError(f"{t.name.lower()}: cannot encode {v!r}: {exc}") from None


def _encode_value(w: Writer, t: DataType, v: Any) -> None:
    if t == T.NULL:
        if v is not None:
            raise EncodeError(f"null: value must be None, got {v!r}")
    elif t in (T.ARRAY, T.STRUCTURE):
        w.length(len(v), t.name.lower())
        for item in v:
            encode_data(w, _check(item, Data, t))
    elif t == T.BOOL:
        w.u8(1 if _check(v, bool, t) else 0)
    elif t in INTEGERS:
        size, signed = INTEGERS[t]
        if isinstance(v, bool) or not isinstance(v, int):
            raise EncodeError(f"{t.name.lower()}: value must be an int, got {v!r}")
        (w.sint if signed else w.uint)(v, size, t.name.lower())
    elif t in (T.OCTET_STRING, T.MAC, T.RN):
        w.octets(_check(v, bytes, t), t.name.lower())
    elif t == T.VISIBLE_STRING:
        w.octets(_check(v, str, t).encode("latin-1"), "visible-string")
    elif t == T.UTF8_STRING:
        w.octets(_check(v, str, t).encode("utf-8"), "utf8-string")
    elif t in (T.FLOAT32, T.FLOAT64):
        w.float(float(v), 4 if t == T.FLOAT32 else 8)
    elif t in FIXED:
        _check(v, FIXED[t], t).encode(w)
    elif t == T.REGION:
        encode_region(w, _check(v, Region, t))
    elif t == T.RSD:
        encode_rsd(w, _check(v, Rsd, t))
    elif t == T.CSD:
        encode_csd(w, _check(v, Csd, t))
    elif t == T.MS:
        encode_ms(w, _check(v, Ms, t))
    elif t == T.RCSD:
        encode_rcsd(w, v)
    else:  # pragma: no cover - every DataType is handled above
        raise EncodeError(f"data type {t} cannot be encoded")


def _check(value: Any, kind: Any, t: DataType) -> Any:
    if not isinstance(value, kind):
        raise EncodeError(f"{t.name.lower()}: expected {kind.__name__}, got {value!r}")
    return value


def encode_region(w: Writer, region: Region) -> None:
    w.u8(region.unit, "region unit")
    encode_data(w, region.start)
    encode_data(w, region.end)


def encode_ms(w: Writer, ms: Ms) -> None:
    w.u8(ms.choice, "MS choice")
    if ms.choice in (0, 1):
        return
    if not 2 <= ms.choice <= 7:
        raise EncodeError(f"MS choice {ms.choice} outside 0..7")
    w.length(len(ms.items), "MS items")
    for item in ms.items:
        if ms.choice == 2:
            w.u8(_check(item, int, T.UNSIGNED), "user type")
        elif ms.choice == 3:
            _check(item, Tsa, T.TSA).encode(w)
        elif ms.choice == 4:
            w.uint(_check(item, int, T.LONG_UNSIGNED), 2, "configuration number")
        else:
            encode_region(w, _check(item, Region, T.REGION))


def encode_csd(w: Writer, csd: Csd) -> None:
    w.u8(1 if isinstance(csd.target, Road) else 0, "CSD choice")
    csd.target.encode(w)


def encode_rcsd(w: Writer, rcsd: Rcsd) -> None:
    w.length(len(rcsd), "RCSD")
    for csd in rcsd:
        encode_csd(w, _check(csd, Csd, T.CSD))


def encode_rsd(w: Writer, rsd: Rsd) -> None:
    s = rsd.selector
    w.u8(s, "RSD selector")
    if s == 0:
        return
    if s in (1, 2):
        expected = 1 if s == 1 else 3
        if rsd.oad is None or len(rsd.values) != expected:
            raise EncodeError(f"RSD selector {s}: needs an OAD and {expected} values")
        rsd.oad.encode(w)
        for value in rsd.values:
            encode_data(w, value)
    elif s == 3:
        w.length(len(rsd.ranges), "RSD selector 3")
        for sub in rsd.ranges:
            if sub.selector != 2:
                raise EncodeError("RSD selector 3: every item must be a selector 2")
            buf = Writer()
            encode_rsd(buf, sub)
            w.raw(buf.getvalue()[1:])
    elif s in (9, 10):
        w.u8(rsd.n, f"RSD selector {s} n")
        if s == 10:
            encode_ms(w, rsd.ms or Ms(1))
    elif 4 <= s <= 8:
        times = 1 if s in (4, 5) else 2
        if len(rsd.times) != times or (times == 2 and rsd.ti is None):
            ti = " and a TI" if times == 2 else ""
            raise EncodeError(f"RSD selector {s}: needs {times} date_time_s{ti}")
        for when in rsd.times:
            when.encode(w)
        if rsd.ti is not None and times == 2:
            rsd.ti.encode(w)
        encode_ms(w, rsd.ms or Ms(1))
    else:
        raise EncodeError(f"RSD selector {s} outside 0..10")


# ---- decoding -------------------------------------------------------------------------------------


def decode_data(r: Reader, depth: int = 0) -> Data:
    if depth > MAX_DEPTH:
        raise r.error(f"Data nested deeper than {MAX_DEPTH}")
    tag = r.u8("data type")
    if tag not in DataType._value2member_map_:
        r.pos -= 1
        raise r.error(f"unknown data type {tag}")
    t = DataType(tag)
    return Data(t, _decode_value(r, t, depth))


def _decode_value(r: Reader, t: DataType, depth: int) -> Any:
    if t == T.NULL:
        return None
    if t in (T.ARRAY, T.STRUCTURE):
        return tuple(decode_data(r, depth + 1) for _ in range(r.count(t.name.lower())))
    if t == T.BOOL:
        return r.u8("bool") != 0
    if t in INTEGERS:
        size, signed = INTEGERS[t]
        return r.sint(size, t.name.lower()) if signed else r.uint(size, t.name.lower())
    if t in (T.OCTET_STRING, T.MAC, T.RN):
        return r.octets(t.name.lower())
    if t == T.VISIBLE_STRING:
        return r.octets("visible-string").decode("latin-1")
    if t == T.UTF8_STRING:
        raw = r.octets("utf8-string")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise r.error("utf8-string is not UTF-8") from None
    if t in (T.FLOAT32, T.FLOAT64):
        return r.float(4 if t == T.FLOAT32 else 8, t.name.lower())
    return _decode_special(r, t, depth)


_SPECIAL: dict[DataType, Callable[[Reader, int], Any]] = {}


def _decode_special(r: Reader, t: DataType, depth: int) -> Any:
    if t in FIXED:
        return FIXED[t].decode(r)
    return _SPECIAL[t](r, depth)


def decode_region(r: Reader, depth: int = 0) -> Region:
    return Region(r.u8("region unit"), decode_data(r, depth + 1), decode_data(r, depth + 1))


def decode_ms(r: Reader, depth: int = 0) -> Ms:
    choice = r.u8("MS choice")
    if choice in (0, 1):
        return Ms(choice)
    if not 2 <= choice <= 7:
        r.pos -= 1
        raise r.error(f"MS choice {choice} outside 0..7")
    n = r.count("MS items")
    items: list[int | Tsa | Region] = []
    for _ in range(n):
        if choice == 2:
            items.append(r.u8("user type"))
        elif choice == 3:
            items.append(Tsa.decode(r))
        elif choice == 4:
            items.append(r.uint(2, "configuration number"))
        else:
            items.append(decode_region(r, depth))
    return Ms(choice, tuple(items))


def decode_csd(r: Reader, depth: int = 0) -> Csd:
    choice = r.u8("CSD choice")
    if choice == 0:
        return Csd(Oad.decode(r))
    if choice == 1:
        return Csd(Road.decode(r))
    r.pos -= 1
    raise r.error(f"CSD choice {choice} (0 OAD, 1 ROAD)")


def decode_rcsd(r: Reader, depth: int = 0) -> Rcsd:
    return tuple(decode_csd(r) for _ in range(r.count("RCSD", 5)))


def decode_rsd(r: Reader, depth: int = 0) -> Rsd:
    s = r.u8("RSD selector")
    if s == 0:
        return Rsd(0)
    if s in (1, 2):
        oad = Oad.decode(r)
        return Rsd(s, oad, tuple(decode_data(r, depth + 1) for _ in range(1 if s == 1 else 3)))
    if s == 3:
        n = r.count("RSD selector 3", 7)
        ranges = []
        for _ in range(n):
            oad = Oad.decode(r)
            ranges.append(Rsd(2, oad, tuple(decode_data(r, depth + 1) for _ in range(3))))
        return Rsd(3, ranges=tuple(ranges))
    if s in (9, 10):
        n = r.u8(f"RSD selector {s} n")
        return Rsd(s, n=n, ms=decode_ms(r, depth) if s == 10 else None)
    if 4 <= s <= 8:
        times = (DateTimeS.decode(r),) if s in (4, 5) else (DateTimeS.decode(r), DateTimeS.decode(r))
        ti = Ti.decode(r) if s >= 6 else None
        return Rsd(s, times=times, ti=ti, ms=decode_ms(r, depth))
    r.pos -= 1
    raise r.error(f"RSD selector {s} outside 0..10")


_SPECIAL |= {
    T.REGION: decode_region,
    T.RSD: decode_rsd,
    T.CSD: decode_csd,
    T.MS: decode_ms,
    T.RCSD: decode_rcsd,
}
