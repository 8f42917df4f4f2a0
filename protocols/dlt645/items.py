"""DL/T 645 data identifiers (2007: 4-byte DI, 1997: 2-byte DI): the catalogue of the items a prepaid
meter gateway reads, and the encode/decode of their values, blocks (DI with `FF`) included.

Layer: pure codec + data (protocols). Must not: do I/O, or know about frames (that is `messages`).

Names are the canonical names of `protocols.vocabulary` where one exists (energy_import_kwh,
voltage_a_v, balance_cny, status_word_3, ...), otherwise catalogue names in the same style. Formats,
lengths and units follow dlt645.md §3.2 (2007) and §3.4 (1997); items the doc marks unverified are
flagged `verified=False`. A DI is written most significant byte first (`00010000`, `9010`) and goes
out least significant byte first (`DI0` first).

Two kinds of block: a fixed block (`0201FF00`: A, B, C voltage) has `parts`; a tariff block
(`0001FF00`: total + tariffs 1..k, k configured in the meter) has `tariffs`, a name template for tariff
n, and takes as many tariffs as the data holds.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from ..errors import DecodeError, ProtocolError
from .errors import EncodeError
from .formats import Bcd, Digits, Format, Record, Stamp, Value, Word, decode, encode


class Version(enum.StrEnum):
    V2007 = "2007"
    V1997 = "1997"


DI_SIZE: Final = {Version.V2007: 4, Version.V1997: 2}


class UnknownItem(ProtocolError, KeyError):
    """A name or DI that is not in the catalogue of that protocol version."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class Item:
    di: int
    version: Version
    name: str
    fmt: Format | None  # None for a fixed block (see parts); a tariff block: the format of one entry
    unit: str = ""
    description: str = ""
    parts: tuple[tuple[str, Format], ...] = ()
    tariffs: str | None = None  # tariff block: name template with {n}
    verified: bool = True

    @property
    def di_hex(self) -> str:
        return f"{self.di:0{2 * DI_SIZE[self.version]}X}"

    @property
    def di_wire(self) -> bytes:
        return di_to_wire(self.di, self.version)

    @property
    def is_block(self) -> bool:
        return bool(self.parts) or self.tariffs is not None

    @property
    def size(self) -> int | None:
        """Bytes of the value; None for a tariff block (depends on the meter's number of tariffs)."""
        if self.tariffs is not None:
            return None
        if self.parts:
            return sum(f.size for _, f in self.parts)
        assert self.fmt is not None
        return self.fmt.size

    def __str__(self) -> str:
        return f"{self.di_hex} {self.name}"


def di_to_wire(di: int, version: Version | str) -> bytes:
    size = DI_SIZE[Version(version)]
    if not 0 <= di < 1 << (8 * size):
        raise EncodeError(f"DI {di:#x} does not fit {size} bytes ({version})")
    return di.to_bytes(size, "little")


def di_from_wire(raw: bytes) -> int:
    return int.from_bytes(raw, "little")


def parse_di(text: str, version: Version | str = Version.V2007) -> int:
    """`"00010000"` / `"9010"` (written order) -> int; the digit count must fit the version."""
    size = DI_SIZE[Version(version)]
    clean = text.strip().removeprefix("0x").removeprefix("0X")
    if len(clean) != 2 * size or any(c not in "0123456789abcdefABCDEF" for c in clean):
        raise UnknownItem(f"{text!r} is not a {2 * size}-hex-digit DI ({version})")
    return int(clean, 16)


# ---------------------------------------------------------------------------------------------------
# formats (dlt645.md §3.2 / §3.4)

