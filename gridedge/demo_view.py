"""The live view of `gridedge demo`: buses, latest readings, the hall queue, alerts and scenario keys.

Every figure is read back from InfluxDB (what the dashboards see), for the run's own time range, so the
view shows the pipeline working end to end, not the simulators' internals.

Composition root (gridedge): reads InfluxDB over its HTTP API; rendering with rich.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from .demo_scenarios import Progress, Scenario
from .services import InfluxDB, ServiceError

WINDOW = "1m"


def view(
    influx: InfluxDB,
    since_ms: int,
    buses: dict[str, list[str]],
    scenarios: dict[str, Scenario],
    progress: dict[str, Progress],
) -> Group:
    try:
        parts: list[Any] = [
            _buses(influx, buses),
            _readings(influx),
            _hall(influx, since_ms),
            _alerts(influx, since_ms),
        ]
    except (ServiceError, KeyError, IndexError, TypeError, ValueError) as exc:  # a view never stops the demo
        parts = [f"InfluxDB: {type(exc).__name__}: {exc}"]
    parts.append(_scenarios(scenarios, progress))
    return Group(*parts)


def _series(influx: InfluxDB, q: str) -> list[dict[str, Any]]:
    return influx.query(q)


def _buses(influx: InfluxDB, buses: dict[str, list[str]]) -> Table:
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
    table = Table(title=f"buses: readings in the last {WINDOW}", title_justify="left")
    for col in ("bus", "devices", "readings/min", "health"):
        table.add_column(col, justify="right" if col == "readings/min" else "left")
    for bus, devs in buses.items():
        rate = sum(int(counts.get(d, 0) or 0) for d in devs)
        events = int(hall[0]["values"][0][1]) if hall and any(d.startswith("hall") for d in devs) else 0
        states: dict[str, int] = {}
        for d in devs:
            st = str(health.get(d, "-"))
            states[st] = states.get(st, 0) + 1
        text = ", ".join(f"{n} {st}" for st, n in sorted(states.items()))
        table.add_row(bus, str(len(devs)), f"{rate}" + (f" (+{events} hall events)" if events else ""), text)
    return table


def _readings(influx: InfluxDB) -> Table:
    table = Table(title="latest readings", title_justify="left")
    for col in ("device", "time", "voltage A (V)", "power (kW)", "energy (kWh)", "balance (CNY)", "relay"):
        table.add_column(col, no_wrap=True, justify="left" if col in ("device", "relay") else "right")
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
    for s in series:
        _, v, p, e, b, r = s["values"][0]
        dev = s.get("tags", {}).get("dev", "?")
        t = when_of.get(dev)
        when = time.strftime("%H:%M:%S", time.localtime(t / 1000)) if t else "-"
        table.add_row(dev, when, *(_number(x) for x in (v, p, e, b, r)))
    health = _series(influx, 'SELECT last("messages_in"), last("deadletters") FROM "ingest"')
    if health:
        _, messages, dead = health[0]["values"][0]
        table.caption = f"ingest: {messages} message(s) in, {dead} dead letter(s)"
    return table


def _hall(influx: InfluxDB, since_ms: int) -> Table:
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
    table = Table(title="hall-main: since the demo started", title_justify="left")
    for col in (
        "issued",
        "called",
        "waiting",
        "served",
        "abandoned",
        "mean / max wait",
        "ratings (mean level)",
    ):
        table.add_column(col, justify="right")
    mean_w, max_w = waits[0]["values"][0][1:] if waits else (None, None)
    mean_r, n_r = ratings[0]["values"][0][1:] if ratings else (None, 0)
    table.add_row(
        str(issued),
        str(called),
        str(max(0, issued - called - counts.get("ticket_abandoned", 0))),
        str(counts.get("service_finished", 0)),
        str(counts.get("ticket_abandoned", 0)),
        f"{_number(mean_w, 0)} / {_number(max_w, 0)} s",
        f"{n_r or 0} ({_number(mean_r)})",
    )
    return table


def _alerts(influx: InfluxDB, since_ms: int) -> Table:
    series = _series(
        influx,
        f'SELECT last("state"), last("message") FROM "alert" WHERE time >= {since_ms}ms '
        'GROUP BY "rule", "subject"',
    )
    table = Table(title="alerts since the demo started (firing first)", title_justify="left")
    table.add_column("rule", no_wrap=True, min_width=10)
    table.add_column("subject", no_wrap=True, overflow="ellipsis", max_width=28)
    table.add_column("state", no_wrap=True, min_width=8)
    table.add_column("changed", no_wrap=True, min_width=8)
    table.add_column("message", no_wrap=True, overflow="ellipsis", max_width=60)
    rows = []
    for s in series:
        t, state, message = s["values"][0]
        rows.append((state != "firing", -t, s["tags"]["rule"], s["tags"]["subject"], state, t, message))
    for _, _, rule, subject, state, t, message in sorted(rows)[:14]:
        style = "bold red" if state == "firing" else "green"
        when = time.strftime("%H:%M:%S", time.localtime(t / 1000))
        table.add_row(rule, subject, f"[{style}]{state}[/]", when, str(message or "")[:70])
    return table


def _scenarios(scenarios: dict[str, Scenario], progress: dict[str, Progress]) -> Table:
    table = Table(title="scenarios: press a key (q quits)", title_justify="left")
    table.add_column("key  scenario", no_wrap=True, overflow="ellipsis", max_width=40)
    table.add_column("status", no_wrap=True, min_width=7)
    table.add_column("last step", no_wrap=True, overflow="ellipsis", max_width=22)
    for sc in scenarios.values():
        p = progress.get(sc.name)
        table.add_row(Text(f"{sc.key}    {sc.title}"), p.status if p else "", Text(p.note if p else ""))
    return table


def _number(x: object, digits: int = 2) -> str:
    if isinstance(x, int | float) and not isinstance(x, bool):
        return f"{x:.{digits}f}"
    return "-" if x is None else str(x)
