"""The reading-health rules' configuration (`alerts.rules.reading`) and per-meter memory.

Layer: ingest alert rules (pure data). Must not: do I/O or judge readings (reading.py does).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

from pydantic import Field

from protocols.config import Frozen

__all__ = ["METER_FIELDS", "Meter", "ReadingConfig"]


class ReadingConfig(Frozen):
    """Section `alerts.rules.reading` of ingest.yaml."""

    interval_s: float = Field(900.0, gt=0, description="expected reading interval of a meter (s)")
    interval_by_class: dict[str, float] = Field(
        default_factory=dict, description="expected interval per customer class, overrides interval_s"
    )
    interval_by_device: dict[str, float] = Field(
        default_factory=dict, description="expected interval per 'gw/dev', overrides the class"
    )
    window_factor: float = Field(3.0, ge=1, description="missed_reading window = interval x factor")
    expect_topology_meters: bool = Field(
        True,
        description="meters in the topology (with an area or account) that never report are missed "
        "too, counted from the rule's first tick",
    )
    decrease_tolerance_kwh: float = Field(0.01, ge=0, description="register_decrease tolerance (kWh)")
    reading_clear_s: float = Field(
        3600.0,
        ge=0,
        description="how long a per-reading alert (decrease, runaway) stays after a good reading",
    )
    runaway_factor: float = Field(3.0, gt=0, description="register_runaway: delta > power x time x factor")
    runaway_floor_kwh: float = Field(0.5, ge=0, description="register_runaway: plus this floor (kWh)")
    runaway_max_gap_s: float = Field(
        7200.0, gt=0, description="register_runaway is judged only across gaps up to this (spot power)"
    )
    stopped_window_s: float = Field(3600.0, gt=0, description="register_stopped: unchanged under load for")
    stopped_min_power_kw: float = Field(0.1, ge=0, description="register_stopped: load if power above (kW)")
    stopped_min_current_a: float = Field(0.5, ge=0, description="register_stopped: or a current above (A)")
    zero_days: float = Field(3.0, gt=0, description="zero_consumption: no increase for this many days")
    swing_threshold: dict[str, float] = Field(
        default_factory=lambda: {"residential": 0.5, "commercial": 0.3, "industrial": 2.0},
        description="consumption_swing: day-on-day relative change per customer class (0.5 = 50 %)",
    )
    swing_default: float = Field(0.5, gt=0, description="consumption_swing threshold of other classes")
    swing_min_base_kwh: float = Field(
        1.0, ge=0, description="consumption_swing: the previous day must have used at least this (kWh)"
    )
    utc_offset_s: float = Field(8 * 3600.0, description="local day boundary (the meters' freeze at 00:00)")
    clock_warning_s: float = Field(300.0, gt=0, description="clock_drift warning above |skew| (s)")
    clock_critical_s: float = Field(600.0, gt=0, description="clock_drift critical above |skew| (s)")


@dataclass(slots=True)
class Meter:
    last_ts: float | None = None  # newest sample of any kind (s)
    expected_since: float | None = None  # never heard: watched since (first tick, or a reload)
    missing: bool = False  # missed_reading reported active
    e_ts: float | None = None  # newest energy sample
    e_kwh: float = 0.0
    e_power: float | None = None
    base_kwh: float = 0.0  # register at the last increase (zero_consumption)
    increase_ts: float = 0.0
    load_since: float | None = None  # register_stopped
    day: int | None = None  # local day of day_kwh
    day_kwh: float = 0.0  # first register value of that day
    prev_day: int | None = None  # day of prev_use
    prev_use: float = 0.0


METER_FIELDS: Final = tuple(f.name for f in fields(Meter))
