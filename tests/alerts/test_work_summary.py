"""The demo's headless summary shows each alert's work state from `alert_action` (real InfluxDB)."""

from __future__ import annotations

from typing import Any

from gridedge.demo_summary import collect, render
from ingest.alerts.actions import Action
from ingest.alerts.work import action_line

T0 = 1_763_800_000.0


def test_summary_shows_the_work_state_of_each_alert(influxdb: Any) -> None:
    def alert(rule: str, subject: str, state: str, at: float) -> str:
        fields = f'state="{state}",message="m",started_at={T0}'
        return f"alert,rule={rule},subject={subject},severity=major {fields} {round(at * 1000)}"

    lines = [
        alert("area_outage", "area/a1", "firing", T0 + 60),
        alert("area_outage", "area/a1", "resolved", T0 + 900),
        alert("device_offline", "gw/m1", "firing", T0 + 60),
        action_line(Action("ack", "area_outage", "area/a1", "wang"), "acknowledged", T0 + 100),
        action_line(Action("arrived", "area_outage", "area/a1", "crew-3"), "on_site", T0 + 700),
        action_line(
            Action("close", "area_outage", "area/a1", "wang", cause="c", outcome="o"), "closed", T0 + 950
        ),
    ]
    influxdb.write("\n".join(lines))
    s = collect(influxdb, started_at=T0, ended_at=T0 + 1000, devices={}, scenarios={}, progress={})
    work = {(a.rule, a.subject): (a.work, a.actions) for a in s.alerts}
    assert work == {("area_outage", "area/a1"): ("closed", 3), ("device_offline", "gw/m1"): ("open", 0)}
    text = render(s)
    assert "work closed (3 actions)" in text and "work open" in text
