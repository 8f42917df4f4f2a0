"""Every Grafana dashboard panel's InfluxQL runs on the real influxd and returns data.

The data set is built the way the ingest writes it: `protocols.messages` objects, encoded and decoded
through the contract, turned into line protocol by `ingest.schema.lines_for` with the demo topology;
the `alert` rows use the alert engine's schema (tags rule, subject, severity; fields state, value,
message, duration_s). `dashboard_queries()` and `PanelQuery.render()` are the reusable extractor (the
demo acceptance test runs the same queries after `gridedge demo --headless`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gridedge.services import InfluxDB
from ingest.alerts.actions import Action
from ingest.alerts.work import action_line
from ingest.lineproto import point
from ingest.schema import lines_for
from ingest.topology import Topology
from protocols import messages as m

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
DATASOURCES = REPO / "deploy" / "grafana" / "provisioning" / "datasources"
EXPECTED = {"cost-control", "outage-desk", "hall-manager", "fleet"}
# what the ingest writes (ingest/schema.py, ingest/service.py) plus the alert engine's measurement
MEASUREMENTS = {"meter", "meter_event", "hall_event", "rating", "device_health", "gateway", "alert", "ingest"}
MEASUREMENTS |= {"alert_action"}  # and its operators' actions (ingest/alerts/work.py)
_VAR_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


# ---- the extractor ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel, as written in the dashboard (Grafana macros not yet substituted)."""

    dashboard: str
    panel: str
    ref: str
    raw: str
    variables: Mapping[str, str] = field(default_factory=dict)  # template variable -> value for "All"

    def render(
        self,
        *,
        start_ms: int,
        end_ms: int,
        interval: str = "1m",
        variables: Mapping[str, str] | None = None,
    ) -> str:
        """The query Grafana would send for this time range, interval and variable values."""
        values = {
            "timeFilter": f"time >= {start_ms}ms and time <= {end_ms}ms",
            "__interval": interval,
            "interval": interval,
            "__interval_ms": str(_interval_ms(interval)),
            **self.variables,
            **(variables or {}),
        }

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            if name not in values:
                raise KeyError(f"{self.where}: unknown Grafana variable ${name}")
            return values[name]

        return _VAR_RE.sub(substitute, self.raw)

    @property
    def where(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref}"


def _interval_ms(interval: str) -> int:
    units = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h|d)", interval).groups()  # type: ignore[union-attr]
    return int(number) * units[unit]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows keep their panels inside


def _template_defaults(dashboard: dict[str, Any]) -> dict[str, str]:
    defaults = {}
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("includeAll"):
            defaults[var["name"]] = var.get("allValue") or ".*"
        else:
            current = var.get("current", {}).get("value", "")
            defaults[var["name"]] = current[0] if isinstance(current, list) else str(current)
    return defaults


def dashboard_queries(directory: Path = DASHBOARDS) -> list[PanelQuery]:
    """Every InfluxQL target of every panel of every dashboard in `directory`."""
    queries = []
    for path in sorted(directory.glob("*.json")):
        dashboard = json.loads(path.read_text())
        defaults = _template_defaults(dashboard)
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                title = f"{panel.get('id')}: {panel.get('title', '')}"
                queries.append(
                    PanelQuery(path.stem, title, target.get("refId", "?"), target["query"], defaults)
                )
    return queries


def returned_data(series: list[dict[str, Any]]) -> bool:
    """At least one row with a non-null value besides the time column."""
    for one in series:
        for row in one.get("values", []):
            if any(v is not None for v in row[1:]):
                return True
    return False


# ---- a representative data set, written through the ingest's own mapping -------------------------

GW = "gw-demo-01"


def _contract(message: m.Reading | m.Event | m.Health | m.Status) -> m.Message:
    decoded: m.Message = m.decode(type(message), m.encode(message))  # type: ignore[type-var]
    return decoded  # through the ingest's strict decoding + validation


