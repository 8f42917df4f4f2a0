"""The simulated DL/T 698.45 meter's objects: its state as the typed, unscaled Data of each attribute
(dlt698.md §4), and one attribute or element read as a GET result with its DAR.

Layer: simulator device model. Pure functions of a `MeterView` and `now`. Must not: do I/O, read the
clock, parse frames or change the meter (SET and ACTION are `commands.py`).

Values follow the catalogue of `protocols/dlt698/objects.py` (scaler and unit per OI): energy -2 kWh
(attribute 4: -4), voltage -1 V, current -3 A, power -1 W (not kW: 698 differs from 645 here), power
factor -3, frequency -2 Hz, money -2 CNY. The status words are the 645 words with bit n of the word as
bit n of the bit-string (bit 0 = the first bit sent), which is how the catalogue reads them back
[unverified: dlt698.md §4]. An OI this meter does not have answers DAR 4 (object undefined, as E6 does
for 202C on a meter without a wallet); an element beyond an array DAR 6 (object absent).
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from protocols.dlt698 import BitString, Data, DataType, DateTimeS, GetResult, Oad

from ...meter_history import MeterHistory
from ...prepaid import PrepaidMeterPhysics

Value = float | int | str | bool  # a canonical value of PrepaidMeterPhysics.values()

T = DataType
DAR_DENIED: Final = 3
DAR_UNDEFINED: Final = 4
DAR_ABSENT: Final = 6
RELAY_1: Final = Oad(0xF205, 2, 1)  # the meter's one relay (dlt698.md §4: F2050201 = relay 1)
MINUTE_FREEZE_S: Final = 900  # 5002: every 15 minutes
MINUTE_FREEZE_DEPTH: Final = 288  # three days of them
DAILY_FREEZE_DEPTH: Final = 62  # as the 645 meter: 62 days
POWER_DOWN_MAX: Final = 10
RECORD_ATTRIBUTES: Final = {(0x5002, 2), (0x5004, 2), (0x3011, 2)}
SW3_COMMANDED_OPEN: Final = 1 << 6
SW3_ALARM: Final = 1 << 7


class MeterView(Protocol):
    """What the object builders read of the meter (the meter class implements it)."""

    address: str
    physics: PrepaidMeterPhysics
    history: MeterHistory
    alarm: bool
    close_permitted: bool
    secured: bool


@dataclass(frozen=True, slots=True)
class Reading:
    """One instant of the meter: its state and the physics' canonical values at `now`."""

    meter: MeterView
    now: float
    values: dict[str, Value]


def _ints(t: DataType, values: list[float], scale: float) -> Data:
    return Data.array(*(Data(t, round(v * scale)) for v in values))


def _energy(direction: str, attribute: int) -> Callable[[Reading], Data]:
    def build(r: Reading) -> Data:
        tariffs = [0.0] * 4 if direction == "export" else [float(e) for e in r.meter.physics.energy]
        signed = direction == "combined"
        if attribute == 2:
            t, scale = (T.DOUBLE_LONG if signed else T.DOUBLE_LONG_UNSIGNED), 100
        else:
            t, scale = (T.LONG64 if signed else T.LONG64_UNSIGNED), 10_000
        return _ints(t, [sum(tariffs), *tariffs], scale)

    return build


def _phases(r: Reading, pattern: str) -> list[float]:
    return [float(r.values[pattern.format(p)]) for p in "abc"]


def _power(kind: str) -> Callable[[Reading], Data]:
    """2004 / 2005 / 2006: total, A, B, C in 0.1 W (var, VA)."""

    def build(r: Reading) -> Data:
        active = [float(r.values["power_active_kw"]), *_phases(r, "power_active_{}_kw")]
        pf = r.meter.physics.pf
        factor = {"active": 1.0, "reactive": math.tan(math.acos(pf)), "apparent": 1 / pf}[kind]
        return _ints(T.DOUBLE_LONG, [kw * factor for kw in active], 10_000)

    return build


def _neutral_current(r: Reading) -> Data:
    """The phasor sum of the three phase currents (120° apart, one power factor)."""
    amps = _phases(r, "current_{}_a")
    total = sum(a * cmath.exp(1j * k * 2 * math.pi / 3) for k, a in enumerate(amps))
    return Data(T.DOUBLE_LONG, round(abs(total) * 1000))


def status_word_3(r: Reading) -> int:
    word = int(r.values["status_word_3"])
    if r.meter.close_permitted:
        word &= ~SW3_COMMANDED_OPEN  # a permitted close is no longer "commanded open" (645 meter alike)
    if r.meter.alarm:
        word |= SW3_ALARM
    return word


def bits16(word: int) -> BitString:
    """Bit n of `word` as bit n of a 16-bit bit-string (bit 0 = the most significant bit sent)."""
    value = int(f"{word & 0xFFFF:016b}"[::-1], 2)
    return BitString(16, value.to_bytes(2, "big"))


def _status(r: Reading) -> Data:
    words = [0, 0, status_word_3(r), 0, 0, 0, 0]
    return Data.array(*(Data(T.BIT_STRING, bits16(w)) for w in words))


def _relay(open_: bool) -> Data:
    return Data(T.BIT_STRING, BitString(8, bytes((0x80 if open_ else 0,))))  # bit 0: relay 1 open


def _wallet(r: Reading) -> Data | None:
    if r.meter.physics.cost_control != "local":
        return None  # dlt698.md §4: remote cost-control meters usually have no wallet (E6: DAR 4)
    return Data.structure(
        Data(T.DOUBLE_LONG_UNSIGNED, round(float(r.values["balance_cny"]) * 100)),
        Data(T.DOUBLE_LONG_UNSIGNED, int(r.values["purchase_count"])),
    )


