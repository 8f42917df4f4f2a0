"""What a simulated DL/T 645 prepaid meter remembers, as DL/T 645 catalogue items: the shared
`firmware_sim.meter_history` (local clock, daily freezes, power-down records, maximum demand, relay
event times) plus the 645 names of those values (daily_freeze_n_*, settlement days, power_down_n).

Layer: simulator device model. Pure logic driven by `observe(now)`; knows nothing of frames or data
identifiers (meter.py maps these values onto the DL/T 645 catalogue). Must not: do I/O, sleep, or read
the wall clock.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from protocols.dlt645 import Value

from ...meter_history import DAY, POWER_DOWN_DEPTH, local_datetime, local_timestamp
from ...meter_history import MeterHistory as SharedHistory

__all__ = ["FREEZE_DEPTH", "SETTLEMENT_DEPTH", "MeterHistory", "local_datetime", "local_timestamp"]

FREEZE_DEPTH: Final = 62  # 0506xxnn, n = 1..62 (dlt645.md §3.2)
SETTLEMENT_DEPTH: Final = 12  # 000100nn, n = 1..12


class MeterHistory(SharedHistory):
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

    def _freeze(self, n: int) -> dict[str, Value]:
        day = self.today - (n - 1) * DAY
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