def _messages(now: int) -> list[m.Reading | m.Event | m.Health | m.Status]:
    out: list[m.Reading | m.Event | m.Health | m.Status] = []
    seq = iter(range(1, 10_000))
    minute = 60_000
    meters = {"000000000001": "dlt645", "000000000101": "dlt645", "mb-11": "modbus"}
    for i in range(30):
        ts = now - (30 - i) * minute
        for dev, protocol in meters.items():
            values: dict[str, m.Scalar] = {
                "energy_import_kwh": 1000.0 + i,
                "voltage_a_v": 229.5 if i < 20 or dev != "000000000101" else 0.0,
                "current_a_a": 3.2,
                "power_active_kw": 0.7,
                "relay": "closed" if i < 15 else "open",
            }
            if protocol == "modbus":
                values["balance_cny"] = 50.0 - 2 * i
            out.append(
                m.Reading(schema=1, gw=GW, dev=dev, seq=next(seq), ts=ts, values=values, protocol=protocol)
            )
        out.append(
            m.Health(schema=1, gw=GW, dev="mb-11", seq=next(seq), ts=ts, state="online", latency_ms=80.0)
        )
        out.append(
            m.Status(schema=1, gw=GW, seq=next(seq), ts=ts, state="online", spool_depth=i, uptime_s=60.0 * i)
        )
    out.append(m.Event(schema=1, gw=GW, dev="mb-11", seq=next(seq), ts=now - 15 * minute,
                       event=m.EventKind.RELAY_CHANGE, data={"relay": "open"}))  # fmt: skip
    out += _hall(now, seq)
    return out


def _hall(now: int, seq: Iterator[int]) -> list[m.Reading | m.Event | m.Health | m.Status]:
    hall: dict[str, m.Scalar | None] = {"hall": "hall-main"}
    script: list[tuple[m.EventKind, dict[str, m.Scalar | None]]] = []
    for n, (counter, staff, level, label) in enumerate(
        [(1, 1001, 1, "very satisfied"), (2, 1002, 4, "dissatisfied"), (3, 1003, 2, "satisfied")]
    ):
        ticket = f"A{n + 1:03d}"
        who: dict[str, m.Scalar | None] = {**hall, "ticket": ticket, "counter": counter, "staff": staff}
        script += [
            (m.EventKind.TICKET_ISSUED, {**hall, "ticket": ticket, "business": 1}),
            (m.EventKind.TICKET_CALLED, who),
            (m.EventKind.SERVICE_STARTED, {**who, "wait_s": 300.0 * (n + 1)}),
            (m.EventKind.SERVICE_FINISHED, {**who, "wait_s": 300.0 * (n + 1), "service_s": 240.0}),
            (m.EventKind.RATING, {**who, "level": level, "label": label}),
        ]
    script.append((m.EventKind.TICKET_ABANDONED, {**hall, "ticket": "A099", "reason": "timeout"}))
    return [
        m.Event(
            schema=1,
            gw=GW,
            dev="hall-1",
            seq=next(seq),
            ts=now - (len(script) - k) * 30_000,
            event=kind,
            data=data,
        )
        for k, (kind, data) in enumerate(script)
    ]


def _alerts(now: int) -> list[str]:
    rows = [
        # rule, subject, severity, state, minutes ago, value, duration_s
        ("balance_low", "account/A-0011", "info", "firing", 40, 20.0, None),
        ("arrears", "account/A-0011", "warning", "firing", 30, -5.0, None),
        ("arrears", "account/A-0011", "warning", "resolved", 10, 0.0, 1200.0),
        ("reconnect_overdue", "account/A-0011", "major", "firing", 5, 300.0, None),
        ("relay_misoperation", f"{GW}/mb-12", "major", "firing", 20, 1.2, None),
        ("balance_divergence", "account/A-0012", "warning", "firing", 20, 3.5, None),
        ("area_outage", "area/area-a02", "critical", "firing", 25, 3.0, None),
        ("outage_sla_at_risk", "area/area-a02", "major", "firing", 12, 15.0, None),
        ("area_outage", "area/area-a02", "critical", "resolved", 8, 0.0, 1020.0),
        ("phase_outage", "area/area-a01/phase-A", "critical", "firing", 6, 1.0, None),
        ("meter_supply_lost", f"{GW}/000000000101", "warning", "firing", 25, 0.0, None),
        ("hall_wait", "hall/hall-main", "warning", "firing", 9, 1100.0, None),
        ("dissatisfied_rating", "hall/hall-main/counter-2", "warning", "firing", 7, 4.0, None),
        ("device_offline", f"{GW}/000000000103", "warning", "firing", 4, None, None),
    ]
    out = []
    for rule, subject, severity, state, ago, value, duration in rows:
        fields: dict[str, float | str] = {"state": state, "message": f"{rule} on {subject}"}
        if value is not None:
            fields["value"] = value
        if duration is not None:
            fields["duration_s"] = duration
        out.append(
            point(
                "alert", {"rule": rule, "subject": subject, "severity": severity}, fields, now - ago * 60_000
            )
        )
    return out


