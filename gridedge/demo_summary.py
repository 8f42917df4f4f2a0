"""What a `gridedge demo` run achieved, read back from InfluxDB: the summary and its verdict.

Everything is asked of the database the dashboards read, for the run's own time range: the points per
measurement, the readings per device (every device the demo gateway polls must have some), and every
alert with its start and end, and where the people's work on it stands: the work state after its
latest operator action (measurement `alert_action`, ingest/alerts/work.py; `open` when nobody acted)
and how many actions were taken. The verdict fails when a device has no data, a scenario did not finish,
an alert a scenario expects was not raised and resolved, or the ingest dead-lettered anything.

Composition root (gridedge): reads InfluxDB over its HTTP API only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .demo_scenarios import Progress, Scenario
from .services import InfluxDB


@dataclass
class AlertRecord:
    rule: str
    subject: str
    state: str  # the latest: firing | resolved
    started_at: float | None  # of the latest episode
    ended_at: float | None
    message: str
    raised: int = 1  # episodes in the run (an alert may fire again after it resolved)
    resolved: int = 0
    work: str = "open"  # the work state after its latest operator action (alert_action)
    actions: int = 0  # operator actions taken on it in the run


@dataclass
class Summary:
    started_at: float
    ended_at: float
    points: dict[str, int] = field(default_factory=dict)
    readings: dict[str, int] = field(default_factory=dict)
    alerts: list[AlertRecord] = field(default_factory=list)
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)
    deadletters: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_json(), indent=2, ensure_ascii=False) + "\n")


def demo_devices(gateway_yaml: Path) -> dict[str, str]:
    """Device id -> kind of every device the demo gateway polls."""
    doc = yaml.safe_load(gateway_yaml.read_text())
    return {str(d["id"]): str(d["kind"]) for bus in doc["buses"] for d in bus["devices"]}


def _count_by(influx: InfluxDB, q: str, tag: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in influx.query(q):
        tags: dict[str, str] = s.get("tags", {})  # type: ignore[assignment]
        values: list[list[Any]] = s.get("values", [])  # type: ignore[assignment]
        if values:
            out[tags.get(tag, "")] = int(values[0][1] or 0)
    return out


def collect(
    influx: InfluxDB,
    *,
    started_at: float,
    ended_at: float,
    devices: dict[str, str],
    scenarios: dict[str, Scenario],
    progress: dict[str, Progress],
) -> Summary:
    since = f"time >= {int(started_at * 1000)}ms"
    s = Summary(started_at, ended_at)
    for series in influx.query("SHOW MEASUREMENTS"):
        for (name,) in series.get("values", []):  # type: ignore[attr-defined]
            counts = influx.query(f'SELECT count(*) FROM "{name}" WHERE {since}')
            row = counts[0]["values"][0][1:] if counts else []  # type: ignore[index]
            s.points[name] = max((int(c or 0) for c in row), default=0)
    meters = _count_by(
        influx, f'SELECT count("energy_import_kwh") FROM "meter" WHERE {since} GROUP BY "dev"', "dev"
    )
    halls = _count_by(influx, f'SELECT count("seq") FROM "hall_event" WHERE {since} GROUP BY "gw"', "gw")
    for dev, kind in devices.items():
        s.readings[dev] = sum(halls.values()) if kind == "hall" else meters.get(dev, 0)
        if s.readings[dev] == 0:
            s.problems.append(f"no data from {dev} ({kind}) in InfluxDB")
    s.alerts = _alerts(influx, since)
    _work(influx, since, s.alerts)
    dead = influx.query(f'SELECT last("deadletters") FROM "ingest" WHERE {since}')
    s.deadletters = int(dead[0]["values"][0][1] or 0) if dead else 0  # type: ignore[index]
    if s.deadletters:
        s.problems.append(f"the ingest dead-lettered {s.deadletters} message(s)")
    for name, sc in scenarios.items():
        p = progress.get(name)
        if sc.headless_at is None and p is None:
            continue
        status = p.status if p else "not started"
        s.scenarios[name] = {"status": status, "note": p.note if p else "", "expect": list(sc.expect)}
        if status != "done":
            s.problems.append(f"scenario {name}: {status}{': ' + p.note if p and p.note else ''}")
        for rule in sc.expect:
            mine = [a for a in s.alerts if a.rule == rule]
            if not mine:
                s.problems.append(f"scenario {name}: no {rule} alert was raised")
            elif not any(a.resolved for a in mine):
                s.problems.append(f"scenario {name}: {rule} was raised but never resolved")
    return s


def _alerts(influx: InfluxDB, since: str) -> list[AlertRecord]:
    q = f'SELECT "state", "started_at", "message" FROM "alert" WHERE {since} GROUP BY "rule", "subject"'
    out = []
    for series in influx.query(q):
        tags: dict[str, str] = series.get("tags", {})  # type: ignore[assignment]
        rows: list[list[Any]] = series.get("values", [])  # type: ignore[assignment]
        start = end = None
        raised = resolved = 0
        previous = None
        for t, state, started, _message in rows:
            if state == "firing" and previous != "firing":
                start = float(started) if started is not None else t / 1000
                end, raised = None, raised + 1
            elif state == "resolved" and previous == "firing":
                end, resolved = t / 1000, resolved + 1
            previous = state
        last = rows[-1]
        rule, subject = tags.get("rule", "?"), tags.get("subject", "?")
        out.append(AlertRecord(rule, subject, last[1], start, end, last[3] or "", raised, resolved))
    return sorted(out, key=lambda a: (a.started_at or 0, a.rule))


def _work(influx: InfluxDB, since: str, alerts: list[AlertRecord]) -> None:
    """Each alert's work state (its latest action's `work_state`) and number of actions."""
    q = f'SELECT "work_state" FROM "alert_action" WHERE {since} GROUP BY "rule", "subject"'
    work: dict[tuple[str, str], tuple[str, int]] = {}
    for series in influx.query(q):
        tags: dict[str, str] = series.get("tags", {})  # type: ignore[assignment]
        rows: list[list[Any]] = series.get("values", [])  # type: ignore[assignment]
        if rows:
            work[(tags.get("rule", ""), tags.get("subject", ""))] = (str(rows[-1][1] or "open"), len(rows))
    for a in alerts:
        a.work, a.actions = work.get((a.rule, a.subject), ("open", 0))


def render(s: Summary) -> str:
    """The summary as text for a terminal or a CI log."""
    import datetime as dt

    def hms(t: float | None) -> str:
        return dt.datetime.fromtimestamp(t).strftime("%H:%M:%S") if t else "-"

    lines = [
        f"gridedge demo: {'OK' if s.ok else 'FAILED'} ({s.ended_at - s.started_at:.0f} s)",
        "",
        "points:",
    ]
    lines += [f"  {name:16} {n:>8}" for name, n in sorted(s.points.items())]
    lines += ["", "readings per device:"]
    lines += [f"  {dev:16} {n:>8}" for dev, n in s.readings.items()]
    lines += ["", "alerts:"]
    for a in s.alerts:
        times = f"{hms(a.started_at)} -> {hms(a.ended_at)}"
        episodes = f"raised {a.raised}, resolved {a.resolved}"
        work = f"work {a.work}" + (
            f" ({a.actions} action{'s' if a.actions != 1 else ''})" if a.actions else ""
        )
        lines.append(f"  {a.rule:22} {a.subject:36} {a.state:9} {times}  {episodes}  {work}")
    lines += ["", "scenarios:"]
    lines += [f"  {name:16} {v['status']:8} {v['note']}" for name, v in s.scenarios.items()]
    if s.problems:
        lines += ["", "problems:"] + [f"  - {p}" for p in s.problems]
    return "\n".join(lines)
