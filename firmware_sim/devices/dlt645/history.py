"""What a simulated DL/T 645 prepaid meter remembers beyond `PrepaidMeterPhysics`: its local clock,
daily freezes, settlement-day energies, power-down records, maximum demand and relay event times.

Layer: simulator device model. Pure logic driven by `observe(now)`; knows nothing of frames or data
identifiers (firmware_sim/devices/dlt645.py maps these values onto the DL/T 645 catalogue). Must not:
do I/O, sleep, or read the wall clock.

The meter's clock is China Standard Time (UTC+8, naive datetimes, as on the wire) plus the physics'
clock skew. Days before the simulation started are synthesised backwards from the start energies with
the noiseless load profile (so they are consistent with the tariff registers); a day that would need
negative energy predates the meter's installation and its records are empty (fill, `None`).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Final, TypeAlias

from protocols.dlt645 import Value

from ...prepaid import CST_OFFSET_S, LOAD_SHAPE, TARIFF_OF_HOUR, PrepaidMeterPhysics

FREEZE_DEPTH: Final = 62  # 0506xxnn, n = 1..62 (dlt645.md §3.2)
SETTLEMENT_DEPTH: Final = 12  # 000100nn, n = 1..12
POWER_DOWN_DEPTH: Final = 10  # 031100nn, n = 1..10
HISTORY_DAYS: Final = 400  # > 12 months back: covers the oldest settlement day
_DAY: Final = dt.timedelta(days=1)
_EPOCH: Final = dt.date(1970, 1, 1)

Energies: TypeAlias = tuple[float, float, float, float]  # kWh in tariffs 1..4


def local_datetime(t: float) -> dt.datetime:
    """UNIX seconds -> the naive China Standard Time a meter shows."""
    return dt.datetime.fromtimestamp(t + CST_OFFSET_S, dt.UTC).replace(tzinfo=None)


def local_timestamp(when: dt.datetime) -> float:
    """Inverse of `local_datetime`."""
    return when.replace(tzinfo=dt.UTC).timestamp() - CST_OFFSET_S


class MeterHistory:
    def __init__(self, physics: PrepaidMeterPhysics, seed: int, start_time: float) -> None:
        self.physics = physics
        self.snapshots: dict[dt.date, Energies | None] = {}  # energies at 00:00 of that local day
        self.today = self.meter_now(start_time).date()
        self._synthesise(start_time)
        self.snapshots.setdefault(self.today, _energies(physics.energy))  # a skewed clock past midnight
        self.outages = _outages(seed, start_time, physics.power_down_count)
        power = physics.power_kw(start_time)
        self.max_demand: tuple[float, dt.datetime] = (power, self._minute(start_time))
        self.trip_time: dt.datetime | None = None
        self.close_time: dt.datetime | None = None
        self._commanded = physics.commanded_closed
        self.clock_sets = 0

    def record_outage(self, start: float, end: float) -> None:
        """A power-down that happened during the simulation: newest first, the last 10 kept."""
        record = (self.meter_now(start), self.meter_now(end))
        self.outages = [record, *self.outages][:POWER_DOWN_DEPTH]

    def meter_now(self, now: float) -> dt.datetime:
        return local_datetime(now + self.physics.clock_skew_s).replace(microsecond=0)

    def _minute(self, now: float) -> dt.datetime:
        return self.meter_now(now).replace(second=0)

    # ---- time ------------------------------------------------------------------------------------

    def observe(self, now: float) -> None:
        """Record what happened up to `now` (call after `physics.advance(now)`)."""
        today = self.meter_now(now).date()
        if today > self.today:  # midnight passed: the daily freeze (several days if time jumped)
            snapshot = _energies(self.physics.energy)
            day = self.today + _DAY
            while day <= today:
                self.snapshots[day] = snapshot
                day += _DAY
            self.today = today
            oldest = today - dt.timedelta(days=HISTORY_DAYS)
            for old in [d for d in self.snapshots if d < oldest]:
                del self.snapshots[old]
        power = self.physics.power_kw(now)
        if power > self.max_demand[0]:
            self.max_demand = (power, self._minute(now))
        self.relay_event(now)

    def relay_event(self, now: float) -> None:
        """Note the time of a trip or close command (ours or the meter's own arrears trip)."""
        commanded = self.physics.commanded_closed
        if commanded != self._commanded:
            self._commanded = commanded
            if commanded:
                self.close_time = self.meter_now(now)
            else:
                self.trip_time = self.meter_now(now)

    def _synthesise(self, start_time: float) -> None:
        """Walk back hour by hour from the start energies, noting each local midnight."""
        energies = list(self.physics.energy)
        oldest = self.today - dt.timedelta(days=HISTORY_DAYS)
        local = start_time + CST_OFFSET_S  # local seconds: integer arithmetic, no datetime per hour
        installed = True
        while True:
            if local % 86400 == 0:
                installed = installed and min(energies) >= 0
                day = _EPOCH + dt.timedelta(days=int(local // 86400))
                self.snapshots[day] = _energies(energies) if installed else None
                if day <= oldest:
                    return
            hour_start = (local // 3600) * 3600
            if hour_start == local:
                hour_start -= 3600
            hour = int(hour_start // 3600) % 24
            energies[TARIFF_OF_HOUR[hour] - 1] -= (
                self.physics.peak_kw * LOAD_SHAPE[hour] * (local - hour_start) / 3600
            )
            local = hour_start

    # ---- values ----------------------------------------------------------------------------------

    def values(self, now: float) -> dict[str, Value]:
        out: dict[str, Value] = {
            "meter_date": self.meter_now(now).date(),
            "meter_time": self.meter_now(now).time(),
            "meter_datetime": self.meter_now(now),
            "trip_last_time": self.trip_time,
            "close_last_time": self.close_time,
            "clock_set_count": self.clock_sets,
        }
        for n in range(1, FREEZE_DEPTH + 1):
            out.update(self._freeze(n))
        last_month = self.snapshots.get(self.settlement_date(1))  # 1997 `941x`: at the end of last month
        out["energy_import_prev_month_kwh"] = None if last_month is None else round(sum(last_month), 2)
        for t in range(1, 5):
            out[f"energy_import_prev_month_t{t}_kwh"] = (
                None if last_month is None else round(last_month[t - 1], 2)
            )
        for n in range(1, SETTLEMENT_DEPTH + 1):
            energies = self.snapshots.get(self.settlement_date(n))
            out[f"energy_import_settle{n}_kwh"] = None if energies is None else round(sum(energies), 2)
        for n in range(1, POWER_DOWN_DEPTH + 1):
            start, end = self.outages[n - 1] if n <= len(self.outages) else (None, None)
            out[f"power_down_{n}"] = {"start": start, "end": end}
        return out

    def settlement_date(self, n: int) -> dt.date:
        """The n-th previous settlement day (settlement day 1 = the 1st, 00:00)."""
        month = self.today.year * 12 + self.today.month - 1 - (n - 1)
        return dt.date(month // 12, month % 12 + 1, 1)

    def _freeze(self, n: int) -> dict[str, Value]:
        day = self.today - (n - 1) * _DAY
        energies = self.snapshots.get(day)
        p = f"daily_freeze_{n}"
        out: dict[str, Value] = {
            f"{p}_time": None if energies is None else dt.datetime.combine(day, dt.time())
        }
        for kind in ("import", "export"):
            tariffs = energies if kind == "import" or energies is None else (0.0, 0.0, 0.0, 0.0)
            out[f"{p}_energy_{kind}_kwh"] = None if tariffs is None else round(sum(tariffs), 2)
            for t in range(1, 5):
                out[f"{p}_energy_{kind}_t{t}_kwh"] = None if tariffs is None else round(tariffs[t - 1], 2)
        return out


def _energies(values: list[float]) -> Energies:
    return (values[0], values[1], values[2], values[3])


def _outages(seed: int, start_time: float, count: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """The last power-downs (start, end), newest first, before the simulation started."""
    rng = random.Random(f"gridedge-dlt645-outages:{seed}")
    out = []
    end = start_time
    for _ in range(min(count, POWER_DOWN_DEPTH)):
        end -= rng.uniform(0.5, 20.0) * 86400
        duration = rng.uniform(60.0, 4 * 3600.0)
        out.append(
            (
                local_datetime(end - duration).replace(microsecond=0),
                local_datetime(end).replace(microsecond=0),
            )
        )
        end -= duration
    return out
