"""Business hall ratings: satisfaction per counter and per staff member, and the follow-up of each
dissatisfied rating (the customer called back).

Layer: ingest reporting (pure). Must not: query or render.

A rating is satisfied when its label is "very satisfied" or "satisfied" (a pad without labels: level 1
or 2), dissatisfied when labelled so (without labels: a level in the hall rules' `dissatisfied_levels`).
Follow-ups: every dissatisfied rating in the period needs a `callback` operator action (`alert_action`,
action callback) on its counter's subject (hall/{hall}/counter-{n}, or a subject under it) with rule
dissatisfied_rating or rating_followup; callbacks close that counter's dissatisfied ratings oldest
first. `rating_followup` alerts (the engine's own deadline clock) are counted beside.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .episodes import alert_query, episodes
from .model import Context, Figure, Plot, Section, Table, pct
from .period import Period, local, rfc3339
from .source import Row
from .stats import ident, natural

__all__ = ["figures", "queries"]

RATINGS, CALLBACKS, FOLLOWUP = "ratings", "callbacks", "rating_followup alerts"
_SATISFIED = frozenset({"very satisfied", "satisfied"})


def queries(period: Period, ctx: Context) -> dict[str, str]:
    end = period.end + ctx.follow_s
    return {
        RATINGS: f'SELECT "score", "level", "ticket" FROM "rating" WHERE time >= {rfc3339(period.start)} '
        f'AND time < {rfc3339(period.end)} GROUP BY "hall", "counter", "staff"',
        CALLBACKS: 'SELECT "by", "outcome" FROM "alert_action" WHERE "action" = \'callback\' '
        f'AND time >= {rfc3339(period.start)} AND time < {rfc3339(end)} GROUP BY "rule", "subject"',
        FOLLOWUP: alert_query(("rating_followup",), period.start, end),
    }


def _verdict(r: Row, ctx: Context) -> tuple[bool, bool]:
    """(satisfied, dissatisfied)"""
    label = str(r.get("level") or "").lower()
    score = r.get("score")
    if label:
        return label in _SATISFIED, label == "dissatisfied"
    number = int(score) if isinstance(score, int | float) else None
    return number is not None and number <= 2, number in ctx.dissatisfied_levels


def figures(
    results: Mapping[str, list[Row]], finished: list[Row], ctx: Context, section: Section
) -> list[Figure]:
    rated = []
    for r in results[RATINGS]:
        ok, bad = _verdict(r, ctx)
        rated.append({**r, "staff": ident(r.get("staff")), "satisfied": ok, "dissatisfied": bad})
    served_counter: dict[tuple[str, str], int] = {}
    served_staff: dict[str, int] = {}
    for f in finished:
        key = (str(f.get("hall", "")), str(f.get("counter", "")))
        served_counter[key] = served_counter.get(key, 0) + 1
        served_staff[ident(f.get("staff"))] = served_staff.get(ident(f.get("staff")), 0) + 1
    by_counter = _group(rated, lambda r: (str(r.get("hall", "")), str(r.get("counter", ""))), served_counter)
    by_staff = _group(rated, lambda r: r["staff"], served_staff)
    return [
        _satisfaction("satisfaction_by_counter", "Satisfaction per counter", ("hall", "counter"), by_counter),
        _satisfaction("satisfaction_by_staff", "Satisfaction per staff member", ("staff",), by_staff),
        _followups(rated, results, ctx, section),
    ]


def _group(rated: list[dict[str, Any]], key: Any, served: Mapping[Any, int]) -> dict[Any, dict[str, int]]:
    out: dict[Any, dict[str, int]] = {}
    for r in rated:
        g = out.setdefault(key(r), {"rated": 0, "satisfied": 0, "dissatisfied": 0})
        g["rated"] += 1
        g["satisfied"] += r["satisfied"]
        g["dissatisfied"] += r["dissatisfied"]
    for k, g in out.items():
        g["served"] = served.get(k, 0)
    return out


def _satisfaction(key: str, title: str, head: tuple[str, ...], groups: dict[Any, dict[str, int]]) -> Figure:
    rows, data, names, rates = [], {}, [], []
    for k in sorted(groups, key=natural):
        g = groups[k]
        parts = k if isinstance(k, tuple) else (k,)
        rows.append(
            (
                *parts,
                g["served"],
                g["rated"],
                pct(g["rated"], g["served"]),
                g["satisfied"],
                pct(g["satisfied"], g["rated"]),
                g["dissatisfied"],
            )
        )
        name = " / ".join(parts)
        data[name] = {**g, "rate": g["satisfied"] / g["rated"] if g["rated"] else None}
        names.append(name)
        rates.append(100 * g["satisfied"] / g["rated"] if g["rated"] else None)
    cols = (*head, "served", "rated", "participation", "satisfied", "satisfaction", "dissatisfied")
    return Figure(
        key,
        title,
        "Satisfaction rate = (very satisfied + satisfied) / rated; participation = rated / served "
        "(service_finished events); ratings and services in the period. Without a label, levels 1-2 are "
        "satisfied.",
        table=Table(cols, rows),
        plot=Plot("hbar", names, {"satisfaction %": rates}, "satisfaction (%)") if rows else None,
        data=data,
        empty=None if rows else "no ratings in the period",
    )


def _followups(
    rated: list[dict[str, Any]], results: Mapping[str, list[Row]], ctx: Context, section: Section
) -> Figure:
    bad = [r for r in rated if r["dissatisfied"]]
    calls = [c for c in results[CALLBACKS] if c.get("rule") in ("dissatisfied_rating", "rating_followup")]
    if ignored := len(results[CALLBACKS]) - len(calls):
        section.notes.append(f"{ignored} callback action(s) on other rules were not matched to ratings")
    used: set[int] = set()
    items = []
    for r in bad:
        subject = f"hall/{r.get('hall', '')}/counter-{r.get('counter', '')}"
        call = next(
            (i for i, c in enumerate(calls) if i not in used and _answers(c, subject, r["time"])), None
        )
        if call is not None:
            used.add(call)
        called = calls[call]["time"] if call is not None else None
        late = (called if called is not None else ctx.as_of) - r["time"] > ctx.callback_deadline_s
        state = (
            ("called back" if not late else "called back late")
            if called is not None
            else ("overdue" if late else "open")
        )
        items.append((r, subject, called, state))
    return _followup_figure(items, results, ctx, section)


def _answers(call: Row, subject: str, at: float) -> bool:
    target = str(call.get("subject", ""))
    return call["time"] >= at and (target == subject or target.startswith(subject + "/"))


def _followup_figure(
    items: list[tuple[Any, ...]], results: Mapping[str, list[Row]], ctx: Context, section: Section
) -> Figure:
    eps, skipped = episodes(results[FOLLOWUP])
    if skipped:
        section.notes.append(
            f"{skipped} rating_followup alert point(s) without state or started_at were skipped"
        )
    states = [i[3] for i in items]
    counts = {s: states.count(s) for s in ("called back", "called back late", "open", "overdue")}
    rows = [
        (
            subject,
            r["staff"],
            ident(r.get("ticket")),
            local(r["time"]).strftime("%Y-%m-%d %H:%M"),
            None if called is None else local(called).strftime("%Y-%m-%d %H:%M"),
            state,
        )
        for r, subject, called, state in items
    ]
    hours = ctx.callback_deadline_s / 3600
    return Figure(
        "followups",
        "Follow-ups of dissatisfied ratings",
        f"Each dissatisfied rating in the period must be followed by a callback ('callback' action on its "
        f"counter) within {hours:g} h. Open: no callback yet and the deadline not passed; overdue: no "
        f"callback and the deadline passed (judged when the report was made); called back late: the "
        f"callback came after the deadline. rating_followup alerts fired: the engine's own count of "
        f"missed callback deadlines.",
        value=f"{len(items)} dissatisfied; {counts['called back']} called back in time, "
        f"{counts['called back late']} late, {counts['open']} open, {counts['overdue']} overdue; "
        f"{len(eps)} rating_followup alert(s)",
        table=Table(("counter", "staff", "ticket", "rated (CST)", "called back (CST)", "state"), rows),
        data={**counts, "dissatisfied": len(items), "followup_alerts": len(eps)},
        empty=None if items else "no dissatisfied ratings in the period",
    )
