"""Outages by area, timed against the repair promise: arrival of the crew and restoration of supply.

Layer: ingest reporting (pure: query texts and figures). Must not: query or render.

An outage is an `area_outage` / `phase_outage` alert episode that started in the period (followed
`follow_s` past its end for its restoration). Start = the alert's start, restoration = its resolved
point (episodes.py), arrival = the first `arrived` operator action (`alert_action`, tags rule, subject,
action) on the same rule and subject from the outage's start until the next outage of that subject.
Promises: ingest/alerts/sla.py, by the area's region (topology) and the outage rule set's `sla_preset`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..alerts import sla
from .episodes import Episode, alert_query, episodes
from .model import Context, Figure, Plot, Section, Table, pct
from .period import Period, local, rfc3339
from .source import Row
from .stats import natural

__all__ = ["figures", "queries"]

RULES = ("area_outage", "phase_outage")
ALERTS, ARRIVALS = "outage alerts", "crew arrivals"


def queries(period: Period, ctx: Context) -> dict[str, str]:
    end = period.end + ctx.follow_s
    which = " OR ".join(f"\"rule\" = '{r}'" for r in RULES)
    return {
        ALERTS: alert_query(RULES, period.start, end),
        ARRIVALS: 'SELECT "by", "crew" FROM "alert_action" WHERE "action" = \'arrived\' '
        f"AND ({which}) AND time >= {rfc3339(period.start)} AND time < {rfc3339(end)} "
        'GROUP BY "rule", "subject"',
    }


@dataclass(slots=True)
class Judged:
    ep: Episode
    area: str
    region: str
    promise: sla.Promise
    arrival_s: float | None
    arrival: str  # met | missed | not due | awaiting
    restore: str  # met | missed | open

    @property
    def missed(self) -> list[str]:
        return [w for w, s in (("arrival", self.arrival), ("restoration", self.restore)) if s == "missed"]


def _area(subject: str) -> str:
    return subject.split("/")[1] if subject.count("/") >= 1 else subject


def _judge(ep: Episode, arrived: float | None, ctx: Context) -> Judged:
    area = _area(ep.subject)
    region = ctx.regions.get(area, "urban")
    promise = sla.promise(ctx.sla_preset, region)
    elapsed = ep.duration(ctx.as_of)
    if arrived is not None:
        arrival = "met" if arrived - ep.start <= promise.arrival_s else "missed"
    elif elapsed > promise.arrival_s:
        arrival = "missed"  # the promise passed with no crew recorded on site
    else:
        arrival = "not due" if ep.end is not None else "awaiting"
    if ep.end is not None:
        restore = "met" if ep.end - ep.start <= promise.restore_s else "missed"
    else:
        restore = "missed" if elapsed > promise.restore_s else "open"
    arrival_s = None if arrived is None else arrived - ep.start
    return Judged(ep, area, region, promise, arrival_s, arrival, restore)


def _windows(eps: list[Episode]) -> list[tuple[float, float]]:
    """Each outage's window for its crew's arrival: from its start to the next outage of its subject."""
    out = []
    for ep in eps:
        later = [e.start for e in eps if e.subject == ep.subject and e.start > ep.start]
        out.append((ep.start, min(later, default=math.inf)))
    return out


def _arrivals(eps: list[Episode], actions: list[Row], section: Section) -> dict[int, float]:
    """Episode index -> its first arrival; arrivals in no outage's window are counted in the notes."""
    out: dict[int, float] = {}
    unmatched = 0
    windows = _windows(eps)
    for a in actions:
        hits = [
            i
            for i, ep in enumerate(eps)
            if (a.get("rule"), a.get("subject")) == (ep.rule, ep.subject)
            and windows[i][0] <= a["time"] < windows[i][1]
        ]
        for i in hits[:1]:
            out.setdefault(i, a["time"])  # actions come sorted by time: the first one stays
        unmatched += not hits
    if unmatched:
        section.notes.append(f"{unmatched} 'arrived' action(s) fell in no outage that started in the period")
    return out


def figures(results: Mapping[str, list[Row]], period: Period, ctx: Context) -> Section:
    section = Section("outages", "Outages and the repair promise", queries=queries(period, ctx))
    eps, bad = episodes(results[ALERTS])
    eps = [e for e in eps if period.contains(e.start)]
    if bad:
        section.notes.append(f"{bad} outage alert point(s) without state or started_at were skipped")
    arrivals = _arrivals(eps, results[ARRIVALS], section)
    judged = [_judge(ep, arrivals.get(i), ctx) for i, ep in enumerate(eps)]
    section.figures += [_summary(judged, ctx), _by_area(judged), _misses(judged), _listing(judged)]
    return section


def _rate(judged: list[Judged], attr: str) -> dict[str, int]:
    states = [getattr(j, attr) for j in judged]
    return {"met": states.count("met"), "judged": states.count("met") + states.count("missed")}


