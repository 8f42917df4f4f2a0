"""Reading health: reading completeness per gateway, meters with register faults, meter clock drift.

Layer: ingest reporting (pure: query texts and figures). Must not: query or render.

Completeness counts interval slots, not points: a meter polled every 15 s against an expected 15 min
interval is complete once per slot, and a duplicated or back-filled reading cannot push it over 100 %.
The expected meters are the topology's (those with an area or an account, as the reading rules expect
them) plus any meter that stored a reading; each has the reading rules' expected interval (by device,
by customer class, or `interval_s`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .episodes import alert_query, episodes
from .model import Context, Figure, Plot, Section, Table, pct
from .period import Period, rfc3339
from .source import Row
from .stats import natural

__all__ = ["figures", "queries", "slots"]

FAULT_RULES = ("register_decrease", "register_runaway", "register_stopped")
FAULTS, SKEW, DRIFT = "register fault alerts", "clock skew per meter", "clock_drift alerts"
TOP = 20


def _intervals(ctx: Context) -> list[float]:
    return sorted({ctx.default_interval_s, *ctx.meters.values()})


def _stored(interval: float) -> str:
    return f"stored slots per meter ({interval:g} s)"


def queries(period: Period, ctx: Context) -> dict[str, str]:
    span = f"time >= {rfc3339(period.start)} AND time < {rfc3339(period.end)}"
    out = {
        _stored(
            i
        ): f'SELECT count("c") FROM (SELECT count("energy_import_kwh") AS "c" FROM "meter" WHERE {span} '
        f'GROUP BY time({i:g}s), "gw", "dev" fill(none)) GROUP BY "gw", "dev"'
        for i in _intervals(ctx)
    }
    out[FAULTS] = alert_query(FAULT_RULES, period.start, period.end)
    out[SKEW] = (
        'SELECT max("meter_clock_skew_s") AS "max", min("meter_clock_skew_s") AS "min" FROM "meter" '
        f'WHERE {span} GROUP BY "gw", "dev"'
    )
    out[DRIFT] = alert_query(("clock_drift",), period.start, period.end)
    return out


def slots(period: Period, interval: float) -> int:
    """How many `interval` slots (aligned to the epoch, as InfluxDB's GROUP BY time) meet the period."""
    return math.floor((period.end - 1e-3) / interval) - math.floor(period.start / interval) + 1


def figures(results: Mapping[str, list[Row]], period: Period, ctx: Context) -> Section:
    section = Section("reading", "Reading health", queries=queries(period, ctx))
    section.figures += [
        _completeness(results, period, ctx),
        _faults(results, period, section),
        _drift(results, period, ctx, section),
    ]
    return section


def _per_gateway(results: Mapping[str, list[Row]], period: Period, ctx: Context) -> dict[str, list[int]]:
    """gw -> [stored slots, expected slots, meters, meters with no slot stored]"""
    stored: dict[tuple[str, str], dict[float, int]] = {}
    for i in _intervals(ctx):
        for r in results[_stored(i)]:
            stored.setdefault((str(r.get("gw", "")), str(r.get("dev", ""))), {})[i] = int(r.get("count") or 0)
    meters = {**dict.fromkeys(stored, ctx.default_interval_s), **ctx.meters}
    per_gw: dict[str, list[int]] = {}
    for key, interval in meters.items():
        expected = slots(period, interval)
        got = min(stored.get(key, {}).get(interval, 0), expected)
        acc = per_gw.setdefault(key[0], [0, 0, 0, 0])
        for k, n in enumerate((got, expected, 1, got == 0)):
            acc[k] += n
    return per_gw


def _completeness(results: Mapping[str, list[Row]], period: Period, ctx: Context) -> Figure:
    per_gw = _per_gateway(results, period, ctx)
    rows, data = [], {}
    for gw in sorted(per_gw, key=natural):
        got, expected, n, silent = per_gw[gw]
        rows.append((gw, n, got, expected, pct(got, expected), silent))
        data[gw] = {
            "meters": n,
            "stored": got,
            "expected": expected,
            "share": got / expected if expected else None,
        }
    return Figure(
        "completeness",
        "Reading completeness per gateway",
        "Stored / expected reading slots: each expected meter of the gateway has one slot per expected "
        "interval (aligned to the epoch) that meets the period; a slot is stored when at least one "
        "reading with energy_import_kwh landed in it (live or back-filled). Meters never heard: expected "
        "meters with no slot stored.",
        table=Table(
            ("gateway", "meters", "stored slots", "expected slots", "completeness", "never heard"), rows
        ),
        plot=Plot(
            "bar",
            [r[0] for r in rows],
            {"completeness %": [100 * r[2] / r[3] if r[3] else None for r in rows]},
            "stored / expected (%)",
            reference=("100 %", 100.0),
        )
        if rows
        else None,
        data=data,
        empty=None if rows else "no meters expected and no readings stored in the period",
    )


def _faults(results: Mapping[str, list[Row]], period: Period, section: Section) -> Figure:
    eps, bad = episodes(results[FAULTS])
    if bad:
        section.notes.append(f"{bad} register fault alert point(s) without state or started_at were skipped")
    eps = [e for e in eps if e.start < period.end]
    meters: dict[str, dict[str, int]] = {}
    for e in eps:
        meters.setdefault(e.subject, {}).setdefault(e.rule, 0)
        meters[e.subject][e.rule] += 1
    rows = [(m, *(kinds.get(r, 0) for r in FAULT_RULES)) for m, kinds in sorted(meters.items())]
    return Figure(
        "register_faults",
        "Meters with register faults",
        "Meters with a register_decrease (示度下降), register_runaway (飞走) or register_stopped (停走) "
        "alert in the period, with the number of episodes of each.",
        value=f"{len(meters)} meter(s)",
        table=Table(("meter", *FAULT_RULES), rows),
        data={"meters": meters},
        empty=None if rows else "no register faults in the period",
    )


def _drift(results: Mapping[str, list[Row]], period: Period, ctx: Context, section: Section) -> Figure:
    worst = []
    for r in results[SKEW]:
        values = [v for v in (r.get("max"), r.get("min")) if isinstance(v, int | float)]
        if values:
            worst.append((f"{r.get('gw', '')}/{r.get('dev', '')}", max(values, key=abs)))
    worst.sort(key=lambda w: -abs(w[1]))
    eps, bad = episodes(results[DRIFT])
    if bad:
        section.notes.append(f"{bad} clock_drift alert point(s) without state or started_at were skipped")
    over = [w for w in worst if abs(w[1]) > ctx.clock_warning_s]
    rows = [(m, round(s, 1), "yes" if abs(s) > ctx.clock_warning_s else "") for m, s in worst[:TOP]]
    return Figure(
        "clock_drift",
        "Meter clock drift",
        f"The largest |meter_clock_skew_s| (meter clock - gateway's synced clock, from the readings) per "
        f"meter in the period, worst {TOP} listed; over = beyond the reading rules' clock_warning_s "
        f"({ctx.clock_warning_s:g} s). clock_drift alerts: episodes in the period.",
        value=f"{len(over)} of {len(worst)} meter(s) over {ctx.clock_warning_s:g} s; "
        f"{len([e for e in eps if e.start < period.end])} clock_drift alert(s)",
        table=Table(("meter", "worst skew (s)", "over"), rows),
        data={"meters": len(worst), "over": [m for m, _ in over], "worst": dict(worst)},
        empty=None if worst else "no clock readings in the period",
    )
