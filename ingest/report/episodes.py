"""Alert episodes (firing ... resolved) rebuilt from the points of the `alert` measurement.

Layer: ingest reporting (pure). Must not: query.

The alert engine writes one point per change (ingest/alerts/outputs.py): `firing` (also every update
of a firing alert) and `resolved`, each with `started_at` (s); a resolved point also has `duration_s`.
A resolved point may carry a corrected start (an outage back-filled from the meters' power-down
records), so an episode's start and end are taken from its resolved point when there is one:
start = started_at, end = started_at + duration_s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .period import rfc3339
from .source import Row

__all__ = ["Episode", "alert_query", "episodes"]


@dataclass(slots=True)
class Episode:
    rule: str
    subject: str
    start: float
    fired: float  # time of its first firing point
    end: float | None = None  # restoration / resolution; None while open
    value: float | None = None
    message: str = ""

    def duration(self, as_of: float) -> float:
        return (self.end if self.end is not None else as_of) - self.start


def alert_query(rules: tuple[str, ...], start: float, end: float) -> str:
    which = " OR ".join(f"\"rule\" = '{r}'" for r in rules)
    return (
        'SELECT "state", "started_at", "duration_s", "value", "message" FROM "alert" '
        f"WHERE ({which}) AND time >= {rfc3339(start)} AND time < {rfc3339(end)} "
        'GROUP BY "rule", "subject"'
    )


def episodes(points: list[Row]) -> tuple[list[Episode], int]:
    """The episodes of alert points (sorted by time), and how many points were unusable (no state or
    no started_at: not written by the engine)."""
    open_: dict[tuple[str, str], Episode] = {}
    done: list[Episode] = []
    bad = 0
    for p in points:
        key = (str(p.get("rule", "")), str(p.get("subject", "")))
        started = _num(p.get("started_at"))
        if started is None or p.get("state") not in ("firing", "resolved"):
            bad += 1
            continue
        ep = open_.get(key)
        if ep is None:
            ep = open_[key] = Episode(key[0], key[1], started, p["time"])
        ep.value = _num(p.get("value"))
        ep.message = str(p.get("message") or ep.message)
        if p["state"] == "resolved":
            duration = _num(p.get("duration_s"))
            ep.start = started
            ep.end = started + duration if duration is not None else p["time"]
            done.append(open_.pop(key))
    done.extend(open_.values())
    done.sort(key=lambda e: (e.start, e.rule, e.subject))
    return done, bad


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