def _summary(judged: list[Judged], ctx: Context) -> Figure:
    arrival, restore = _rate(judged, "arrival"), _rate(judged, "restore")
    return Figure(
        "outage_sla",
        "Repair promise compliance",
        f"Outages: area_outage and phase_outage alerts that started in the period. Arrival compliance = "
        f"outages whose crew arrived (first 'arrived' action) within the arrival promise / outages judged; "
        f"an outage with no arrival recorded counts as missed once the promise has passed, and is not "
        f"judged when supply came back before the crew was due. Restoration compliance = outages "
        f"restored (the alert's resolution, corrected by the meters' power-down records) within the "
        f"restoration promise, counted from the outage's start / outages judged (an open outage is "
        f"judged missed once past its promise). Promises: preset '{ctx.sla_preset}' by the area's "
        f"region (ingest/alerts/sla.py).",
        value=f"{len(judged)} outage(s); arrival {arrival['met']}/{arrival['judged']} "
        f"({pct(arrival['met'], arrival['judged'])}); restoration {restore['met']}/{restore['judged']} "
        f"({pct(restore['met'], restore['judged'])})",
        data={"outages": len(judged), "arrival": arrival, "restoration": restore},
        empty=None if judged else "no outages in the period",
    )


def _area_row(area: str, mine: list[Judged]) -> tuple[Any, ...]:
    a, r = _rate(mine, "arrival"), _rate(mine, "restore")
    minutes = [j.ep.duration(0) / 60 for j in mine if j.ep.end is not None]
    median = round(statistics.median(minutes), 1) if minutes else None
    return (
        area,
        mine[0].region,
        len(mine),
        f"{a['met']}/{a['judged']}",
        pct(a["met"], a["judged"]),
        f"{r['met']}/{r['judged']}",
        pct(r["met"], r["judged"]),
        median,
    )


def _by_area(judged: list[Judged]) -> Figure:
    areas = sorted({j.area for j in judged}, key=natural)
    rows, data = [], {}
    counts: dict[str, list[float | None]] = {"outages": [], "arrival met": [], "restoration met": []}
    for area in areas:
        mine = [j for j in judged if j.area == area]
        a, r = _rate(mine, "arrival"), _rate(mine, "restore")
        rows.append(_area_row(area, mine))
        data[area] = {"region": mine[0].region, "outages": len(mine), "arrival": a, "restoration": r}
        for name, n in zip(counts, (len(mine), a["met"], r["met"]), strict=True):
            counts[name].append(float(n))
    plot = Plot("bar", areas, counts, "outages")
    cols = (
        "area",
        "region",
        "outages",
        "arrival met",
        "arrival %",
        "restored in time",
        "restoration %",
        "median outage (min)",
    )
    return Figure(
        "outages_by_area",
        "Outages by area",
        "Per transformer area: outages that started in the period, how many met each promise (met / "
        "judged, as defined above) and the median outage length (start to restoration, restored "
        "outages only).",
        table=Table(cols, rows),
        plot=plot if areas else None,
        data=data,
        empty=None if areas else "no outages in the period",
    )


def _misses(judged: list[Judged]) -> Figure:
    missed = [j for j in judged if j.missed]
    rows = [(*_row(j), ", ".join(j.missed)) for j in missed]
    data = [{"subject": j.ep.subject, "start": j.ep.start, "missed": j.missed} for j in missed]
    return Figure(
        "outage_misses",
        "Promises missed",
        "Every outage that missed its arrival or its restoration promise, with the figures it was judged "
        "on (minutes from the outage's start).",
        table=Table((*_COLS, "missed"), rows),
        data={"misses": data},
        empty=None if missed else "no promise missed",
    )


_COLS = (
    "outage",
    "area",
    "region",
    "start (CST)",
    "arrival (min)",
    "promise (min)",
    "restored (min)",
    "promise (min)",
)


def _row(j: Judged) -> tuple[str | float | None, ...]:
    restored = None if j.ep.end is None else round((j.ep.end - j.ep.start) / 60, 1)
    arrival = None if j.arrival_s is None else round(j.arrival_s / 60, 1)
    return (
        j.ep.subject,
        j.area,
        j.region,
        local(j.ep.start).strftime("%Y-%m-%d %H:%M:%S"),
        arrival,
        round(j.promise.arrival_s / 60),
        restored,
        round(j.promise.restore_s / 60),
    )


def _listing(judged: list[Judged]) -> Figure:
    rows = [(*_row(j), j.arrival, j.restore) for j in judged]
    return Figure(
        "outage_list",
        "All outages",
        "Each outage with its arrival and restoration (minutes from its start; empty: none recorded / "
        "still open) and how each was judged: met, missed, not due (restored before the crew was due, "
        "no arrival recorded), awaiting (open, arrival promise not yet passed), open.",
        table=Table((*_COLS, "arrival", "restoration"), rows),
        empty=None if judged else "no outages in the period",
    )
