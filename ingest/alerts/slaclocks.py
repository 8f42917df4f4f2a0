"""SLA clocks on the work of an outage: the crew's arrival (from the operators' `arrived` action) and
the restoration (from the meters), each against its promise (ingest/alerts/sla.py).

Layer: ingest alert model (pure arithmetic). Must not: do I/O or read the wall clock.

A clock's state at `now`, counted from the outage's start:
- `ok`: under `at_risk_share` of its promise; `at_risk`: past that share, promise not yet missed;
  `broken`: the promise has passed and the thing has not happened;
- `met`: it happened in time; `missed`: it happened, late (the crew arrived after the promise);
- `moot` (arrival only): the supply came back before any crew was reported on site.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from .sla import Promise, sla_state

__all__ = ["Clock", "arrival_clock", "describe", "restoration_clock"]

ClockName = Literal["arrival", "restoration"]
ClockState = Literal["ok", "at_risk", "broken", "met", "missed", "moot"]
ALARMING: Final = frozenset({"at_risk", "broken", "missed"})


@dataclass(frozen=True, slots=True)
class Clock:
    name: ClockName
    state: ClockState
    elapsed_s: float  # from the outage's start to the event, or to `now` while it has not happened
    promise_s: float

    @property
    def alarming(self) -> bool:
        return self.state in ALARMING

    @property
    def ratio(self) -> float:
        return self.elapsed_s / self.promise_s


def _running(name: ClockName, elapsed: float, promise_s: float, share: float) -> Clock:
    return Clock(name, sla_state(elapsed, promise_s, share), elapsed, promise_s)


def arrival_clock(
    started: float,
    now: float,
    *,
    arrived_at: float | None,
    restored_at: float | None,
    promise: Promise,
    share: float,
) -> Clock:
    if arrived_at is not None:
        elapsed = max(0.0, arrived_at - started)
        return Clock(
            "arrival", "met" if elapsed <= promise.arrival_s else "missed", elapsed, promise.arrival_s
        )
    if restored_at is not None:
        return Clock("arrival", "moot", restored_at - started, promise.arrival_s)
    return _running("arrival", now - started, promise.arrival_s, share)


def restoration_clock(
    started: float, now: float, restored_at: float | None, promise: Promise, share: float
) -> Clock:
    return _running("restoration", (restored_at or now) - started, promise.restore_s, share)


_WORDING: Final[dict[str, str]] = {
    "at_risk": "at risk ({elapsed:.0f} min so far)",
    "broken": "broken ({elapsed:.0f} min so far)",
    "missed": "missed (crew on site after {elapsed:.0f} min)",
}


def describe(clocks: list[Clock]) -> str:
    """ "arrival promise of 30 min missed (crew on site after 41 min); restoration promise ..." for the
    alarming clocks."""
    parts = []
    for c in clocks:
        if c.alarming:
            how = _WORDING[c.state].format(elapsed=c.elapsed_s / 60)
            parts.append(f"{c.name} promise of {c.promise_s / 60:.0f} min {how}")
    return "; ".join(parts)
