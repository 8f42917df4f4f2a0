"""`gridedge report --month 2026-11` on a known month in a real InfluxDB (tests/report/month.py): every
figure as worked out by hand, the page self-contained with a definition under each figure, empty
measurements as "no data", bad options and an unreachable database as clear errors."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gridedge.cli import main
from gridedge.services import InfluxDB, free_port
from ingest.report.errors import PeriodError
from ingest.report.period import month_period, parse_period
from ingest.report.stats import ident, natural, quantile
from tests.report import month

pytestmark = pytest.mark.integration


def report_data(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert found, "the page has no report-data"
    data: dict[str, Any] = json.loads(found[1])
    return data


def run_report(tmp_path: Path, db: InfluxDB, *args: str) -> tuple[int, str]:
    (tmp_path / "topology.yaml").write_text(month.TOPOLOGY)
    (tmp_path / "ingest.yaml").write_text(
        "influx: {url: http://127.0.0.1:1, database: nowhere}\ntopology: topology.yaml\n"
    )
    out = tmp_path / "report.html"
    argv = ["report", "-c", str(tmp_path / "ingest.yaml"), "--influx-url", db.url, "--database", db.database]
    code = main([*argv, *args, "-o", str(out)])
    return code, out.read_text() if out.exists() else ""


@pytest.fixture
def november(influxdb: InfluxDB, tmp_path: Path) -> dict[str, Any]:
    influxdb.write(month.lines())
    code, page = run_report(tmp_path, influxdb, "--month", "2026-11")
    assert code == 0
    return {"page": page, "data": report_data(page)}


def figure(november: dict[str, Any], section: str, key: str) -> dict[str, Any]:
    fig: dict[str, Any] = november["data"]["sections"][section][key]
    return fig["data"]


def test_outages_are_timed_against_the_promise_by_area(november: dict[str, Any]) -> None:
    sla = figure(november, "outages", "outage_sla")
    # O1 met both; O2 missed both; O3 restored before the crew was due; O4 open past both; O5 is October's
    assert sla == {"outages": 4, "arrival": {"met": 1, "judged": 3}, "restoration": {"met": 2, "judged": 4}}
    areas = figure(november, "outages", "outages_by_area")
    assert areas["area-u"] == {
        "region": "urban",
        "outages": 2,
        "arrival": {"met": 1, "judged": 2},
        "restoration": {"met": 1, "judged": 2},
    }
    assert areas["area-r"] == {
        "region": "rural",
        "outages": 2,
        "arrival": {"met": 0, "judged": 1},
        "restoration": {"met": 1, "judged": 2},
    }
    notes = november["data"]["notes"]["outages"]
    assert notes == ["1 'arrived' action(s) fell in no outage that started in the period"]
    misses = {
        (m["subject"], m["start"]): m["missed"]
        for m in figure(november, "outages", "outage_misses")["misses"]
    }
    assert misses == {
        ("area/area-u", month.t(20, 9)): ["arrival", "restoration"],
        ("area/area-r", month.t(28, 23)): ["arrival", "restoration"],
    }


def test_hall_tickets_waits_and_peaks(november: dict[str, Any]) -> None:
    assert figure(november, "hall", "hall_tickets") == {"issued": 10, "served": 9, "abandoned": 1}
    business = figure(november, "hall", "wait_by_business")
    # payment waits 30 60 90 120 150 180 240 s: p50 120, p90 at rank 5.4 = 180 + 0.4 x 60
    assert business["payment"] == {"n": 7, "p50_s": 120.0, "p90_s": pytest.approx(204.0)}
    assert business["account change"] == {"n": 2, "p50_s": 900.0, "p90_s": pytest.approx(1140.0)}
    hours = figure(november, "hall", "wait_by_hour")  # local hour the ticket was taken
    assert sorted(hours) == ["10", "14", "9"]
    assert hours["9"] == {"n": 4, "p50_s": 150.0, "p90_s": pytest.approx(222.0)}
    assert hours["10"] == {"n": 3, "p50_s": 90.0, "p90_s": pytest.approx(138.0)}
    cross = figure(november, "hall", "wait_by_business_hour")
    assert cross["payment"]["10"] == {"n": 3, "p50_s": 90.0, "p90_s": pytest.approx(138.0)}
    assert sorted(cross["payment"]) == ["10", "9"] and sorted(cross["account change"]) == ["14"]
    peaks = figure(november, "hall", "hall_peaks")
    assert peaks["per_day"] == {"2026-11-02": 4, "2026-11-15": 3, "2026-11-29": 3}
    assert (peaks["edge_avg"], peaks["other_avg"]) == (3.5, 3.0)
    assert peaks["ratio"] == pytest.approx(3.5 / 3)


def test_satisfaction_and_follow_ups(november: dict[str, Any]) -> None:
    counters = figure(november, "hall", "satisfaction_by_counter")
    assert counters["hall-main / 1"] == {
        "rated": 3,
        "satisfied": 2,
        "dissatisfied": 1,
        "served": 4,
        "rate": pytest.approx(2 / 3),
    }
    assert counters["hall-main / 2"] == {
        "rated": 5,
        "satisfied": 3,
        "dissatisfied": 1,
        "served": 5,
        "rate": 0.6,
    }
    staff = figure(november, "hall", "satisfaction_by_staff")
    assert (
        set(staff) == {"1001", "1002"} and staff["1002"]["served"] == 5
    )  # 1002.0 in events, '1002' in ratings
    follow = figure(november, "hall", "followups")
    assert follow == {
        "dissatisfied": 2,
        "called back": 1,
        "called back late": 0,
        "open": 0,
        "overdue": 1,
        "followup_alerts": 1,
    }


def test_cost_control(november: dict[str, Any]) -> None:
    assert figure(november, "costcontrol", "arrears") == {"accounts": ["A-1", "A-2", "A-3"], "episodes": 3}
    assert figure(november, "costcontrol", "trips") == {"trips": 2, "auto_commands": 1}
    reconnection = figure(november, "costcontrol", "reconnection")
    taken = {r["account"]: (r["taken_s"] / 3600, r["state"]) for r in reconnection["reconnections"]}
    assert taken == {"A-1": (6.0, "met"), "A-2": (36.0, "missed")}
    assert (reconnection["met"], reconnection["judged"]) == (1, 2)
    assert figure(november, "costcontrol", "misoperations") == {"episodes": 1, "meters": ["gw-1/m3"]}


def test_reading_health(november: dict[str, Any]) -> None:
    completeness = figure(november, "reading", "completeness")
    # gw-1: m1 every slot (a second reading in one slot counts once), m2 half, m3 never: 4,320 of 8,640
    assert completeness["gw-1"] == {"meters": 3, "stored": 4320, "expected": 8640, "share": 0.5}
    assert completeness["gw-2"] == {"meters": 1, "stored": 10, "expected": 2880, "share": 10 / 2880}
    assert figure(november, "reading", "register_faults") == {"meters": {"gw-1/m2": {"register_decrease": 1}}}
    drift = figure(november, "reading", "clock_drift")
    assert drift["over"] == ["gw-1/m2"] and drift["worst"]["gw-1/m2"] == -400.0 and drift["meters"] == 3


def test_the_page_is_self_contained_and_defines_every_figure(november: dict[str, Any]) -> None:
    page: str = november["page"]
    figures = re.findall(r'<figure id="fig-[a-z_]+">', page)
    assert len(figures) == 19
    assert page.count('<p class="definition"><b>Definition.</b>') == len(figures)
    assert page.count("<svg") >= 8  # every figure with a chart and data
    assert not re.search(r"<(script|img|link|iframe)[^>]*(src|href)=", page), "an external resource"
    assert "China Standard Time (UTC+8)" in page
    assert page.count("<summary>Queries") == 4 and 'FROM "alert_action"' in html.unescape(page)


def test_an_empty_database_says_no_data(influxdb: InfluxDB, tmp_path: Path) -> None:
    code, page = run_report(tmp_path, influxdb, "--from", "2026-11-01", "--to", "2026-11-08")
    assert code == 0
    data = report_data(page)
    empty = [f for s in data["sections"].values() for f in s.values() if f["empty"]]
    # all but the reading completeness, which still expects the topology's 3 meters (0 % stored)
    assert len(empty) == 18
    assert figure({"data": data}, "reading", "completeness")["gw-1"]["stored"] == 0
    assert "No data: no outages in the period." in page


def test_options_and_an_unreachable_database_are_clear_errors(
    influxdb: InfluxDB, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_report(tmp_path, influxdb, "--month", "2026-13")[0] == 2
    assert "--month '2026-13': expected YYYY-MM" in capsys.readouterr().err
    assert run_report(tmp_path, influxdb, "--from", "2026-11-05", "--to", "2026-11-01")[0] == 2
    assert "is not after --from" in capsys.readouterr().err
    gone = InfluxDB(tmp_path / "gone", port=free_port())  # nothing listens there
    code, page = run_report(tmp_path, gone, "--month", "2026-11")
    err = capsys.readouterr().err
    assert code == 1 and not page
    assert "gridedge report: InfluxDB http://127.0.0.1:" in err and 'for: SELECT "state"' in err


def test_period_month_and_bounds_are_local_time() -> None:
    november = month_period("2026-11")
    assert (november.start, november.end) == (month.t(1, 0), month.t(1, 0, month=12))
    span = parse_period(None, "2026-11-01T08:00", "2026-11-01T09:00+00:00", now=0)
    assert (span.start, span.end) == (month.t(1, 8), month.t(1, 17))
    with pytest.raises(PeriodError, match="cannot be combined"):
        parse_period("2026-11", "2026-11-01", None, now=0)


def test_quantile_and_ident() -> None:
    assert quantile([], 0.5) is None and quantile([7.0], 0.9) == 7.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5 and quantile([10.0, 20.0], 0.9) == pytest.approx(19.0)
    assert sorted(["area-10", "area-2", "area-1b", "area-1"], key=natural) == [
        "area-1",
        "area-1b",
        "area-2",
        "area-10",
    ]
    assert sorted([("h", "10"), ("h", "9")], key=natural) == [("h", "9"), ("h", "10")]
    assert ident(7.0) == ident("7.0") == ident(7) == "7" and ident("A12") == "A12" and ident(None) == ""


def test_credentials_of_the_config_are_sent_and_kept_off_the_page(tmp_path: Path) -> None:
    from ingest.config import InfluxSection
    from ingest.report.errors import QueryFailed
    from ingest.report.source import Source

    server = InfluxDB(tmp_path / "influxd", admin=("admin", "s3cret"))
    with server:
        server.write(month.lines())
        anonymous = Source.from_config(InfluxSection(url=server.url))
        with pytest.raises(QueryFailed, match=r"HTTP 401 .* for: SELECT"):
            anonymous.query('SELECT count("score") FROM "rating"')
        configured = Source.from_config(InfluxSection(url=server.url, username="admin", password="s3cret"))
        in_url = Source.from_config(InfluxSection(), f"http://admin:s3cret@127.0.0.1:{server.port}")
        for source in (configured, in_url):
            assert source.query('SELECT count("score") FROM "rating"')[0]["values"][0][1] == 8
            assert source.url == server.url  # what the page and the errors show: no password
