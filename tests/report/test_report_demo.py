"""Acceptance (issue 23 item 4): `gridedge report` on the data of a 150 s headless demo renders, and its
figures agree with this test's own queries of the same database.

The demo has no operator actions, so the test writes what an operator would have: the crew arriving
10 s into the demo's area outage (acknowledged 2 s in) and the callback of the first dissatisfied rating.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gridedge.services import InfluxDB
from ingest.lineproto import point
from ingest.topology import Topology

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SATISFIED = "\"level\" = 'very satisfied' OR \"level\" = 'satisfied'"


def _demo(tmp_path: Path) -> dict[str, Any]:
    argv = [sys.executable, "-m", "gridedge", "demo", "--headless", "--duration", "150"]
    argv += ["--workdir", str(tmp_path), "--json-summary", str(tmp_path / "summary.json")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, cwd=REPO)
    # the demo's own verdict (every scenario within its timeout) is tests/foundation/test_demo.py's to
    # judge; this test needs its data: exit 1 is a scenario late on a loaded box, anything else a failure
    assert result.returncode in (0, 1), result.stdout[-4000:] + result.stderr[-2000:]
    summary: dict[str, Any] = json.loads((tmp_path / "summary.json").read_text())
    return summary


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


class Own:
    """This test's queries, over the report's period."""

    def __init__(self, db: InfluxDB, start: float, end: float) -> None:
        self.db, self.span = db, f"time >= {math.floor(start * 1000)}ms AND time < {math.floor(end * 1000)}ms"

    def rows(self, select: str, where: str = "", group: str = "") -> list[dict[str, Any]]:
        condition = f"{where} AND {self.span}" if where else self.span
        q = f"{select} WHERE {condition}" + (f" GROUP BY {group}" if group else "")
        out = []
        for s in self.db.query(q):
            columns, tags = s["columns"], s.get("tags") or {}
            out += [{**tags, **dict(zip(columns, v, strict=True))} for v in s["values"]]  # type: ignore[union-attr]
        return out

    def count(self, select: str, where: str = "") -> int:
        found = self.rows(select, where)
        return int(found[0]["count"]) if found else 0


def _operator_actions(db: InfluxDB, start: float) -> tuple[float, str]:
    outage = db.query(
        'SELECT first("started_at") FROM "alert" WHERE "rule" = \'area_outage\' AND "state" = \'firing\' '
        f"AND time >= {math.floor(start * 1000)}ms"
    )
    assert outage, "the demo raised no area outage"
    began = float(outage[0]["values"][0][1])  # type: ignore[index]
    rating = db.query(
        'SELECT first("score") FROM "rating" WHERE "level" = \'dissatisfied\' '
        f"AND time >= {math.floor(start * 1000)}ms "
        'GROUP BY "hall", "counter"'
    )
    assert rating, "the demo had no dissatisfied rating"
    tags, rated_ms = rating[0]["tags"], rating[0]["values"][0][0]  # type: ignore[index]
    counter = f"hall/{tags['hall']}/counter-{tags['counter']}"  # type: ignore[index]
    tag = {"rule": "area_outage", "subject": "area/area-a02"}
    db.write(
        "\n".join(
            [
                point(
                    "alert_action",
                    {**tag, "action": "ack"},
                    {"by": "op-1", "work_state": "acknowledged"},
                    round((began + 2) * 1000),
                ),
                point(
                    "alert_action",
                    {**tag, "action": "arrived"},
                    {"by": "op-1", "crew": "crew-3", "work_state": "on_site"},
                    round((began + 10) * 1000),
                ),
                point(
                    "alert_action",
                    {"rule": "dissatisfied_rating", "subject": counter, "action": "callback"},
                    {"by": "mgr-1", "outcome": "apologised"},
                    int(rated_ms) + 5000,
                ),
            ]
        )
    )
    return began, counter


@pytest.mark.timeout(420)
def test_report_of_a_headless_demo_agrees_with_its_own_queries(tmp_path: Path) -> None:
    summary = _demo(tmp_path / "demo")
    start, end = summary["started_at"] - 5, summary["ended_at"] + 60
    with InfluxDB(tmp_path / "demo" / "influxdb", database="gridedge") as db:
        _operator_actions(db, start)
        out = tmp_path / "report.html"
        argv = [
            sys.executable,
            "-m",
            "gridedge",
            "report",
            "-c",
            "examples/demo/ingest.yaml",
            "--influx-url",
            db.url,
        ]
        argv += ["--from", _iso(start), "--to", _iso(end), "-o", str(out)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=REPO)
        assert result.returncode == 0, result.stderr
        page = out.read_text()
        found = re.search(r'id="report-data">(.*?)</script>', page, re.S)
        assert found
        report = json.loads(found[1])["sections"]
        _check(report, Own(db, start, end))
    assert page.count("<svg") >= 7 and not re.search(r"<(script|img|link)[^>]*(src|href)=", page)


def data(report: dict[str, Any], section: str, key: str) -> dict[str, Any]:
    fig: dict[str, Any] = report[section][key]["data"]
    return fig


def _check(report: dict[str, Any], own: Own) -> None:
    # outages: the demo's area outage in area-a02 (rural: 60 min / 6 h), the crew on site after 10 s
    resolved = own.count(
        'SELECT count("started_at") FROM "alert"',
        "(\"rule\" = 'area_outage' OR \"rule\" = 'phase_outage') AND \"state\" = 'resolved'",
    )
    sla = data(report, "outages", "outage_sla")
    assert sla["outages"] == resolved >= 1
    assert sla["arrival"]["met"] >= 1 and sla["restoration"] == {"met": resolved, "judged": resolved}
    assert data(report, "outages", "outages_by_area")["area-a02"]["region"] == "rural"

    # hall: counts, waits, satisfaction per counter, the one callback
    def kind(k: str) -> int:
        return own.count('SELECT count("seq") FROM "hall_event"', f"\"kind\" = '{k}'")

    tickets = data(report, "hall", "hall_tickets")
    assert tickets == {
        "issued": kind("ticket_issued"),
        "served": kind("service_finished"),
        "abandoned": kind("ticket_abandoned"),
    }
    assert tickets["served"] > 0
    starts = own.rows('SELECT "wait_s" FROM "hall_event"', "\"kind\" = 'service_started'")
    for key in ("wait_by_business", "wait_by_hour"):
        groups = data(report, "hall", key).values()
        assert sum(g["n"] for g in groups) == len(starts)
        assert max(g["p90_s"] for g in groups) <= max(s["wait_s"] for s in starts)
    cross = data(report, "hall", "wait_by_business_hour").values()
    assert sum(cell["n"] for hours in cross for cell in hours.values()) == len(starts)
    hours = {datetime.fromtimestamp(s["time"] / 1000 - s["wait_s"], UTC).hour + 8 for s in starts}
    assert set(data(report, "hall", "wait_by_hour")) == {str(h % 24) for h in hours}  # CST = UTC+8
    rated = own.rows('SELECT count("score") FROM "rating"', group='"hall", "counter"')
    happy = {
        (r["hall"], r["counter"]): r["count"]
        for r in own.rows('SELECT count("score") FROM "rating"', f"({SATISFIED})", '"hall", "counter"')
    }
    counters = data(report, "hall", "satisfaction_by_counter")
    assert {
        f"{r['hall']} / {r['counter']}": (r["count"], happy.get((r["hall"], r["counter"]), 0)) for r in rated
    } == {name: (c["rated"], c["satisfied"]) for name, c in counters.items()}
    unhappy = own.count('SELECT count("score") FROM "rating"', "\"level\" = 'dissatisfied'")
    follow = data(report, "hall", "followups")
    assert follow["dissatisfied"] == unhappy and follow["called back"] == 1 and follow["open"] == unhappy - 1

    # cost control: the demo's arrears of A-0012, its relay misoperation and trip of meter 3
    firing = own.rows(
        'SELECT count("started_at") FROM "alert"',
        "\"rule\" = 'arrears' AND \"state\" = 'firing'",
        '"subject"',
    )
    assert (
        data(report, "costcontrol", "arrears")["accounts"]
        == sorted(r["subject"][8:] for r in firing)
        == ["A-0012"]
    )
    trips = own.count(
        'SELECT count("seq") FROM "meter_event"', "\"kind\" = 'relay_change' AND \"relay\" = 'open'"
    )
    assert data(report, "costcontrol", "trips")["trips"] == trips >= 1
    misop = own.rows(
        'SELECT count("started_at") FROM "alert"', "\"rule\" = 'relay_misoperation'", '"subject"'
    )
    assert data(report, "costcontrol", "misoperations")["meters"] == sorted(r["subject"] for r in misop)

    # reading health: slots of 15 s (the demo's reading interval) with a reading, per gateway
    per_slot = own.rows(
        'SELECT count("energy_import_kwh") FROM "meter"', group='time(15s), "gw", "dev" fill(none)'
    )
    completeness = data(report, "reading", "completeness")["gw-demo-01"]
    topology = Topology.load(REPO / "examples" / "topology.yaml")  # the meters the demo's ingest expects
    meters = {key for key, info in topology.devices.items() if (info.area or info.account) and not info.hall}
    meters |= {(r["gw"], r["dev"]) for r in per_slot}
    assert completeness["stored"] == len(per_slot) and completeness["meters"] == len(meters)
    skew = own.rows(
        'SELECT max("meter_clock_skew_s"), min("meter_clock_skew_s") FROM "meter"', group='"gw", "dev"'
    )
    worst = {f"{r['gw']}/{r['dev']}": max(r["max"], r["min"], key=abs) for r in skew}
    assert data(report, "reading", "clock_drift")["worst"] == worst