KWH: Final = Bcd(4, 2)  # XXXXXX.XX
KWH_S: Final = Bcd(4, 2, signed=True)  # combined energies are signed (§1.9)
CNY: Final = Bcd(4, 2)
PRICE: Final = Bcd(4, 4)  # XXXX.XXXX
V07: Final = Bcd(2, 1)  # XXX.X
A07: Final = Bcd(3, 3, signed=True)  # XXX.XXX
A07_N: Final = Bcd(3, 3)
KW07: Final = Bcd(3, 4, signed=True)  # XX.XXXX
KVA07: Final = Bcd(3, 4)
PF07: Final = Bcd(2, 3, signed=True)  # X.XXX
V97: Final = Bcd(2)  # XXX
A97: Final = Bcd(2, 2)  # XX.XX
KW97: Final = Bcd(3, 4)
KVAR97: Final = Bcd(2, 2)
PF97: Final = Bcd(2, 3)
N2: Final = Bcd(2, integer=True)
N3: Final = Bcd(3, integer=True)
N4: Final = Bcd(4, integer=True)
STAMP12: Final = Stamp("YYMMDDhhmmss")
STAMP10: Final = Stamp("YYMMDDhhmm")
DEMAND07: Final = Record((("value", Bcd(3, 4)), ("time", STAMP10)))
OUTAGE: Final = Record((("start", STAMP12), ("end", STAMP12)))
STATUS: Final = Word(2)

_PHASES: Final = ("a", "b", "c")
_V7 = Version.V2007
_V9 = Version.V1997


def _i7(di: int, name: str, fmt: Format, unit: str = "", desc: str = "", *, ok: bool = True) -> Item:
    return Item(di, _V7, name, fmt, unit, desc, verified=ok)


def _i9(di: int, name: str, fmt: Format, unit: str = "", desc: str = "", *, ok: bool = True) -> Item:
    return Item(di, _V9, name, fmt, unit, desc, verified=ok)


def _block(di: int, name: str, members: tuple[Item, ...], desc: str, *, ok: bool = True) -> Item:
    parts = tuple((m.name, m.fmt) for m in members if m.fmt is not None)
    return Item(di, members[0].version, name, None, members[0].unit, desc, parts=parts, verified=ok)


def _tariffs(total: Item, di: int, name: str, template: str, desc: str) -> Item:
    """A tariff block whose first entry is `total`; entry n >= 1 is named `template.format(n=n)`."""
    assert total.fmt is not None
    return Item(
        di,
        total.version,
        name,
        total.fmt,
        total.unit,
        desc,
        parts=((total.name, total.fmt),),
        tariffs=template,
        verified=total.verified,
    )


def _energy_2007(di2: int, kind: str, desc: str, fmt: Format) -> Iterator[Item]:
    """DI2 = kind, DI1 = 00 total / 01..04 tariff / FF block, DI0 = 00 current."""
    total = _i7(di2 << 16, f"energy_{kind}_kwh", fmt, "kWh", desc)
    yield total
    for t in range(1, 5):
        yield _i7(di2 << 16 | t << 8, f"energy_{kind}_t{t}_kwh", fmt, "kWh", f"{desc}, tariff {t}")
    template = f"energy_{kind}_t{{n}}_kwh"
    yield _tariffs(total, di2 << 16 | 0xFF00, f"energy_{kind}_block", template, f"{desc}: total + tariffs")


def _phased(
    total: Item | None, phases: list[Item], block_di: int, template: str, *, ok: bool = True
) -> Iterator[Item]:
    """The phase items (with the total first, if any) and their block: `voltage{p}_v` -> `voltage_block`."""
    members = ([total] if total else []) + phases
    yield from members
    name = template.format(p="").removesuffix(f"_{members[0].unit.lower()}") + "_block"
    yield _block(block_di, name, tuple(members), f"{phases[0].description.split(',')[0]} block", ok=ok)


