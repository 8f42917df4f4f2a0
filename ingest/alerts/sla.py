"""Outage repair promises (arrival and restoration) per preset and region, and the SLA clock.

Layer: ingest alert model (pure tables and arithmetic). Must not: do I/O or read the wall clock.

Presets (figures from docs/domain.md; every figure in seconds, measured from the outage's start):

| preset      | urban arrival / restore | rural         | remote        |
|-------------|-------------------------|---------------|---------------|
| `seed`      | 30 min / 4 h            | 60 min / 6 h  | 90 min / 6 h  |
| `sgcc-2023` | 45 min / 45 min + 3 h   | 90 min / 90 min + 4 h | 120 min / 120 min + 4 h |
| `csg`       | 45 min / 4 h            | 90 min / 5 h  | 120 min / 5 h |

State Grid's 2023 text counts restoration "after arrival", so its restoration promise from the outage's
start is arrival + restoration (remote areas get the rural restoration figure, which the text does not
distinguish). Southern Grid's figures are read as counted from the outage's start, like the seed's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["PRESETS", "Preset", "Promise", "promise", "sla_state"]

Preset = Literal["seed", "sgcc-2023", "csg"]
_MIN: Final = 60.0
_HOUR: Final = 3600.0


@dataclass(frozen=True, slots=True)
class Promise:
    arrival_s: float
    restore_s: float  # from the outage's start


PRESETS: Final[dict[str, dict[str, Promise]]] = {
    "seed": {
        "urban": Promise(30 * _MIN, 4 * _HOUR),
        "rural": Promise(60 * _MIN, 6 * _HOUR),
        "remote": Promise(90 * _MIN, 6 * _HOUR),
    },
    "sgcc-2023": {
        "urban": Promise(45 * _MIN, 45 * _MIN + 3 * _HOUR),
        "rural": Promise(90 * _MIN, 90 * _MIN + 4 * _HOUR),
        "remote": Promise(120 * _MIN, 120 * _MIN + 4 * _HOUR),
    },
    "csg": {
        "urban": Promise(45 * _MIN, 4 * _HOUR),
        "rural": Promise(90 * _MIN, 5 * _HOUR),
        "remote": Promise(120 * _MIN, 5 * _HOUR),
    },
}


def promise(preset: str, region: str) -> Promise:
    """The promise for an area's region; an unknown region gets the urban (strictest) figures."""
    table = PRESETS[preset]
    return table.get(region) or table["urban"]


def sla_state(elapsed_s: float, restore_s: float, at_risk_share: float) -> Literal["ok", "at_risk", "broken"]:
    """Where an outage that has lasted `elapsed_s` stands against its restoration promise."""
    if elapsed_s >= restore_s:
        return "broken"
    if elapsed_s >= at_risk_share * restore_s:
        return "at_risk"
    return "ok"
