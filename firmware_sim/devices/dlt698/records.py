"""The simulated DL/T 698.45 meter's records: daily (5004) and minute (5002) freezes, power-down events
(3011), and GET-Record's row selection (RSD) and columns (RCSD).

Layer: simulator device model. Pure functions of the meter's history and `now`. Must not: do I/O,
read the clock, or know frames.

dlt698.md §3/§7: meters do selectors 1 (`OAD = value`), 2 (`OAD` in [from, to) every interval) and 9
(the n-th latest record); 3 (a list of 2), 10 (the latest n) and 0 (no selection: every record) cost
nothing more here. 4-8 select by collection time and meter set: a concentrator's job, refused with
DAR 8. Rows come oldest first. A record read always answers with its real columns: RCSD empty means
every column this record holds; a column it does not hold is a null cell (the reply keeps its shape).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from protocols.dlt698 import NULL, Csd, Data, DataType, DateTimeS, Oad, Rcsd, RecordResult, Rsd

from ...meter_history import MeterHistory, energies_before, energies_of
from ...prepaid import CST_OFFSET_S, PrepaidMeterPhysics
from .objects import DAILY_FREEZE_DEPTH, FREEZE_COLUMNS, MINUTE_FREEZE_DEPTH, MINUTE_FREEZE_S

T = DataType
FREEZE_TIME: Final = Oad(0x2021, 2)
FREEZE_SEQUENCE: Final = Oad(0x2023, 2)
EVENT_SEQUENCE: Final = Oad(0x2022, 2)
EVENT_START: Final = Oad(0x201E, 2)
EVENT_END: Final = Oad(0x2020, 2)
EVENT_SOURCE: Final = Oad(0x2024, 2)
DAR_TYPE_MISMATCH: Final = 7
DAR_OUT_OF_RANGE: Final = 8
_EPOCH: Final = dt.datetime(2000, 1, 1)
_TI_SECONDS: Final = {0: 1, 1: 60, 2: 3600, 3: 86400}  # months and years are not even intervals


@dataclass(frozen=True, slots=True)
class Record:
    time: dt.datetime  # freeze time, or event start
    cells: dict[Oad, Data]  # whole attributes (index 0) by OAD


class MinuteFreezes:
    """5002: the energies every 15 minutes of the meter's clock, the last MINUTE_FREEZE_DEPTH kept;
    the ones before the simulation started are synthesised backwards like the daily freezes."""

    def __init__(self, physics: PrepaidMeterPhysics, history: MeterHistory, start_time: float) -> None:
        self.physics = physics
        self.history = history
        self.freezes: list[tuple[dt.datetime, tuple[float, float, float, float]]] = []
        energies = list(physics.energy)
        local = start_time + CST_OFFSET_S
        for _ in range(MINUTE_FREEZE_DEPTH):
            step = local - (local // MINUTE_FREEZE_S) * MINUTE_FREEZE_S or MINUTE_FREEZE_S
            energies_before(physics, energies, local, step)
            local -= step
            when = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=int(local))
            self.freezes.insert(0, (when, energies_of(energies)))
        self._last = self.freezes[-1][0]

    def observe(self, now: float) -> None:
        """A freeze at each quarter hour the meter's clock passed (once, even if time jumped)."""
        meter_now = self.history.meter_now(now)
        due = meter_now.replace(minute=meter_now.minute // 15 * 15, second=0)
        if due > self._last:
            self.freezes.append((due, energies_of(self.physics.energy)))
            del self.freezes[:-MINUTE_FREEZE_DEPTH]
            self._last = due


def _energy_cells(energies: Sequence[float]) -> dict[Oad, Data]:
    def array(t: DataType, values: Sequence[float]) -> Data:
        return Data.array(*(Data(t, round(v * 100)) for v in [sum(values), *values]))

    return {
        FREEZE_COLUMNS[0]: array(T.DOUBLE_LONG_UNSIGNED, energies),
        FREEZE_COLUMNS[1]: array(T.DOUBLE_LONG_UNSIGNED, [0.0] * 4),  # this meter never exports
        FREEZE_COLUMNS[2]: array(T.DOUBLE_LONG, energies),
    }


def _freeze(when: dt.datetime, sequence: int, energies: Sequence[float]) -> Record:
    cells = {
        FREEZE_SEQUENCE: Data(T.DOUBLE_LONG_UNSIGNED, sequence),
        FREEZE_TIME: Data(T.DATE_TIME_S, DateTimeS.of(when)),
    }
    return Record(when, cells | _energy_cells(energies))


def daily_records(history: MeterHistory) -> list[Record]:
    """5004, oldest first; the sequence number counts days since 2000-01-01 (stable as days pass)."""
    days = history.daily_freezes()[:DAILY_FREEZE_DEPTH]
    return [
        _freeze(dt.datetime.combine(day, dt.time()), (day - _EPOCH.date()).days, e)
        for day, e in reversed(days)
    ]


def minute_records(freezes: MinuteFreezes) -> list[Record]:
    return [
        _freeze(when, int((when - _EPOCH).total_seconds()) // MINUTE_FREEZE_S, e)
        for when, e in freezes.freezes
    ]


def power_down_records(history: MeterHistory, count: int) -> list[Record]:
    """3011, oldest first; the newest carries the meter's power-down count as its sequence number."""
    out = []
    for n, (start, end) in enumerate(history.outages):
        cells = {
            EVENT_SEQUENCE: Data(T.DOUBLE_LONG_UNSIGNED, max(count - n, 0)),
            EVENT_START: Data(T.DATE_TIME_S, DateTimeS.of(start)),
            EVENT_END: Data(T.DATE_TIME_S, DateTimeS.of(end)),
            EVENT_SOURCE: NULL,
        }
        out.append(Record(start, cells))
    return out[::-1]


DEFAULT_COLUMNS: Final[dict[int, tuple[Oad, ...]]] = {
    0x5002: (FREEZE_SEQUENCE, FREEZE_TIME, *FREEZE_COLUMNS),
    0x5004: (FREEZE_SEQUENCE, FREEZE_TIME, *FREEZE_COLUMNS),
    0x3011: (EVENT_SEQUENCE, EVENT_START, EVENT_END, EVENT_SOURCE),
}


# ---- selection --------------------------------------------------------------------------------------


def _key(data: Data) -> dt.datetime | int | None:
    v = data.value
    if isinstance(v, DateTimeS):
        return v.to_datetime()
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _cell(record: Record, oad: Oad) -> Data:
    whole = record.cells.get(oad.whole(), NULL)
    if oad.index == 0:
        return whole
    items = whole.items()
    return items[oad.index - 1] if oad.index <= len(items) else NULL


def _range(records: list[Record], rsd: Rsd) -> list[Record] | int:
    if rsd.oad is None or len(rsd.values) != 3:
        return DAR_OUT_OF_RANGE
    low, high, interval = _key(rsd.values[0]), _key(rsd.values[1]), rsd.values[2]
    if low is None or high is None or type(low) is not type(high):
        return DAR_TYPE_MISMATCH
    step = 0
    if interval.type == T.TI:
        step = _TI_SECONDS.get(interval.value.unit, 0) * interval.value.value
    elif interval.type != T.NULL:
        return DAR_TYPE_MISMATCH
    out = []
    for record in records:
        k = _key(_cell(record, rsd.oad))
        if k is None or type(k) is not type(low) or not low <= k < high:  # type: ignore[operator]
            continue
        if step and isinstance(k, dt.datetime) and isinstance(low, dt.datetime):
            keep = (k - low).total_seconds() % step == 0  # on the interval's grid from `from`
        else:
            keep = True
        if keep:
            out.append(record)
    return out


def select(records: list[Record], rsd: Rsd) -> list[Record] | int:
    """The records `rsd` picks (oldest first), or the DAR why it cannot."""
    s = rsd.selector
    if s == 0:
        return records
    if s == 1:
        if rsd.oad is None or len(rsd.values) != 1:
            return DAR_OUT_OF_RANGE
        want = rsd.values[0]
        return [r for r in records if _cell(r, rsd.oad) == want]
    if s == 2:
        return _range(records, rsd)
    if s == 3:
        picked: list[Record] = []
        for sub in rsd.ranges:
            got = _range(records, sub)
            if isinstance(got, int):
                return got
            picked += [r for r in got if r not in picked]
        return sorted(picked, key=lambda r: r.time)
    if s == 9:
        return [records[-rsd.n]] if 1 <= rsd.n <= len(records) else []
    if s == 10:
        return records[-rsd.n :] if rsd.n else []
    return DAR_OUT_OF_RANGE  # 4-8: collection-time selectors with a meter set (a concentrator's)


def columns(oi: int, rcsd: Rcsd) -> Rcsd:
    """The real columns of the answer: those asked for, or every column of the record when none is."""
    return rcsd or tuple(Csd(oad) for oad in DEFAULT_COLUMNS[oi])


def rows(records: list[Record], rcsd: Rcsd) -> tuple[tuple[Data, ...], ...]:
    """One cell per column per record; a ROAD column (another record object) is null on a meter."""
    return tuple(
        tuple(_cell(r, c.target) if isinstance(c.target, Oad) else NULL for c in rcsd) for r in records
    )


def record_result(oad: Oad, rsd: Rsd, rcsd: Rcsd, records: list[Record]) -> RecordResult:
    cols = columns(oad.oi, rcsd)
    picked = select(records, rsd)
    if isinstance(picked, int):
        return RecordResult(oad, cols, None, picked)
    return RecordResult(oad, cols, rows(picked, cols))
