"""Cost control (远程费控): accounts reaching arrears, trips, reconnection after payment against the
promise, relay misoperations.

Layer: ingest reporting (pure: query texts and figures). Must not: query or render.

Trips and reconnections are what the meters confirmed: `relay_change` events (`meter_event`, tagged with
the account by the topology) to open / to closed, not the commands sent. Payment time is when the
payment cleared the arrears: the resolution of the account's `arrears` alert (the ledger applies the
payment as it arrives). A reconnection is measured for each such resolution in the period whose meter
was tripped (its last relay change before it was to open): payment -> the first relay change to closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .episodes import Episode, alert_query, episodes
from .model import Context, Figure, Plot, Section, Table, pct
from .period import Period, local, rfc3339
from .source import Row

__all__ = ["figures", "queries"]

ARREARS, MISOP, OVERDUE = "arrears alerts", "relay_misoperation alerts", "reconnect_overdue alerts"
RELAY, AUTO = "relay changes", "automatic trip commands"
LOOKBACK_S = 31 * 86400.0  # a trip this long before the period still explains a reconnection in it


def queries(period: Period, ctx: Context) -> dict[str, str]:
    end = period.end + ctx.follow_s
    return {
        ARREARS: alert_query(("arrears",), period.start - LOOKBACK_S, end),
        MISOP: alert_query(("relay_misoperation",), period.start, end),
        OVERDUE: alert_query(("reconnect_overdue",), period.start, end),
        RELAY: 'SELECT "relay", "previous" FROM "meter_event" WHERE "kind" = \'relay_change\' '
        f"AND time >= {rfc3339(period.start - LOOKBACK_S)} AND time < {rfc3339(end)} "
        'GROUP BY "gw", "dev", "account"',
        AUTO: 'SELECT "id" FROM "autocontrol" WHERE "decision" = \'sent\' AND "action" = \'trip\' '
        f'AND time >= {rfc3339(period.start)} AND time < {rfc3339(period.end)} GROUP BY "account"',
    }


def _account(subject: str) -> str:
    return subject.removeprefix("account/")


def _eps(results: Mapping[str, list[Row]], name: str, section: Section) -> list[Episode]:
    eps, bad = episodes(results[name])
    if bad:
        section.notes.append(f"{bad} point(s) of {name} without state or started_at were skipped")
    return eps


def figures(results: Mapping[str, list[Row]], period: Period, ctx: Context) -> Section:
    section = Section("costcontrol", "Cost control", queries=queries(period, ctx))
    arrears = _eps(results, ARREARS, section)
    relay = results[RELAY]
    section.figures += [
        _arrears([e for e in arrears if period.contains(e.start)]),
        _trips([r for r in relay if period.contains(r["time"])], results[AUTO]),
        _reconnections(arrears, relay, _eps(results, OVERDUE, section), period, ctx),
        _misoperations([e for e in _eps(results, MISOP, section) if period.contains(e.start)]),
    ]
    return section


def _when(ts: float | None) -> str | None:
    return None if ts is None else local(ts).strftime("%Y-%m-%d %H:%M:%S")


def _arrears(eps: list[Episode]) -> Figure:
    accounts: dict[str, list[Episode]] = {}
    for e in eps:
        accounts.setdefault(_account(e.subject), []).append(e)
    rows = [
        (a, len(es), _when(es[0].start), _when(es[-1].end) or "still in arrears")
        for a, es in sorted(accounts.items())
    ]
    return Figure(
        "arrears",
        "Accounts reaching arrears",
        "Accounts whose computed balance (the ledger: opening + payments - collected energy x tariff, "
        "never the meter's display) went below 0: arrears alerts that started in the period, counted per "
        "account; cleared = when a payment lifted it out of arrears.",
        value=f"{len(accounts)} account(s), {len(eps)} arrears episode(s)",
        table=Table(("account", "episodes", "first (CST)", "cleared (CST)"), rows),
        data={"accounts": sorted(accounts), "episodes": len(eps)},
        empty=None if eps else "no account reached arrears in the period",
    )


def _trips(relay: list[Row], auto: list[Row]) -> Figure:
    trips = [r for r in relay if r.get("relay") == "open"]
    rows = [
        (str(r.get("account", "")), f"{r.get('gw', '')}/{r.get('dev', '')}", _when(r["time"])) for r in trips
    ]
    return Figure(
        "trips",
        "Trips",
        "Trips = relay_change events to 'open' in the period: the meter's own read-back that its relay "
        "opened (commands the meter refused or deferred are not trips). Automatic trip commands = the "
        "auto-control policy's 'sent' trip decisions (measurement autocontrol), when it is enabled.",
        value=f"{len(trips)} trip(s) confirmed by the meters; {len(auto)} automatic trip command(s) sent",
        table=Table(("account", "meter", "opened (CST)"), rows),
        data={"trips": len(trips), "auto_commands": len(auto)},
        empty=None if trips or auto else "no trips in the period",
    )


def _relay_at(relay: list[Row], account: str, at: float) -> Row | None:
    before = [r for r in relay if str(r.get("account", "")) == account and r["time"] <= at]
    return before[-1] if before else None


def _reconnection(e: Episode, relay: list[Row], ctx: Context) -> dict[str, Any] | None:
    """Payment (the arrears' end) -> the first relay change to closed, for a meter tripped at payment."""
    assert e.end is not None
    account = _account(e.subject)
    last = _relay_at(relay, account, e.end)
    if last is None or last.get("relay") != "open":
        return None  # never tripped: nothing to reconnect
    promise = ctx.reconnect_promise(str(last.get("gw", "")))
    mine = [r for r in relay if str(r.get("account", "")) == account and r["time"] > e.end]
    closed = next((r["time"] for r in mine if r.get("relay") == "closed"), None)
    taken = (closed if closed is not None else ctx.as_of) - e.end
    if closed is not None:
        state = "met" if taken <= promise else "missed"
    else:
        state = "overdue" if taken > promise else "waiting"
    return {
        "account": account,
        "paid": e.end,
        "closed": closed,
        "taken_s": taken,
        "promise_s": promise,
        "state": state,
    }


def _reconnections(
    arrears: list[Episode], relay: list[Row], overdue: list[Episode], period: Period, ctx: Context
) -> Figure:
    found = [_reconnection(e, relay, ctx) for e in arrears if e.end is not None and period.contains(e.end)]
    data = [d for d in found if d is not None]
    rows = [
        (
            d["account"],
            _when(d["paid"]),
            _when(d["closed"]),
            round(d["taken_s"] / 3600, 2),
            round(d["promise_s"] / 3600, 1),
            d["state"],
        )
        for d in data
    ]
    labels, hours = [d["account"] for d in data], [d["taken_s"] / 3600 for d in data]
    met = sum(d["state"] == "met" for d in data)
    judged = sum(d["state"] in ("met", "missed", "overdue") for d in data)
    promise_h = ctx.reconnect_promise("") / 3600
    return Figure(
        "reconnection",
        "Reconnection after payment",
        "For each arrears cleared in the period on a tripped meter: payment (arrears alert resolved) to "
        "the first relay_change to 'closed', against the reconnection promise (cost-control config: "
        "sgcc 24 h, csg 12 h, or per site). Waiting: not yet closed, promise not passed; overdue: not "
        "closed and past it. reconnect_overdue alerts: the engine's count of deadlines passed.",
        value=f"{met}/{judged} within the promise ({pct(met, judged)}); "
        f"{len([o for o in overdue if period.contains(o.start)])} reconnect_overdue alert(s)",
        table=Table(("account", "paid (CST)", "closed (CST)", "taken (h)", "promise (h)", "state"), rows),
        plot=Plot(
            "hbar", labels, {"hours": hours}, "payment -> relay closed (h)", reference=("promise", promise_h)
        )
        if rows
        else None,
        data={"reconnections": data, "met": met, "judged": judged},
        empty=None if rows else "no reconnection after a trip in the period",
    )


def _misoperations(eps: list[Episode]) -> Figure:
    rows = [
        (e.subject, _when(e.start), None if e.end is None else round((e.end - e.start) / 60, 1), e.message)
        for e in eps
    ]
    return Figure(
        "misoperations",
        "Relay misoperations",
        "relay_misoperation alerts that started in the period: the relay read open (or commanded open) "
        "while current flowed, or commanded and actual relay state disagreed past the settle time.",
        value=f"{len(eps)} misoperation(s) on {len({e.subject for e in eps})} meter(s)",
        table=Table(("meter", "start (CST)", "lasted (min)", "message"), rows),
        data={"episodes": len(eps), "meters": sorted({e.subject for e in eps})},
        empty=None if eps else "no relay misoperation in the period",
    )
