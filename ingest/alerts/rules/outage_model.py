"""The outage rules' configuration and memory: what `OutageRule` (ingest/alerts/rules/outage.py) keeps per
meter and per open outage, and how a meter stands at a moment.

Layer: ingest alert rules (pure data). Must not: judge (outage.py does), do I/O or read the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from pydantic import Field

from protocols.config import Frozen

from .. import sla

__all__ = ["DARK", "Meter", "Outage", "OutageConfig", "Status"]

DARK: Final = frozenset({"down", "low", "silent"})


class OutageConfig(Frozen):
    supply_threshold: float = Field(
        0.6, gt=0, lt=1, description="a voltage under this share of nominal_v is a supply loss (60-78 %)"
    )
    supply_threshold_by_class: dict[str, float] = Field(
        {}, description="per customer_class override of supply_threshold"
    )
    judgement_delay_s: float = Field(60.0, ge=0, description="how long a loss must hold before alerting")
    silence_s: float = Field(180.0, gt=0, description="no reading for this long = silent (3 x 60 s poll)")
    silence_s_by_gateway: dict[str, float] = Field({}, description="per gateway override of silence_s")
    comm_fault_delay_s: float = Field(
        120.0, ge=0, description="a lone silent meter waits this long (an area outage may be forming)"
    )
    area_share: float = Field(0.5, gt=0, le=1, description="share of an area's meters dark = area outage")
    restored_share: float = Field(0.8, gt=0, le=1, description="share back that ends an outage")
    area_min_meters: int = Field(2, ge=1, description="smallest area judged as an area")
    phase_min_meters: int = Field(2, ge=1, description="fewest meters on a phase to call a phase outage")
    backfill_wait_s: float = Field(120.0, ge=0, description="wait for power-down records after restoring")
    backfill_lookback_s: float = Field(3600.0, ge=0, description="records this long before opening count")
    clear_s: float = Field(0.0, ge=0, description="hysteresis of the meter-level alerts")
    sla_preset: sla.Preset = Field("seed", description="repair promise preset: seed, sgcc-2023, csg")
    sla_at_risk_share: float = Field(0.8, gt=0, le=1, description="share of a promise that is 'at risk'")
    sla_arrival: bool = Field(
        False,
        description="also judge the crew's arrival promise (needs operators reporting `arrived`: without"
        " them every outage would miss it)",
    )


@dataclass(slots=True)
class Meter:
    last_seen: float | None = None
    low_since: float | None = None
    down_since: float | None = None
    relay: str = ""
    phase_low: list[str] = field(default_factory=list)  # three-phase meters: phases under threshold
    downs: list[float] = field(default_factory=list)  # power-down record times (s), newest last
    ups: list[float] = field(default_factory=list)
    excused: bool = False  # silent, but covered by an outage or without a lit neighbour, since last heard
    comm_from: float | None = None  # when its comm_fault condition began: the pending delay counts from it


@dataclass(slots=True)
class Outage:
    rule: str  # area_outage | phase_outage
    area: str
    phase: str
    opened_at: float
    started_at: float
    members: list[str] = field(default_factory=list)  # "gw/dev" of the meters dark while open
    restored_at: float | None = None
    arrived_at: float | None = None  # the first crew on site (an operator's `arrived` action)


@dataclass(frozen=True, slots=True)
class Status:
    kind: Literal["ok", "down", "low", "silent", "tripped", "unknown"]
    since: float = 0.0

    @property
    def dark(self) -> bool:
        return self.kind in DARK
