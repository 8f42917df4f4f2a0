"""What a simulated prepaid meter remembers beyond `PrepaidMeterPhysics`, whatever protocol it speaks:
its local clock, daily freezes, power-down records, maximum demand and relay event times.

Layer: simulator device model (shared by the DL/T 645 and DL/T 698.45 meters; a kind's folder maps
these onto its own objects: firmware_sim/devices/dlt645/history.py onto 645 items, devices/dlt698 onto
5004 freezes and 3011 events). Must not: do I/O, sleep, read the wall clock, or know any protocol.

The meter's clock is China Standard Time (UTC+8, naive datetimes, as on the wire) plus the physics'
clock skew. Days before the simulation started are synthesised backwards from the start energies with
the noiseless load profile (so they are consistent with the tariff registers); a day that would need
negative energy predates the meter's installation and its records are empty (`None`).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Final, TypeAlias

from .prepaid import CST_OFFSET_S, LOAD_SHAPE, TARIFF_OF_HOUR, PrepaidMeterPhysics

POWER_DOWN_DEPTH: Final = 10  # power-down records kept (645 031100nn, 698 3011 attribute 5)
HISTORY_DAYS: Final = 400  # > 12 months back: covers the oldest settlement day
DAY: Final = dt.timedelta(days=1)
_EPOCH: Final = dt.date(1970, 1, 1)

Energies: TypeAlias = tuple[float, float, float, float]  # kWh in tariffs 1..4
Outage: TypeAlias = tuple[dt.datetime, dt.datetime]  # (start, end) in meter time


def local_datetime(t: float) -> dt.datetime:
    """UNIX seconds -> the naive China Standard Time a meter shows."""
    return dt.datetime.fromtimestamp(t + CST_OFFSET_S, dt.UTC).replace(tzinfo=None)


def local_timestamp(when: dt.datetime) -> float:
    """Inverse of `local_datetime`."""
    return when.replace(tzinfo=dt.UTC).timestamp() - CST_OFFSET_S


def energies_before(
    physics: PrepaidMeterPhysics, energies: list[float], local: float, seconds: float
) -> None:
    """Take out of `energies` what the noiseless profile consumed in the `seconds` before `local`
    (local seconds; a step that stays within one hour): the backwards walk of the synthesised past."""
    hour = int((local - seconds) // 3600) % 24
    energies[TARIFF_OF_HOUR[hour] - 1] -= physics.peak_kw * LOAD_SHAPE[hour] * seconds / 3600


class MeterHistory:
    def __init__(self, physics: PrepaidMeterPhysics, seed: int, start_time: float) -> None:
        self.physics = physics
        self.snapshots: dict[dt.date, Energies | None] = {}  # energies at 00:00 of that local day
        self.today = self.meter_now(start_time).date()
        self._synthesise(start_time)
        self.snapshots.setdefault(self.today, energies_of(physics.energy))  # a skewed clock past midnight
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
            snapshot = energies_of(self.physics.energy)
            day = self.today + DAY
            while day <= today:
                self.snapshots[day] = snapshot
                day += DAY
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
        local = start_time + CST_OFFSET_S  # local seconds: arithmetic, no datetime per hour
        installed = True
        while True:
            if local % 86400 == 0:
                installed = installed and min(energies) >= 0
                day = _EPOCH + dt.timedelta(days=int(local // 86400))
                self.snapshots[day] = energies_of(energies) if installed else None
                if day <= oldest:
                    return
            hour_start = (local // 3600) * 3600
            if hour_start == local:
                hour_start -= 3600
            energies_before(self.physics, energies, local, local - hour_start)
            local = hour_start

    # ---- values ----------------------------------------------------------------------------------

    def daily_freezes(self) -> list[tuple[dt.date, Energies]]:
        """The daily freezes (day, energies at its 00:00), newest first; days before installation left out."""
        return [(day, e) for day, e in sorted(self.snapshots.items(), reverse=True) if e is not None]

    def settlement_date(self, n: int) -> dt.date:
        """The n-th previous settlement day (settlement day 1 = the 1st, 00:00)."""
        month = self.today.year * 12 + self.today.month - 1 - (n - 1)
        return dt.date(month // 12, month % 12 + 1, 1)


def energies_of(values: list[float]) -> Energies:
    return (values[0], values[1], values[2], values[3])


def _outages(seed: int, start_time: float, count: int) -> list[Outage]:
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