def _phased_2007(di2: int, name: str, unit: str, fmt: Format, *, desc: str, total: bool) -> Iterator[Item]:
    """DI3 = 02, DI2 = quantity, DI1 = 00 total / 01..03 phase A..C / FF block."""
    base = 0x02000000 | di2 << 16
    whole = _i7(base, name.format(p=""), fmt, unit, desc) if total else None
    phases = [
        _i7(base | i << 8, name.format(p=f"_{p}"), fmt, unit, f"{desc}, phase {p.upper()}")
        for i, p in enumerate(_PHASES, start=1)
    ]
    yield from _phased(whole, phases, base | 0xFF00, name)


def _catalogue_2007() -> Iterator[Item]:
    yield from _energy_2007(0x00, "combined", "combined active energy", KWH_S)
    yield from _energy_2007(0x01, "import", "forward active energy", KWH)
    yield from _energy_2007(0x02, "export", "reverse active energy", KWH)
    for n in range(1, 13):
        desc = f"forward active energy at the {n}. previous settlement day"
        yield _i7(0x00010000 | n, f"energy_import_settle{n}_kwh", KWH, "kWh", desc)
    yield _i7(0x00030000, "energy_reactive_combined1_kvarh", KWH_S, "kvarh", "combined reactive energy 1")
    yield _i7(0x00040000, "energy_reactive_combined2_kvarh", KWH_S, "kvarh", "combined reactive energy 2")
    yield _i7(0x01010000, "demand_import_kw", DEMAND07, "kW", "forward active maximum demand + its time")
    yield from _phased_2007(0x01, "voltage{p}_v", "V", V07, desc="voltage", total=False)
    yield from _phased_2007(0x02, "current{p}_a", "A", A07, desc="current", total=False)
    yield from _phased_2007(0x03, "power_active{p}_kw", "kW", KW07, desc="active power", total=True)
    yield from _phased_2007(0x04, "power_reactive{p}_kvar", "kvar", KW07, desc="reactive power", total=True)
    yield from _phased_2007(0x05, "power_apparent{p}_kva", "kVA", KVA07, desc="apparent power", total=True)
    yield from _phased_2007(0x06, "power_factor{p}", "", PF07, desc="power factor", total=True)
    yield _i7(0x02800001, "current_n_a", A07_N, "A", "neutral current")
    yield _i7(0x02800002, "frequency_hz", Bcd(2, 2), "Hz", "grid frequency")
    yield _i7(0x02800007, "temperature_c", Bcd(2, 1, signed=True), "°C", "meter internal temperature")
    yield _i7(0x0280000A, "battery_run_time_min", N4, "min", "internal battery run time")
    yield _i7(0x02800020, "price_cny_per_kwh", PRICE, "CNY/kWh", "current electricity price", ok=False)
    yield from _identity_2007()
    yield from _prepaid_2007()
    yield from _purchases()
    yield from _events_2007()
    yield from _daily_freezes()


def _identity_2007() -> Iterator[Item]:
    yield _i7(0x04000101, "meter_date", Stamp("YYMMDDWW"), "", "date and weekday")
    yield _i7(0x04000102, "meter_time", Stamp("hhmmss"), "", "time of day")
    yield _i7(0x0400010C, "meter_datetime", Stamp("YYMMDDWWhhmmss"), "", "date, weekday, time", ok=False)
    yield _i7(0x04000306, "ct_ratio", N3, "", "current transformer ratio")
    yield _i7(0x04000307, "pt_ratio", N3, "", "voltage transformer ratio")
    yield _i7(0x04000401, "comm_address", Digits(6), "", "communication address")
    yield _i7(0x04000402, "meter_number", Digits(6), "", "meter number (表号)")
    yield _i7(0x04000409, "pulse_constant", N3, "imp/kWh", "active pulse constant")
    yield _i7(0x0400040E, "customer_number", Digits(6), "", "customer number (客户编号)", ok=False)
    words = tuple(
        _i7(0x04000500 | n, f"status_word_{n}", STATUS, "", f"running status word {n}") for n in range(1, 8)
    )
    yield from words
    yield _block(0x040005FF, "status_word_block", words, "running status words 1-7")
    yield _i7(0x04000B01, "settlement_day_1", Digits(2), "", "settlement day 1 (DDhh)")


