"""What a section of the report is made of: figures (a value, a table and/or a plot, each with its
definition), the InfluxQL it was computed from, and notes counting what could not be used.

Layer: ingest reporting (pure data). Must not: compute, query or render.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Context", "Figure", "Plot", "Section", "Table", "pct"]


@dataclass(frozen=True, slots=True)
class Table:
    columns: tuple[str, ...]
    rows: Sequence[tuple[Any, ...]]  # cells: str | int | float | None
    limit: int = 200  # rows shown; the page says how many more there are


@dataclass(frozen=True, slots=True)
class Plot:
    """A chart to draw: `kind` bar | hbar | line; one value list per series, aligned with `categories`.
    `reference`: a horizontal (vertical for hbar) line, e.g. a promise; `shade`: category indices to
    highlight (month-start / month-end days)."""

    kind: str
    categories: list[str]
    series: dict[str, list[float | None]]
    ylabel: str
    reference: tuple[str, float] | None = None
    shade: tuple[int, ...] = ()
    stacked: bool = False


@dataclass(slots=True)
class Figure:
    key: str
    title: str
    definition: str
    value: str | None = None  # the headline figure, as shown
    table: Table | None = None
    plot: Plot | None = None
    data: dict[str, Any] = field(default_factory=dict)  # machine-readable, embedded in the page as JSON
    empty: str | None = None  # "no data" text when there was nothing to compute from


@dataclass(slots=True)
class Section:
    key: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    queries: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # rows skipped, with how many and why


@dataclass(frozen=True, slots=True)
class Context:
    """What the figures are judged against, from the ingest config and its topology; `as_of` is when the
    report was made (an open outage or follow-up is judged at that moment)."""

    as_of: float
    sla_preset: str = "seed"
    regions: Mapping[str, str] = field(default_factory=dict)  # area -> urban | rural | remote
    sites: Mapping[str, str] = field(default_factory=dict)  # gw -> site
    reconnect_s: Mapping[str, float] = field(default_factory=dict)  # site ("" = default) -> promise
    meters: Mapping[tuple[str, str], float] = field(default_factory=dict)  # expected meters -> interval
    default_interval_s: float = 900.0
    clock_warning_s: float = 300.0
    dissatisfied_levels: tuple[int, ...] = (4,)
    callback_deadline_s: float = 24 * 3600.0
    follow_s: float = 7 * 86400.0  # outages / arrears / ratings are followed this long past the period

    def reconnect_promise(self, gw: str) -> float:
        return self.reconnect_s.get(self.sites.get(gw, ""), self.reconnect_s.get("", 24 * 3600.0))


def pct(part: float, whole: float) -> str:
    return "–" if whole == 0 else f"{100 * part / whole:.1f} %"
