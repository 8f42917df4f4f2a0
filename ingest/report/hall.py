"""Business hall: tickets served, waits by business type and hour of day, month-start / month-end peaks
and abandonment; satisfaction and follow-ups come from ratings.py into the same section.

Layer: ingest reporting (pure: query texts and figures). Must not: query or render.

Waits are the `wait_s` of `service_started` (one per ticket served: issue, or transfer, to the start of
service); a ticket's business type is that of its latest `ticket_issued` / `ticket_transferred` event in
the same hall before service; its hour of day is the local hour it joined the queue (start - wait).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from . import ratings
from .model import Context, Figure, Plot, Section, Table, pct
from .period import Period, local, month_days, rfc3339
from .source import Row
from .stats import ident, natural, quantile

__all__ = ["figures", "queries"]

ISSUED, STARTED, FINISHED, ABANDONED = "tickets issued", "service started", "service finished", "abandoned"


def _events(kinds: tuple[str, ...], fields: str, period: Period, group: str) -> str:
    which = " OR ".join(f"\"kind\" = '{k}'" for k in kinds)
    return (
        f'SELECT {fields} FROM "hall_event" WHERE ({which}) AND time >= {rfc3339(period.start)} '
        f"AND time < {rfc3339(period.end)} GROUP BY {group}"
    )


def queries(period: Period, ctx: Context) -> dict[str, str]:
    return {
        ISSUED: _events(
            ("ticket_issued", "ticket_transferred"),
            '"ticket", "business", "business_name"',
            period,
            '"hall", "kind"',
        ),
        STARTED: _events(("service_started",), '"ticket", "wait_s"', period, '"hall", "counter"'),
        FINISHED: _events(("service_finished",), '"ticket", "staff"', period, '"hall", "counter"'),
        ABANDONED: _events(("ticket_abandoned",), '"ticket", "reason"', period, '"hall"'),
        **ratings.queries(period, ctx),
    }


def figures(results: Mapping[str, list[Row]], period: Period, ctx: Context) -> Section:
    section = Section("hall", "Business hall", queries=queries(period, ctx))
    issued = [r for r in results[ISSUED] if r.get("kind") == "ticket_issued"]
    waits = _waits(results[ISSUED], results[STARTED], section)
    section.figures += [
        _tickets(issued, results[FINISHED], results[ABANDONED]),
        _by_business(waits),
        _by_hour(waits),
        _by_business_hour(waits),
        _peaks(issued, period),
    ]
    section.figures += ratings.figures(results, results[FINISHED], ctx, section)
    return section


def _tickets(issued: list[Row], finished: list[Row], abandoned: list[Row]) -> Figure:
    n_issued, n_served, n_abandoned = len(issued), len(finished), len(abandoned)
    return Figure(
        "hall_tickets",
        "Tickets served and abandonment",
        "Tickets issued = ticket_issued events; served = service_finished events; abandoned = "
        "ticket_abandoned events (no-shows after the recalls and tickets cleared at day end); abandonment "
        "rate = abandoned / issued, all in the period.",
        value=f"{n_served} served of {n_issued} issued; {n_abandoned} abandoned "
        f"({pct(n_abandoned, n_issued)})",
        data={"issued": n_issued, "served": n_served, "abandoned": n_abandoned},
        empty=None if n_issued or n_served else "no hall events in the period",
    )


def _business_names(issues: list[Row]) -> dict[str, str]:
    return {ident(r.get("business")): str(r["business_name"]) for r in issues if r.get("business_name")}


def _waits(issues: list[Row], started: list[Row], section: Section) -> list[dict[str, Any]]:
    names = _business_names(issues)
    latest: dict[tuple[str, str], list[Row]] = {}
    for r in issues:
        latest.setdefault((str(r.get("hall", "")), ident(r.get("ticket"))), []).append(r)
    out, unknown, no_wait = [], 0, 0
    for s in started:
        wait = s.get("wait_s")
        if not isinstance(wait, int | float):
            no_wait += 1
            continue
        queue = [
            r
            for r in latest.get((str(s.get("hall", "")), ident(s.get("ticket"))), [])
            if r["time"] <= s["time"]
        ]
        business = "unknown"
        if queue:
            issue = queue[-1]
            number = ident(issue.get("business"))
            business = str(issue.get("business_name") or names.get(number) or f"business {number}")
        else:
            unknown += 1
        out.append({"wait_s": float(wait), "business": business, "hour": local(s["time"] - wait).hour})
    if unknown:
        section.notes.append(
            f"{unknown} service start(s) without their ticket's issue in the period: business type 'unknown'"
        )
    if no_wait:
        section.notes.append(f"{no_wait} service start(s) without wait_s were skipped")
    return out


def _wait_rows(groups: dict[Any, list[float]]) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    rows, data = [], {}
    for key in sorted(groups):
        values = groups[key]
        p50, p90 = quantile(values, 0.5), quantile(values, 0.9)
        rows.append((key, len(values), _min(p50), _min(p90)))
        data[str(key)] = {"n": len(values), "p50_s": p50, "p90_s": p90}
    return rows, data


def _min(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 2)


_WAIT_DEF = (
    "Wait = wait_s of each service_started (from taking the ticket, or its transfer, to the start "
    "of service; abandoned tickets have none). p50 / p90 = the median and the 90th percentile, "
    "linear interpolation between the closest ranks, in minutes."
)


def _by_business(waits: list[dict[str, Any]]) -> Figure:
    groups: dict[Any, list[float]] = {}
    for w in waits:
        groups.setdefault(w["business"], []).append(w["wait_s"])
    rows, data = _wait_rows(groups)
    names = [str(r[0]) for r in rows]
    plot = Plot("bar", names, {"p50": [r[2] for r in rows], "p90": [r[3] for r in rows]}, "wait (min)")
    return Figure(
        "wait_by_business",
        "Wait by business type",
        _WAIT_DEF + " Business type: of the ticket's latest issue or transfer before service.",
        table=Table(("business", "served", "p50 (min)", "p90 (min)"), rows),
        plot=plot if rows else None,
        data=data,
        empty=None if rows else "no service started in the period",
    )


def _by_hour(waits: list[dict[str, Any]]) -> Figure:
    groups: dict[Any, list[float]] = {}
    for w in waits:
        groups.setdefault(w["hour"], []).append(w["wait_s"])
    rows, data = _wait_rows(groups)
    hours = [f"{r[0]:02d}:00" for r in rows]
    plot = Plot("line", hours, {"p50": [r[2] for r in rows], "p90": [r[3] for r in rows]}, "wait (min)")
    return Figure(
        "wait_by_hour",
        "Wait by hour of day",
        _WAIT_DEF + " Hour of day: the local (CST) hour the customer joined the queue (service start - "
        "wait).",
        table=Table(
            ("hour (CST)", "served", "p50 (min)", "p90 (min)"),
            [(h, *r[1:]) for h, r in zip(hours, rows, strict=True)],
        ),
        plot=plot if rows else None,
        data=data,
        empty=None if rows else "no service started in the period",
    )


def _by_business_hour(waits: list[dict[str, Any]]) -> Figure:
    businesses = sorted({w["business"] for w in waits}, key=natural)
    cells: dict[tuple[int, str], list[float]] = {}
    for w in waits:
        cells.setdefault((w["hour"], w["business"]), []).append(w["wait_s"])
    rows: list[tuple[Any, ...]] = []
    data: dict[str, dict[str, Any]] = {}
    for hour in sorted({h for h, _ in cells}):
        row: list[Any] = [f"{hour:02d}:00"]
        for b in businesses:
            values = cells.get((hour, b), [])
            p50, p90 = _min(quantile(values, 0.5)), _min(quantile(values, 0.9))
            row.append(f"{p50:g} / {p90:g} ({len(values)})" if values else None)
            if values:
                data.setdefault(b, {})[str(hour)] = {
                    "n": len(values),
                    "p50_s": quantile(values, 0.5),
                    "p90_s": quantile(values, 0.9),
                }
        rows.append(tuple(row))
    return Figure(
        "wait_by_business_hour",
        "Wait by business type and hour of day",
        _WAIT_DEF + " Each cell: p50 / p90 in minutes (tickets served) of one business type at one local "
        "(CST) hour of joining the queue.",
        table=Table(("hour (CST)", *businesses), rows),
        data=data,
        empty=None if rows else "no service started in the period",
    )


def _edge(day: date) -> str:
    if day.day <= 3:
        return "month start"
    return "month end" if day.day > month_days(day) - 3 else ""


def _peaks(issued: list[Row], period: Period) -> Figure:
    per_day = Counter(local(r["time"]).date() for r in issued)
    first, last = local(period.start).date(), local(period.end - 1e-3).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    edge = [d for d in days if _edge(d) and per_day[d]]
    other = [d for d in days if not _edge(d) and per_day[d]]
    edge_avg = sum(per_day[d] for d in edge) / len(edge) if edge else None
    other_avg = sum(per_day[d] for d in other) / len(other) if other else None
    ratio = edge_avg / other_avg if edge_avg is not None and other_avg else None
    busiest = max(days, key=lambda d: per_day[d]) if per_day else None
    value = (
        f"month start/end {edge_avg:.1f} tickets/day"
        if edge_avg is not None
        else "month start/end: no tickets"
    )
    value += f", other days {other_avg:.1f}" if other_avg is not None else ", other days: no tickets"
    value += f" (x{ratio:.2f})" if ratio is not None else ""
    counts: dict[str, list[float | None]] = {"tickets issued": [float(per_day[d]) for d in days]}
    shade = tuple(i for i, d in enumerate(days) if _edge(d))
    plot = Plot("bar", [d.strftime("%m-%d") for d in days], counts, "tickets", shade=shade)
    return Figure(
        "hall_peaks",
        "Month-start and month-end peaks",
        "Tickets issued per local (CST) day; shaded: the first 3 and the last 3 days of a month (billing "
        "dates). Averages are over the days the hall issued at least one ticket; the ratio is month "
        "start/end over the other days.",
        value=value,
        plot=plot if per_day else None,
        table=Table(("busiest day", "tickets"), [(busiest.isoformat(), per_day[busiest])] if busiest else []),
        data={
            "edge_avg": edge_avg,
            "other_avg": other_avg,
            "ratio": ratio,
            "per_day": {d.isoformat(): per_day[d] for d in days if per_day[d]},
        },
        empty=None if per_day else "no tickets issued in the period",
    )