def _prepaid_2007() -> Iterator[Item]:
    balance = _i7(0x00900200, "balance_cny", CNY, "CNY", "remaining money")
    overdraft = _i7(0x00900201, "overdraft_cny", CNY, "CNY", "overdraft money")
    yield from (balance, overdraft)
    yield _block(0x009002FF, "prepaid_cny_block", (balance, overdraft), "remaining + overdraft", ok=False)
    yield _i7(0x00900100, "balance_kwh", KWH, "kWh", "remaining energy (kWh-type prepaid)")
    yield _i7(0x00900101, "overdraft_kwh", KWH, "kWh", "overdraft energy (kWh-type prepaid)")
    yield _i7(0x04001001, "alarm1_cny", CNY, "CNY", "alarm amount 1 threshold")
    yield _i7(0x04001002, "alarm2_cny", CNY, "CNY", "alarm amount 2 threshold")
    yield _i7(0x04001003, "overdraft_limit_cny", CNY, "CNY", "overdraft (credit) limit", ok=False)
    yield _i7(0x04001004, "hoarding_limit_cny", CNY, "CNY", "hoarding (maximum balance) limit", ok=False)
    yield _i7(0x04001005, "close_permit_limit_cny", CNY, "CNY", "close-permitted amount limit", ok=False)
    yield _i7(0x04000F01, "alarm1_kwh", KWH, "kWh", "alarm energy 1 threshold")
    yield _i7(0x04000F02, "alarm2_kwh", KWH, "kWh", "alarm energy 2 threshold")
    yield _i7(0x04000F04, "overdraft_limit_kwh", KWH, "kWh", "overdraft energy limit")


def _purchases() -> Iterator[Item]:
    """`0333 F n`: field F of the n-th previous purchase (money meters; n up to 0A is unverified);
    `0332 F 01`: the last purchase on kWh-type meters."""
    fields = (
        (1, "time", STAMP10, "", "date and time"),
        (2, "count", N2, "", "total purchase count after it"),
        (3, "cny", CNY, "CNY", "amount"),
        (4, "balance_before_cny", CNY, "CNY", "remaining money before"),
        (5, "balance_after_cny", CNY, "CNY", "remaining money after"),
        (6, "total_cny", CNY, "CNY", "cumulative purchased money"),
    )
    last = {"count": "purchase_count", "cny": "purchase_last_cny", "total_cny": "purchase_total_cny"}
    for n in range(1, 11):
        for f, suffix, fmt, unit, desc in fields:
            name = last.get(suffix, f"purchase_last_{suffix}") if n == 1 else f"purchase_{n}_{suffix}"
            yield _i7(0x03330000 | f << 8 | n, name, fmt, unit, f"{n}. previous purchase: {desc}", ok=n == 1)
    for f, suffix, fmt, unit, desc in fields:
        name = f"purchase_kwh_last_{suffix.replace('cny', 'kwh')}"
        yield _i7(0x03320001 | f << 8, name, fmt, unit and "kWh", f"last energy purchase: {desc}")


def _events_2007() -> Iterator[Item]:
    yield _i7(0x03110000, "power_down_count", N3, "", "total power-down count")
    for n in range(1, 11):
        desc = f"{n}. previous power-down: start + end"
        yield _i7(0x03110000 | n, f"power_down_{n}", OUTAGE, "", desc, ok=False)
    yield _i7(0x1D000101, "trip_last_time", STAMP12, "", "last trip (跳闸) time")
    yield _i7(0x1E000101, "close_last_time", STAMP12, "", "last close (合闸) time")
    yield _i7(0x03300D00, "cover_open_count", N3, "", "meter cover opened count")
    yield _i7(0x03300400, "clock_set_count", N3, "", "clock set count")