def _actions(now: int) -> list[str]:
    """Operators' actions as the work desk records them (ingest/alerts/work.py `action_line`)."""
    area = ("area_outage", "area/area-a02")
    rating = ("rating_followup", "hall/hall-main/counter-2/ticket-A002")
    acts = [
        (Action("ack", *area, "dispatcher"), "acknowledged", 24),
        (Action("assign", *area, "dispatcher", crew="crew-3"), "assigned", 23),
        (Action("arrived", *area, "crew-3 lead", crew="crew-3"), "on_site", 15),
        (Action("callback", *rating, "hall manager", outcome="satisfied"), "closed", 3),
    ]
    return [action_line(a, work, (now - ago * 60_000) / 1000) for a, work, ago in acts]


def write_dataset(db: InfluxDB, now_ms: int) -> int:
    topology = Topology.load(REPO / "examples" / "topology.yaml")
    lines = [line for msg in _messages(now_ms) for line in lines_for(_contract(msg), topology)]
    lines += _alerts(now_ms)
    lines += _actions(now_ms)
    db.write("\n".join(lines))
    return len(lines)


# ---- tests --------------------------------------------------------------------------------------


def test_the_four_dashboards_are_valid_grafana_json() -> None:
    uids = set()
    provisioned = (DATASOURCES / "gridedge.yaml").read_text()
    for path in DASHBOARDS.glob("*.json"):
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] not in uids and dashboard["title"] and dashboard["schemaVersion"] >= 30
        uids.add(dashboard["uid"])
        ids = [p["id"] for p in _panels(dashboard["panels"])]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in _panels(dashboard["panels"]):
            assert panel["targets"], f"{path.name}: panel {panel['title']!r} has no query"
            for target in panel["targets"]:
                assert (
                    target["rawQuery"] is True and "from(bucket" not in target["query"]
                )  # InfluxQL, not Flux
                uid = target["datasource"]["uid"]
                assert f"uid: {uid}" in provisioned, f"{path.name}: datasource {uid} is not provisioned"
    assert {p.stem for p in DASHBOARDS.glob("*.json")} == EXPECTED


def test_queries_use_only_measurements_the_ingest_writes() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 25
    for q in queries:
        for name in re.findall(r'FROM "(\w+)"', q.raw):
            assert name in MEASUREMENTS, f"{q.where}: unknown measurement {name}"


def test_render_substitutes_grafana_macros() -> None:
    q = PanelQuery(
        "d", "p", "A", 'SELECT 1 FROM "x" WHERE "gw" =~ /^$gw$/ AND $timeFilter GROUP BY time($__interval)'
    )
    text = q.render(start_ms=1, end_ms=2, interval="10s", variables={"gw": "gw-1"})
    assert (
        text == 'SELECT 1 FROM "x" WHERE "gw" =~ /^gw-1$/ AND time >= 1ms and time <= 2ms GROUP BY time(10s)'
    )
    with pytest.raises(KeyError):
        PanelQuery("d", "p", "A", "SELECT $nope").render(start_ms=1, end_ms=2)


@pytest.mark.integration
def test_every_panel_query_returns_data(influxdb: InfluxDB) -> None:
    now = int(time.time() * 1000)
    assert write_dataset(influxdb, now) > 100
    failures = []
    for q in dashboard_queries():
        text = q.render(start_ms=now - 6 * 3_600_000, end_ms=now + 60_000)
        try:
            series = influxdb.query(text)
        except Exception as exc:
            failures.append(f"{q.where}: {exc}")
            continue
        if not returned_data(series):
            failures.append(f"{q.where}: no data for {text}")
    assert not failures, "\n".join(failures)