def _money(name: str) -> Callable[[Reading], Data | None]:
    def build(r: Reading) -> Data | None:
        if r.meter.physics.cost_control != "local":
            return None
        return Data(T.DOUBLE_LONG_UNSIGNED, round(float(r.values[name]) * 100))

    return build


def _power_down_now(r: Reading) -> Data:
    """3011 attribute 7: array{structure{source, structure{count, cumulative seconds}}}."""
    history = r.meter.history
    seconds = sum((end - start).total_seconds() for start, end in history.outages)
    counts = Data.structure(
        Data(T.DOUBLE_LONG_UNSIGNED, r.meter.physics.power_down_count),
        Data(T.DOUBLE_LONG_UNSIGNED, round(seconds)),
    )
    return Data.array(Data.structure(Data(T.NULL), counts))


def _captured(columns: tuple[Oad, ...], period: int, depth: int) -> Data:
    """Attribute 3 of a freeze: what each record holds, {period, OAD, depth} per column."""
    return Data.array(
        *(
            Data.structure(Data(T.LONG_UNSIGNED, period), Data(T.OAD, oad), Data(T.LONG_UNSIGNED, depth))
            for oad in columns
        )
    )


FREEZE_COLUMNS: Final = (Oad(0x0010, 2), Oad(0x0020, 2), Oad(0x0000, 2))


def _scaled(
    value: Callable[[Reading], float], scale: float, t: DataType = T.LONG_UNSIGNED
) -> Callable[[Reading], Data]:
    return lambda r: Data(t, round(value(r) * scale))


BUILDERS: Final[dict[tuple[int, int], Callable[[Reading], Data | None]]] = {
    (0x0000, 2): _energy("combined", 2),
    (0x0000, 4): _energy("combined", 4),
    (0x0010, 2): _energy("import", 2),
    (0x0010, 4): _energy("import", 4),
    (0x0020, 2): _energy("export", 2),
    (0x0020, 4): _energy("export", 4),
    (0x2000, 2): lambda r: _ints(T.LONG_UNSIGNED, _phases(r, "voltage_{}_v"), 10),
    (0x2001, 2): lambda r: _ints(T.DOUBLE_LONG, _phases(r, "current_{}_a"), 1000),
    (0x2001, 4): _neutral_current,
    (0x2004, 2): _power("active"),
    (0x2005, 2): _power("reactive"),
    (0x2006, 2): _power("apparent"),
    (0x200A, 2): lambda r: _ints(T.LONG, [r.meter.physics.pf] * 4, 1000),
    (0x200F, 2): _scaled(lambda r: float(r.values["frequency_hz"]), 100),
    (0x2010, 2): _scaled(lambda r: float(r.values["temperature_c"]), 10, T.LONG),
    (0x2014, 2): _status,
    (0x202C, 2): _wallet,
    (0x202D, 2): _money("overdraft_cny"),
    (0x202E, 2): _money("purchase_total_cny"),
    (0x3011, 4): lambda r: Data(T.LONG_UNSIGNED, len(r.meter.history.outages)),
    (0x3011, 5): lambda r: Data(T.LONG_UNSIGNED, POWER_DOWN_MAX),
    (0x3011, 7): _power_down_now,
    (0x4000, 2): lambda r: Data(T.DATE_TIME_S, DateTimeS.of(r.meter.history.meter_now(r.now))),
    (0x4001, 2): lambda r: Data(T.OCTET_STRING, bytes.fromhex(r.meter.address)),  # not reversed
    (0x4002, 2): lambda r: Data(T.OCTET_STRING, bytes.fromhex(r.meter.address)),
    (0x5002, 3): lambda r: _captured(FREEZE_COLUMNS, MINUTE_FREEZE_S // 60, MINUTE_FREEZE_DEPTH),
    (0x5004, 3): lambda r: _captured(FREEZE_COLUMNS, 1, DAILY_FREEZE_DEPTH),
    (0x8000, 3): lambda r: _relay(not r.meter.physics.actual_closed),
    (0x8000, 5): lambda r: _relay(not r.meter.physics.commanded_closed and not r.meter.close_permitted),
    (0x8001, 2): lambda r: Data(T.ENUM, 1 if r.meter.physics.keep_power else 0),
    (0xF101, 2): lambda r: Data(T.ENUM, 1 if r.meter.secured else 0),
}


def attribute(r: Reading, oad: Oad) -> Data | int:
    """The whole attribute of `oad` (its index ignored), or the DAR why not."""
    key = (oad.oi, oad.number)
    if key in RECORD_ATTRIBUTES:
        return DAR_DENIED  # records are read with GET-Record (dlt698.md §7 "records need GET-Record")
    build = BUILDERS.get(key)
    data = None if build is None else build(r)
    return DAR_UNDEFINED if data is None else data


def element(data: Data, index: int) -> Data | int:
    """Index 0 is the whole attribute, n its n-th element (dlt698.md §3)."""
    if index == 0:
        return data
    items = data.items()
    return items[index - 1] if index <= len(items) else DAR_ABSENT


def get(r: Reading, oad: Oad) -> GetResult:
    whole = attribute(r, oad)
    found = whole if isinstance(whole, int) else element(whole, oad.index)
    return GetResult(oad, None, found) if isinstance(found, int) else GetResult(oad, found)