_FREEZE_PARTS: Final = (
    (1, "energy_import", KWH, "kWh"),
    (2, "energy_export", KWH, "kWh"),
    (9, "demand_import", DEMAND07, "kW"),
)


def _daily_freezes() -> Iterator[Item]:
    """`0506 XX n`: the n-th previous daily freeze (n = 1..62; the depth is unverified, §9.6)."""
    for n in range(1, 63):
        p, ok = f"daily_freeze_{n}", n == 1
        yield _i7(0x05060000 | n, f"{p}_time", STAMP10, "", f"{n}. previous daily freeze: time", ok=ok)
        for di1, kind, fmt, unit in _FREEZE_PARTS:
            suffix = unit.lower()
            total = _i7(0x05060000 | di1 << 8 | n, f"{p}_{kind}_{suffix}", fmt, unit, ok=ok)
            desc = f"{n}. previous daily freeze: {kind.replace('_', ' ')}, total + tariffs"
            yield _tariffs(total, total.di, f"{p}_{kind}", f"{p}_{kind}_t{{n}}_{suffix}", desc)


def _catalogue_1997() -> Iterator[Item]:
    for di, kind in ((0x9010, "import"), (0x9020, "export"), (0x9410, "import_prev_month")):
        desc = f"{kind.replace('_', ' ')} active energy"
        total = _i9(di, f"energy_{kind}_kwh", KWH, "kWh", desc)
        yield total
        for t in range(1, 5):
            yield _i9(di + t, f"energy_{kind}_t{t}_kwh", KWH, "kWh", f"{desc}, tariff {t}")
        yield _tariffs(total, di + 0xF, f"energy_{kind}_block", f"energy_{kind}_t{{n}}_kwh", f"{desc} block")
    yield _i9(0x9110, "energy_reactive_import_kvarh", KWH, "kvarh", "forward reactive energy")
    yield _i9(0x9120, "energy_reactive_export_kvarh", KWH, "kvarh", "reverse reactive energy")
    for base, name, unit, fmt, desc in (
        (0xB610, "voltage{p}_v", "V", V97, "voltage"),
        (0xB620, "current{p}_a", "A", A97, "current"),
        (0xB630, "power_active{p}_kw", "kW", KW97, "active power"),
        (0xB640, "power_reactive{p}_kvar", "kvar", KVAR97, "reactive power"),
        (0xB650, "power_factor{p}", "", PF97, "power factor"),
    ):
        ok = base in (0xB610, 0xB620, 0xB630)
        whole = _i9(base, name.format(p=""), fmt, unit, desc, ok=ok) if base >= 0xB630 else None
        phases = [
            _i9(base + i, name.format(p=f"_{p}"), fmt, unit, f"{desc}, phase {p.upper()}", ok=ok)
            for i, p in enumerate(_PHASES, start=1)
        ]
        yield from _phased(whole, phases, base + 0xF, name, ok=False)  # 1997 blocks: by the DI rule of §3.4
    yield _i9(0xC010, "meter_date", Stamp("YYMMDDWW"), "", "date and weekday")
    yield _i9(0xC011, "meter_time", Stamp("hhmmss"), "", "time of day")
    yield _i9(0xC020, "status_byte", Word(1), "", "meter running status word", ok=False)
    yield _i9(0xC030, "pulse_constant", N3, "imp/kWh", "active pulse constant")
    yield _i9(0xC031, "reactive_pulse_constant", N3, "imp/kvarh", "reactive pulse constant")
    yield _i9(0xC032, "meter_number", Digits(6), "", "meter number", ok=False)
    yield _i9(0xA010, "demand_import_kw", Bcd(3, 4), "kW", "forward active maximum demand", ok=False)
    yield _i9(0xB010, "demand_import_time", Digits(4), "", "time of the maximum demand (MMDDhhmm)", ok=False)
    yield _i9(0xB212, "programming_count", N2, "", "programming count", ok=False)
    yield _i9(0xB213, "demand_clear_count", N2, "", "demand clear count", ok=False)


