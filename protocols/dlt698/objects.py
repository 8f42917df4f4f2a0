"""DL/T 698.45 object catalogue: the OI/attributes a cost-control gateway reads, mapped onto the
canonical names of `protocols.vocabulary` with scaler and unit, and a generic value tree for the rest.

Layer: pure codec + data (protocols). Must not: do I/O or read clocks (a clock skew needs the caller's
`now`).

dlt698.md §4/§7: values come typed and unscaled; value = raw x 10^scaler in the wire unit. Power is in
W (DL/T 645 gives kW), so power entries carry `shift` -3 to reach the canonical kW/kvar/kVA. Index 0 of
an OAD is the whole attribute, index n its n-th element (for energy 1 = total, 2..5 = T1..T4). Entries
the reference marks as one source or unverified have `verified=False`. An object outside the
catalogue is never an error: `object_values` gives {} and `to_python` its generic tree.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from dataclasses import dataclass
from typing import Any, Final

from ..vocabulary import CANONICAL_NAMES
from .apdu import GetResult, RecordResult
from .axdr import Data, Rsd
from .datatypes import BitString, Date, DateTime, DateTimeS, Oad, Time
from .tags import DataType


class Kind(enum.Enum):
    NUMBER = "number"  # raw x 10^(scaler + shift)
    INT = "int"  # a count, as is
    RELAY = "relay"  # bit-string, bit 0 (relay 1) set = open [unverified]
    FLAG = "flag"  # enum / bool: anything but 0 is on
    TIME = "time"  # date_time_s -> datetime
    STATUS = "status"  # bit-string(16) -> int, bit n of the string = bit n of the int
    HEX = "hex"  # octet-string -> hex text, in the order sent (4001 is not reversed)
    FIRST_COUNT = "first_count"  # event current values: the first double-long-unsigned [unverified]


@dataclass(frozen=True, slots=True)
class Entry:
    oi: int
    attribute: int
    description: str
    names: tuple[str | None, ...]  # element n+1's name; one name for a single value
    kind: Kind = Kind.NUMBER
    scaler: int = 0
    unit: str = ""
    shift: int = 0
    array: bool = True  # False: the attribute is one value (names has one entry)
    counts: tuple[str, ...] = ()  # names among `names` that are counts: not scaled
    verified: bool = True

    @property
    def oad(self) -> Oad:
        return Oad(self.oi, self.attribute)


def _tariffs(direction: str) -> tuple[str | None, ...]:
    return (f"energy_{direction}_kwh", *(f"energy_{direction}_t{t}_kwh" for t in range(1, 5)))


_PHASES: Final = ("a", "b", "c")
_N = Kind.NUMBER
ENTRIES: Final[tuple[Entry, ...]] = (
    Entry(0x0000, 2, "combined active energy", ("energy_combined_kwh",), _N, -2, "kWh"),
    Entry(0x0000, 4, "combined active energy, high precision", ("energy_combined_kwh",), _N, -4, "kWh"),
    Entry(0x0010, 2, "import active energy, total and T1..T4", _tariffs("import"), _N, -2, "kWh"),
    Entry(0x0010, 4, "import active energy, high precision", _tariffs("import"), _N, -4, "kWh"),
    Entry(0x0020, 2, "export active energy, total and T1..T4", _tariffs("export"), _N, -2, "kWh"),
    Entry(0x0020, 4, "export active energy, high precision", _tariffs("export"), _N, -4, "kWh"),
    Entry(0x2000, 2, "voltage A, B, C", tuple(f"voltage_{p}_v" for p in _PHASES), _N, -1, "V"),
    Entry(0x2001, 2, "current A, B, C", tuple(f"current_{p}_a" for p in _PHASES), _N, -3, "A"),
    Entry(0x2001, 4, "neutral current", ("current_n_a",), _N, -3, "A", array=False),
    Entry(
        0x2004,
        2,
        "active power total, A, B, C",
        ("power_active_kw", *(f"power_active_{p}_kw" for p in _PHASES)),
        _N,
        -1,
        "W",
        -3,
    ),
    Entry(
        0x2005,
        2,
        "reactive power total, A, B, C",
        ("power_reactive_kvar", *(f"power_reactive_{p}_kvar" for p in _PHASES)),
        _N,
        -1,
        "var",
        -3,
    ),
    Entry(
        0x2006,
        2,
        "apparent power total, A, B, C",
        ("power_apparent_kva", *(f"power_apparent_{p}_kva" for p in _PHASES)),
        _N,
        -1,
        "VA",
        -3,
    ),
    Entry(0x200A, 2, "power factor", ("power_factor", *(f"power_factor_{p}" for p in _PHASES)), _N, -3),
    Entry(0x200F, 2, "grid frequency", ("frequency_hz",), _N, -2, "Hz", array=False),
    Entry(0x2010, 2, "meter temperature", ("temperature_c",), _N, -1, "°C", array=False, verified=False),
    Entry(
        0x2014,
        2,
        "meter running status words 1..7",
        tuple(f"status_word_{n}" for n in range(1, 8)),
        Kind.STATUS,
        verified=False,
    ),
    Entry(
        0x202C,
        2,
        "wallet: remaining money, purchase count",
        ("balance_cny", "purchase_count"),
        _N,
        -2,
        "CNY",
        counts=("purchase_count",),
        verified=False,
    ),
    Entry(0x202D, 2, "overdraft amount", ("overdraft_cny",), _N, -2, "CNY", array=False, verified=False),
    Entry(0x202E, 2, "total purchased", ("purchase_total_cny",), _N, -2, "CNY", array=False, verified=False),
    Entry(0x2021, 2, "freeze time (record column)", ("freeze_time",), Kind.TIME, array=False),
    Entry(0x2023, 2, "freeze sequence (record column)", ("freeze_sequence",), Kind.INT, array=False),
    Entry(0x201E, 2, "event start time (record column)", ("event_start",), Kind.TIME, array=False),
    Entry(0x2020, 2, "event end time (record column)", ("event_end",), Kind.TIME, array=False),
    Entry(0x2022, 2, "event sequence (record column)", ("event_sequence",), Kind.INT, array=False),
    Entry(0x3011, 4, "power-down events recorded", ("power_down_records",), Kind.INT, array=False),
    Entry(
        0x3011,
        7,
        "power-down event count",
        ("power_down_count",),
        Kind.FIRST_COUNT,
        array=False,
        verified=False,
    ),
    Entry(0x4000, 2, "meter clock", ("meter_time",), Kind.TIME, array=False),
    Entry(0x4001, 2, "communication address", ("meter_address",), Kind.HEX, array=False),
    Entry(0x4002, 2, "meter number", ("meter_number",), Kind.HEX, array=False, verified=False),
    Entry(0x8000, 3, "relay state", ("relay",), Kind.RELAY, array=False, verified=False),
    Entry(0x8000, 5, "relay command state", ("relay_commanded",), Kind.RELAY, array=False, verified=False),
    Entry(0x8001, 2, "keep-power state (0 off, 1 on, 2 auto)", ("keep_power",), Kind.FLAG, array=False),
)
CATALOGUE: Final[dict[tuple[int, int], Entry]] = {(e.oi, e.attribute & 0x1F): e for e in ENTRIES}
RECORD_OBJECTS: Final[dict[int, str]] = {
    0x5002: "minute freeze",
    0x5004: "daily freeze",
    0x5006: "monthly freeze",
    0x3011: "power-down events",
}
# Interface objects by OI, for an OAD / OMD outside the attribute catalogue (dlt698.md §4)
OBJECT_NAMES: Final[dict[int, str]] = {
    0x0000: "combined active energy",
    0x0010: "import active energy",
    0x0020: "export active energy",
    0x2000: "voltage",
    0x2001: "current",
    0x2004: "active power",
    0x2005: "reactive power",
    0x2006: "apparent power",
    0x200A: "power factor",
    0x200F: "grid frequency",
    0x2014: "meter running status words",
    0x202C: "wallet (local prepay)",
    0x202D: "overdraft amount",
    0x202E: "total purchased",
    0x3011: "power-down event",
    0x4000: "date-time",
    0x4001: "communication address",
    0x4002: "meter number",
    0x8000: "remote control",
    0x8001: "keep-power",
    0x8002: "arrears alarm",
    0xF100: "ESAM",
    0xF101: "security mode",
    0xF205: "relay outputs",
} | RECORD_OBJECTS


Value = float | int | str | bool | dt.datetime | None


def lookup(oad: Oad) -> Entry | None:
    return CATALOGUE.get((oad.oi, oad.number))


def find(name: str) -> tuple[Entry, Oad] | None:
    """The entry and element OAD (index n) that read a value name, e.g. `energy_import_t1_kwh` ->
    00100202; None if the catalogue has no such name."""
    for entry in ENTRIES:
        if name in entry.names:
            index = entry.names.index(name) + 1 if entry.array else 0
            return entry, Oad(entry.oi, entry.attribute, index)
    return None


def object_values(oad: Oad, data: Data) -> dict[str, Value]:
    """The named values of `data`, the value of `oad` (its index 0 or one element). Unknown objects,
    and elements without a name, give nothing; a value that does not fit the entry's type (a meter
    with another layout) is left out rather than guessed, and `to_python` still shows it."""
    entry = lookup(oad)
    if entry is None or data.type == DataType.NULL:
        return {}
    if not entry.array or oad.index:
        names = entry.names if not entry.array else entry.names[oad.index - 1 : oad.index]
        pairs = list(zip(names, (data,), strict=False))
    else:
        pairs = list(zip(entry.names, data.items(), strict=False))
    out: dict[str, Value] = {}
    for name, item in pairs:
        if name is not None:
            value = _convert(entry, item, name in entry.counts)
            if value is not None or item.type == DataType.NULL:
                out[name] = value
    return out


def canonical_values(oad: Oad, data: Data) -> dict[str, float | int | str | bool]:
    """Only the values named in the MQTT contract vocabulary (what a Reading may carry)."""
    return {
        k: v
        for k, v in object_values(oad, data).items()
        if k in CANONICAL_NAMES and isinstance(v, float | int | str | bool)
    }


def result_values(result: GetResult) -> dict[str, Value]:
    return {} if result.data is None else object_values(result.oad, result.data)


def record_rows(result: RecordResult) -> list[dict[str, Value]]:
    """One dict per record: the named values of each column (freeze_time, energy_import_kwh, ...)."""
    rows: list[dict[str, Value]] = []
    for row in result.rows or ():
        values: dict[str, Value] = {}
        for csd, cell in zip(result.rcsd, row, strict=False):
            if isinstance(csd.target, Oad):
                values |= object_values(csd.target, cell)
            else:
                for oad, item in zip(csd.target.columns, cell.items(), strict=False):
                    values |= object_values(oad, item)
        rows.append(values)
    return rows


def clock_skew_s(meter_time: dt.datetime, now: dt.datetime) -> float:
    """meter_clock_skew_s: the meter's clock (local wall time) minus the caller's `now` (same zone)."""
    return (meter_time - now.replace(tzinfo=None)).total_seconds()


def _convert(entry: Entry, item: Data, count: bool = False) -> Value:
    v = item.value
    if entry.kind == Kind.INT or count:
        return v if isinstance(v, int) and not isinstance(v, bool) else None
    if entry.kind == Kind.NUMBER:
        if isinstance(v, bool) or not isinstance(v, int):
            return None
        exponent = entry.scaler + entry.shift
        return round(v * 10.0**exponent, max(0, -exponent)) if exponent else v
    if entry.kind == Kind.FLAG:
        return bool(v) if isinstance(v, int) else None
    if entry.kind == Kind.RELAY:
        return ("open" if v.bit(0) else "closed") if isinstance(v, BitString) else None
    if entry.kind == Kind.STATUS:
        return sum(1 << n for n in v.set_bits()) if isinstance(v, BitString) else None
    if entry.kind == Kind.TIME:
        return v.to_datetime() if isinstance(v, DateTimeS | DateTime) else None
    if entry.kind == Kind.HEX:
        return v.hex().upper() if isinstance(v, bytes) else None
    return _first_count(item)


def _first_count(item: Data, depth: int = 0) -> int | None:
    if item.type == DataType.DOUBLE_LONG_UNSIGNED:
        return int(item.value)
    for child in item.items():
        found = _first_count(child, depth + 1) if depth < 4 else None
        if found is not None:
            return found
    return None


def to_python(data: Data) -> Any:
    """A JSON-serialisable tree of any Data (lists, numbers, text; bytes as hex; dates ISO or fields)."""
    v = data.value
    if data.type in (DataType.ARRAY, DataType.STRUCTURE):
        return [to_python(item) for item in v]
    if isinstance(v, bool | int | str) or v is None:
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, bytes):
        return v.hex(" ").upper()
    if isinstance(v, DateTimeS | DateTime):
        when = v.to_datetime()
        return when.isoformat(sep=" ") if when else _fields(v)
    if isinstance(v, BitString | Oad):
        return str(v)
    if isinstance(v, Rsd | Date | Time) or hasattr(v, "__dataclass_fields__"):
        return _fields(v)
    return str(v)


def _fields(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(value).__name__}
    for name in value.__dataclass_fields__:
        field = getattr(value, name)
        if isinstance(field, Data):
            out[name] = to_python(field)
        elif isinstance(field, tuple):
            out[name] = [to_python(f) if isinstance(f, Data) else _plain(f) for f in field]
        else:
            out[name] = _plain(field)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, bool | int | str | float) or value is None:
        return value
    if isinstance(value, bytes):
        return value.hex(" ").upper()
    if isinstance(value, Oad):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return _fields(value)
    return str(value)
