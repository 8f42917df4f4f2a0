"""The live view of `gridedge demo`: buses, latest readings, the hall queue, alerts and scenario keys.

Every figure is read back from InfluxDB (what the dashboards see), for the run's own time range, so the
view shows the pipeline working end to end, not the simulators' internals.

`view(..., fit=True)` (the live display) fits the terminal it is drawn on, down to 80x24: when the
whole view (~45 rows with the demo's meters and alerts) is taller, the scenario keys shrink to one
line, and the readings and alerts tables show as many rows as fit (firing alerts first, then the most
recently changed), each saying how many it left out. The keys are always on screen.

Composition root (gridedge): reads InfluxDB over its HTTP API; rendering with rich. Must not: write to
the database or talk to the services; a failed query shows as a line, never stops the demo.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from .demo_scenarios import Progress, Scenario
from .services import InfluxDB, ServiceError

WINDOW = "1m"
RULE_WIDTH, SUBJECT_WIDTH = 20, 24  # longest shown in full; longer ones end in an ellipsis
MIN_ROWS = 3  # of a cut readings table, before it gives way to the alerts


@dataclass
class Snapshot:
    """What the view shows, as read from InfluxDB (rows are already formatted cells)."""

    buses: list[tuple[str, ...]] = field(default_factory=list)
    readings: list[tuple[str, ...]] = field(default_factory=list)
    ingest: str = ""
    hall: str = ""
    alerts: list[tuple[str, ...]] = field(default_factory=list)  # rule, subject, state, changed, message
    error: str = ""


def view(
    influx: InfluxDB,
    since_ms: int,
    buses: dict[str, list[str]],
    scenarios: dict[str, Scenario],
    progress: dict[str, Progress],
    *,
    fit: bool = False,
) -> View:
    """The view as of now; `fit`: cut it to the height of the console it is drawn on."""
    return View(fetch(influx, since_ms, buses), list(scenarios.values()), dict(progress), fit=fit)


def fetch(influx: InfluxDB, since_ms: int, buses: dict[str, list[str]]) -> Snapshot:
    snap = Snapshot()
    try:
        snap.buses = _buses(influx, buses)
        snap.readings, snap.ingest = _readings(influx)
        snap.hall = _hall(influx, since_ms)
        snap.alerts = _alerts(influx, since_ms)
    except (ServiceError, KeyError, IndexError, TypeError, ValueError) as exc:  # a view never stops the demo
        snap.error = f"InfluxDB: {type(exc).__name__}: {exc}"
    return snap


class View:
    """A rich renderable: the whole view, or (fit) as much of it as the console's height holds."""

    def __init__(
        self, snap: Snapshot, scenarios: list[Scenario], progress: dict[str, Progress], *, fit: bool
    ) -> None:
        self.snap, self.scenarios, self.progress, self.fit = snap, scenarios, progress, fit
        self.width = 80  # of the console it is drawn on, set when it is

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        self.width = options.max_width
        full = self._group(len(self.snap.readings), len(self.snap.alerts), compact=False)
        # one row spare: a live display as tall as the terminal scrolls its first line away
        budget = (options.height or options.max_height) - 1
        if not self.fit or _height(console, options, full) <= budget:
            yield full
            return
        readings, alerts = self._rows_that_fit(console, options, budget)
        yield self._group(readings, alerts, compact=True)

    def _group(self, readings: int, alerts: int, *, compact: bool) -> Group:
        """The view with the first `readings` and `alerts` rows; `compact`: tables without titles
        (their headers say what they are), the keys on a line."""
        snap = self.snap
        parts: list[RenderableType] = []
        if snap.error:
            parts.append(Text(snap.error, style="red"))
        else:
            parts += [_bus_table(snap.buses, snap.ingest), Text(snap.hall)]
            table = _reading_table(snap.readings[:readings], titled=not compact)
            parts += _cut(table, "meters", len(snap.readings), readings)
            parts += _cut(
                _alert_table(snap.alerts[:alerts], titled=not compact, width=self.width),
                "alerts",
                len(snap.alerts),
                alerts,
            )
        keys = _key_line if compact else _scenario_table
        parts.append(keys(self.scenarios, self.progress))
        return Group(*parts)

    def _rows_that_fit(self, console: Console, options: ConsoleOptions, budget: int) -> tuple[int, int]:
        """Rows of the readings and alerts tables. A table row is one line (no_wrap), so a table is
        its frame (title, header, caption) plus its rows, plus a line when it is cut. Alerts get half
        of what is left, or more when the readings need less; the readings the rest. The estimate is
        then checked by rendering, and cut further if a line wrapped after all."""
        snap = self.snap
        n_read, n_alert = len(snap.readings), len(snap.alerts)
        fixed = _height(
            console, options, Group(_bus_table(snap.buses, snap.ingest), Text(snap.hall), self._keys())
        )
        r_frame = _height(console, options, _reading_table([], titled=False))
        a_frame = _height(console, options, _alert_table([], titled=False, width=self.width))
        spare = max(0, budget - fixed - r_frame - a_frame - 2)
        alerts = min(n_alert, max(spare // 2, spare - n_read))
        readings = min(n_read, spare - alerts)
        if readings < min(MIN_ROWS, n_read):  # a row or two says little: the alerts take the room
            readings, alerts = 0, min(n_alert, alerts + readings + r_frame)
        while (readings or alerts) and _height(
            console, options, self._group(readings, alerts, compact=True)
        ) > budget:
            readings, alerts = (readings - 1, alerts) if readings > alerts else (readings, alerts - 1)
        return readings, alerts

    def _keys(self) -> Text:
        return _key_line(self.scenarios, self.progress)


def _height(console: Console, options: ConsoleOptions, renderable: RenderableType) -> int:
    return len(console.render_lines(renderable, options.update(height=None), pad=False))


def _cut(table: Table, what: str, total: int, shown: int) -> list[RenderableType]:
    if total == 0:  # a header without rows reads as a broken view
        return [Text(f"no {what} yet", style="dim")]
    if shown >= total:
        return [table]
    if shown == 0:
        return [Text(f"{total} {what}: not shown (enlarge the terminal to see them)", style="dim")]
    return [table, Text(f"  ... {total - shown} more {what} (enlarge the terminal to see them)", style="dim")]


def _table(title: str | None, *columns: tuple[str, str]) -> Table:
    """A table without a frame (rows are lines, the demo's view is 24 rows tall at the least)."""
    table = Table(title=title, title_justify="left", box=None, header_style="bold", pad_edge=False)
    for name, justify in columns:
        table.add_column(
            name, justify="right" if justify == "r" else "left", no_wrap=True, overflow="ellipsis"
        )
    return table


# ---- reading InfluxDB ----------------------------------------------------------------------------


def _series(influx: InfluxDB, q: str) -> list[dict[str, Any]]:
    return influx.query(q)


def _buses(influx: InfluxDB, buses: dict[str, list[str]]) -> list[tuple[str, ...]]:
    counts = {
        s["tags"]["dev"]: s["values"][0][1]
        for s in _series(
            influx,
            f'SELECT count("energy_import_kwh") FROM "meter" WHERE time > now() - {WINDOW} GROUP BY "dev"',
        )
    }
    health = {
        s["tags"]["dev"]: s["values"][0][1]
        for s in _series(influx, 'SELECT last("state") FROM "device_health" GROUP BY "dev"')
    }
    hall = _series(influx, f'SELECT count("seq") FROM "hall_event" WHERE time > now() - {WINDOW}')
    rows: list[tuple[str, ...]] = []
    for bus, devs in buses.items():
        rate = sum(int(counts.get(d, 0) or 0) for d in devs)
        events = int(hall[0]["values"][0][1]) if hall and any(d.startswith("hall") for d in devs) else 0
        states: dict[str, int] = {}
        for d in devs:
            st = str(health.get(d, "-"))
            states[st] = states.get(st, 0) + 1
        text = ", ".join(f"{n} {st}" for st, n in sorted(states.items()))
        rows.append((bus, str(len(devs)), f"{rate}" + (f" (+{events} hall events)" if events else ""), text))
    return rows


def _readings(influx: InfluxDB) -> tuple[list[tuple[str, ...]], str]:
    series = _series(
        influx,
        'SELECT last("voltage_a_v"), last("power_active_kw"), last("energy_import_kwh"), '
        'last("balance_cny"), last("relay") FROM "meter" WHERE time > now() - 10m GROUP BY "dev"',
    )
    # with several selectors InfluxQL returns the range start as the time: ask for it on its own
    times = _series(
        influx, 'SELECT last("energy_import_kwh") FROM "meter" WHERE time > now() - 10m GROUP BY "dev"'
    )
    when_of = {s["tags"]["dev"]: s["values"][0][0] for s in times}
    rows: list[tuple[str, ...]] = []
    for s in series:
        _, v, p, e, b, r = s["values"][0]
        dev = s.get("tags", {}).get("dev", "?")
        rows.append((dev, _clock(when_of.get(dev)), *(_number(x) for x in (v, p, e, b, r))))
    health = _series(influx, 'SELECT last("messages_in"), last("deadletters") FROM "ingest"')
    ingest = ""
    if health:
        _, messages, dead = health[0]["values"][0]
        ingest = f"ingest: {messages} message(s) in, {dead} dead letter(s)"
    return rows, ingest


def _hall(influx: InfluxDB, since_ms: int) -> str:
    counts = {
        s["tags"]["kind"]: int(s["values"][0][1])
        for s in _series(
            influx, f'SELECT count("seq") FROM "hall_event" WHERE time >= {since_ms}ms GROUP BY "kind"'
        )
    }
    waits = _series(
        influx,
        f'SELECT mean("wait_s"), max("wait_s") FROM "hall_event" WHERE "kind" = \'service_started\' '
        f"AND time >= {since_ms}ms",
    )
    ratings = _series(
        influx, f'SELECT mean("score"), count("score") FROM "rating" WHERE time >= {since_ms}ms'
    )
    issued, called = counts.get("ticket_issued", 0), counts.get("ticket_called", 0)
    abandoned = counts.get("ticket_abandoned", 0)
    mean_w, max_w = waits[0]["values"][0][1:] if waits else (None, None)
    mean_r, n_r = ratings[0]["values"][0][1:] if ratings else (None, 0)
    return (
        f"hall-main since the start: {issued} issued, {called} called, "
        f"{max(0, issued - called - abandoned)} waiting, {counts.get('service_finished', 0)} served, "
        f"{abandoned} abandoned; wait mean {_number(mean_w, 0)} s, max {_number(max_w, 0)} s; "
        f"{n_r or 0} rating(s), mean level {_number(mean_r)}"
    )


def _alerts(influx: InfluxDB, since_ms: int) -> list[tuple[str, ...]]:
    """Each alert's latest point with its own time: the change it records. (`last(a), last(b)` would
    give the range start, the demo's start, as the time of every row.)"""
    series = _series(
        influx,
        f'SELECT "state", "message" FROM "alert" WHERE time >= {since_ms}ms '
        'GROUP BY "rule", "subject" ORDER BY time DESC LIMIT 1',
    )
    latest = []
    for s in series:
        t, state, message = s["values"][0]
        latest.append((state != "firing", -t, s["tags"]["rule"], s["tags"]["subject"], state, t, message))
    return [
        (rule, subject, str(state), _clock(t), str(message or ""))
        for _, _, rule, subject, state, t, message in sorted(latest)
    ]


# ---- rendering -----------------------------------------------------------------------------------


def _bus_table(rows: list[tuple[str, ...]], ingest: str) -> Group:
    """The buses under a line that also says how the ingest is doing (a table's title would wrap at
    the table's width, two lines at 80 columns)."""
    table = _table(None, ("bus", "l"), ("devices", "r"))
    table.add_column("readings/min", justify="right", no_wrap=True)
    table.add_column("health", overflow="ellipsis", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    title = f"buses: readings in the last {WINDOW}" + (f"; {ingest}" if ingest else "")
    return Group(Text(title, style="italic"), table)


def _reading_table(rows: list[tuple[str, ...]], *, titled: bool) -> Table:
    columns = ("device", "l"), ("time", "l"), ("Ua V", "r"), ("P kW", "r"), ("E kWh", "r")
    table = _table("latest readings" if titled else None, *columns, ("balance CNY", "r"), ("relay", "l"))
    for row in rows:
        table.add_row(*row)
    return table


def _alert_table(rows: list[tuple[str, ...]], *, titled: bool, width: int) -> Table:
    """Widths set here, not by rich: cutting a too-wide table, rich narrows every column by the same
    amount, which drops the short state and time columns first. The message takes what is left."""
    rule_w = min(RULE_WIDTH, max((len(r[0]) for r in rows), default=0), width // 4)
    subject_w = min(SUBJECT_WIDTH, max((len(r[1]) for r in rows), default=0), width // 4)
    rule_w, subject_w = max(rule_w, len("rule")), max(subject_w, len("subject"))
    message_w = max(len("message"), width - rule_w - subject_w - 2 * len("resolved") - 8)
    table = _table("alerts since the start (firing first)" if titled else None)
    table.add_column("rule", no_wrap=True, overflow="ellipsis", width=rule_w)
    table.add_column("subject", no_wrap=True, overflow="ellipsis", width=subject_w)
    table.add_column("state", no_wrap=True, width=len("resolved"))
    table.add_column("changed", no_wrap=True, width=len("00:00:00"))
    table.add_column("message", no_wrap=True, overflow="ellipsis", max_width=message_w)
    for rule, subject, state, when, message in rows:
        style = "bold red" if state == "firing" else "green"
        table.add_row(rule, _tail(subject, subject_w), Text(state, style=style), when, message)
    return table


def _tail(subject: str, width: int) -> str:
    """`gw-demo-01/000000000004` as `…000000000004`: the end of a subject names the device."""
    return subject if len(subject) <= width else "…" + subject[len(subject) - width + 1 :]


def _scenario_table(scenarios: list[Scenario], progress: dict[str, Progress]) -> Table:
    table = _table("scenarios: press a key (q quits)")
    table.add_column("key  scenario", no_wrap=True, overflow="ellipsis", max_width=60)
    table.add_column("status", no_wrap=True, min_width=7)
    table.add_column("last step", no_wrap=True, overflow="ellipsis", max_width=40)
    for sc in scenarios:
        p = progress.get(sc.name)
        table.add_row(Text(f"{sc.key}    {sc.title}"), p.status if p else "", Text(p.note if p else ""))
    return table


STATUS_STYLE = {"running": "bold yellow", "passed": "green", "done": "green", "failed": "bold red"}


def _key_line(scenarios: list[Scenario], progress: dict[str, Progress]) -> Text:
    """The keys in one line (two on a narrow terminal), each with its scenario's status; then what
    the scenarios running now are waiting for."""
    line = Text("keys: ", style="bold")
    for sc in scenarios:
        p = progress.get(sc.name)
        line.append(f"[{sc.key}] ", style="bold")
        line.append(sc.name, style=STATUS_STYLE.get(p.status, "") if p else "")
        line.append(f"({p.status}) " if p and p.status != "idle" else " ")
    line.append("[q] quit", style="bold")
    for p in progress.values():
        if p.status == "running" and p.note:
            line.append(f"\n{p.scenario}: {p.note}", style="yellow")
    return line


def _clock(t: object) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t / 1000)) if isinstance(t, int | float) and t else "-"


def _number(x: object, digits: int = 2) -> str:
    if isinstance(x, int | float) and not isinstance(x, bool):
        return f"{x:.{digits}f}"
    return "-" if x is None else str(x)