def _index(items: Iterator[Item]) -> dict[int, Item]:
    out: dict[int, Item] = {}
    for item in items:
        assert item.di not in out, f"duplicate DI {item}"
        out[item.di] = item
    return out


CATALOGUE: Final[Mapping[Version, Mapping[int, Item]]] = {
    Version.V2007: _index(_catalogue_2007()),
    Version.V1997: _index(_catalogue_1997()),
}
_BY_NAME: Final = {v: {item.name: item for item in items.values()} for v, items in CATALOGUE.items()}


def find_item(di: int, version: Version | str = Version.V2007) -> Item | None:
    return CATALOGUE[Version(version)].get(di)


def item_names(version: Version | str = Version.V2007) -> frozenset[str]:
    return frozenset(_BY_NAME[Version(version)])


def lookup(key: str, version: Version | str = Version.V2007) -> Item:
    """An item by catalogue/canonical name or by DI in written hex (`00900200`, `9010`)."""
    v = Version(version)
    if key in _BY_NAME[v]:
        return _BY_NAME[v][key]
    try:
        di = parse_di(key, v)
    except UnknownItem:
        raise UnknownItem(f"{key!r} is neither a DL/T 645-{v} item name nor a DI") from None
    item = CATALOGUE[v].get(di)
    if item is None:
        raise UnknownItem(f"DI {key} is not in the DL/T 645-{v} catalogue")
    return item


def decode_value(item: Item, data: bytes) -> Value:
    """The value of a single (non-block) item from its plain data bytes."""
    if item.is_block or item.fmt is None:
        raise DecodeError(f"{item}: a block has several values; use decode_values")
    return decode(item.fmt, data, str(item))


def decode_values(item: Item, data: bytes) -> dict[str, Value]:
    """Name -> value for any item; for a block, every part (a tariff block: as many as the data holds)."""
    if not item.is_block:
        return {item.name: decode_value(item, data)}
    if item.tariffs is not None:
        assert item.fmt is not None
        size = item.fmt.size
        if not data or len(data) % size:
            raise DecodeError(f"{item}: {len(data)} bytes is not a whole number of {size}-byte entries")
        names = [item.parts[0][0]] + [item.tariffs.format(n=n) for n in range(1, len(data) // size)]
        return {
            name: decode(item.fmt, data[i * size : (i + 1) * size], f"{item}.{name}")
            for i, name in enumerate(names)
        }
    if len(data) != item.size:
        raise DecodeError(f"{item}: {len(data)} bytes, the block needs {item.size}: {data.hex(' ')}")
    out: dict[str, Value] = {}
    offset = 0
    for name, fmt in item.parts:
        out[name] = decode(fmt, data[offset : offset + fmt.size], f"{item}.{name}")
        offset += fmt.size
    return out


def encode_value(item: Item, value: Value) -> bytes:
    if item.is_block or item.fmt is None:
        raise EncodeError(f"{item}: a block has several values; use encode_values")
    return encode(item.fmt, value, str(item))


def encode_values(item: Item, values: Mapping[str, Value]) -> bytes:
    """Inverse of `decode_values`. A fixed block needs every part (None = fill); a tariff block takes
    the total and tariffs 1, 2, ... as long as they are consecutive."""
    if not item.is_block:
        return encode_value(item, values.get(item.name))
    if item.tariffs is not None:
        assert item.fmt is not None
        names = [item.parts[0][0]]
        while item.tariffs.format(n=len(names)) in values:
            names.append(item.tariffs.format(n=len(names)))
        return b"".join(encode(item.fmt, values.get(n), f"{item}.{n}") for n in names)
    missing = [name for name, _ in item.parts if name not in values]
    if missing:
        raise EncodeError(f"{item}: values missing for {', '.join(missing)}")
    return b"".join(encode(fmt, values[name], f"{item}.{name}") for name, fmt in item.parts)
