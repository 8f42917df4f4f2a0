"""The demo's live view on an 80x24 terminal (issue 20, item 4): the scenario keys are always on screen,
the tables are cut to fit and say so, and every alert shows when it last changed (it showed the demo's
start for all of them). Against the real influxd; rendered by rich as a terminal of that size."""

from __future__ import annotations

import re
import time

import pytest
from rich.console import Console

from gridedge.demo import DEMO
from gridedge.demo_scenarios import Progress, load_scenarios
from gridedge.demo_view import Snapshot, View, view
from gridedge.services import InfluxDB

METERS = 40
ALERTS = 24
BUSES = {
    "area-a01": [f"{i:012d}" for i in range(1, 21)],
    "area-a02": [f"{i:012d}" for i in range(21, METERS + 1)],
    "hall-line": ["hall-main"],
}


def _clock(ms: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000))


def _write_site(db: InfluxDB, now: int) -> dict[str, str]:
    """METERS meters' readings and ALERTS alerts, each changing at its own second (some fired then
    resolved, some still firing); returns each alert's rule -> the clock time of its last change."""
    lines = []
    for i in range(1, METERS + 1):
        dev = f"{i:012d}"
        fields = (
            f'voltage_a_v=229.{i % 10},power_active_kw=1.{i},energy_import_kwh={1000 + i}.5,relay="closed"'
        )
        lines.append(f"meter,dev={dev} {fields} {now - 5_000 - i}")
    changed = {}
    for k in range(ALERTS):
        rule, subject = f"rule_{k:02d}", f"meter/{k + 1:012d}"
        fired = now - 600_000 + k * 7_000  # 7 s apart: every row's time differs
        lines.append(
            f'alert,rule={rule},subject={subject},severity=warning state="firing",message="m{k}" {fired}'
        )
        changed[rule] = _clock(fired)
        if k % 3 == 0:  # resolved 3 s later: the row shows the resolution's time
            resolved = f'state="resolved",message="ok" {fired + 3_000}'
            lines.append(f"alert,rule={rule},subject={subject},severity=warning {resolved}")
            changed[rule] = _clock(fired + 3_000)
    db.write("\n".join(lines))
    return changed


def _render(renderable: object, width: int = 80, height: int = 24) -> list[str]:
    console = Console(width=width, height=height, record=True, color_system=None, force_terminal=True)
    console.print(renderable)
    return console.export_text().rstrip("\n").splitlines()


def _assert_keys_visible(lines: list[str], keys: list[str]) -> None:
    text = "\n".join(lines)
    for key in [*keys, "q"]:
        assert f"[{key}]" in text, f"key {key!r} not on screen:\n{text}"


@pytest.mark.integration
def test_on_80x24_the_keys_show_and_every_alert_has_its_own_changed_time(influxdb: InfluxDB) -> None:
    now = int(time.time() * 1000)
    changed = _write_site(influxdb, now)
    scenarios = load_scenarios(DEMO / "scenarios.yaml")
    progress = {"outage": Progress("outage", "running", note="waiting for area_outage area-a02 firing")}
    shown = view(influxdb, now - 3_600_000, BUSES, scenarios, progress, fit=True)
    lines = _render(shown)
    screen = "\n".join(lines)
    assert len(lines) <= 23, f"{len(lines)} lines:\n{screen}"  # one spare: a live display must not scroll
    _assert_keys_visible(lines, [sc.key for sc in scenarios.values()])
    assert "waiting for area_outage" in screen, screen
    rows = re.findall(r"^(rule_\d\d) .*?(firing|resolved) +(\d\d:\d\d:\d\d)", screen, re.M)
    assert len(rows) >= 4, screen
    for rule, _, when in rows:
        assert when == changed[rule], f"{rule}: shown {when}, changed at {changed[rule]}\n{screen}"
    assert len({when for _, _, when in rows}) == len(rows)
    assert [state for _, state, _ in rows] == sorted(state for _, state, _ in rows)  # firing first
    assert re.search(r"\.\.\. \d+ more", screen), screen  # the cut says so
    assert "000000000001" in screen  # a meter's 12-digit address is not cut at 80 columns


@pytest.mark.integration
def test_without_fit_the_view_shows_every_row(influxdb: InfluxDB) -> None:
    """The --no-live print (a log file) keeps everything, the scenario titles too."""
    now = int(time.time() * 1000)
    _write_site(influxdb, now)
    scenarios = load_scenarios(DEMO / "scenarios.yaml")
    lines = _render(view(influxdb, now - 3_600_000, BUSES, scenarios, {}), width=140)
    screen = "\n".join(lines)
    assert len(re.findall(r"^rule_\d\d ", screen, re.M)) == ALERTS
    assert sum(f"{i:012d}" in screen for i in range(1, METERS + 1)) == METERS
    assert "power cut in area A02" in screen and "more" not in screen


@pytest.mark.parametrize(("width", "height"), [(80, 24), (100, 30), (80, 60)])
def test_any_terminal_from_80x24_holds_the_view_with_its_keys(width: int, height: int) -> None:
    snap = Snapshot(
        buses=[("area-a01", "20", "80", "20 ok"), ("hall-line", "9", "0 (+3 hall events)", "9 ok")],
        readings=[
            (f"{i:012d}", "10:00:00", "230.00", "1.20", "1000.50", "12.00", "closed") for i in range(60)
        ],
        ingest="ingest: 1234 message(s) in, 0 dead letter(s)",
        hall="hall-main since the start: 10 issued, 8 called, 2 waiting, 6 served, 0 abandoned",
        alerts=[(f"rule_{k:02d}", "meter/000000000001", "firing", "10:00:00", "x" * 90) for k in range(40)],
    )
    scenarios = list(load_scenarios(DEMO / "scenarios.yaml").values())
    lines = _render(View(snap, scenarios, {}, fit=True), width, height)
    assert len(lines) <= height - 1, "\n".join(lines)
    assert all(len(line) <= width for line in lines)
    _assert_keys_visible(lines, [sc.key for sc in scenarios])
    assert any(line.startswith("rule_") for line in lines) and any(
        line.startswith("0000000") for line in lines
    )
