"""The demo's live view and scenario file, against the real influxd with the dashboards' data set."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from rich.console import Console

from gridedge.demo import DEMO, _buses
from gridedge.demo_scenarios import Progress, ScenarioError, load_scenarios, reached
from gridedge.demo_view import view
from gridedge.services import InfluxDB
from tests.deploy.test_dashboards import write_dataset


def test_the_demo_scenarios_load_with_one_key_each() -> None:
    scenarios = load_scenarios(DEMO / "scenarios.yaml")
    keys = [sc.key for sc in scenarios.values()]
    assert len(keys) == len(set(keys)) and "q" not in keys
    expected = {rule for sc in scenarios.values() for rule in sc.expect}
    wanted = {"area_outage", "arrears", "relay_misoperation", "hall_wait"}
    assert expected >= wanted | {"dissatisfied_rating", "device_offline"}
    assert all(sc.headless_at is not None for sc in scenarios.values() if sc.expect)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("scenarios: {x: {key: a, steps: []}}", "non-empty list of steps"),
        ("scenarios: {x: {key: q, steps: [{sleep: 1}]}}", "x.key"),
        ("scenarios: {x: {key: a, steps: [{sleep: 1, sim: cut 1}]}}", r"x.steps\[0\]: exactly one of"),
        ("scenarios: {x: {key: a, steps: [{wait: {rule: arrears}}]}}", "needs rule, subject and state"),
    ],
)
def test_a_bad_scenario_file_names_the_scenario_and_step(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=error):
        load_scenarios(path)


def test_waits_see_firing_then_resolved_per_subject() -> None:
    rows = [(1, "area/area-a02", "firing"), (2, "area/area-a01", "firing"), (3, "area/area-a02", "resolved")]
    assert reached(rows, "area-a02", "firing") and reached(rows, "area-a02", "resolved")
    assert reached(rows, "area-a01", "firing") and not reached(rows, "area-a01", "resolved")
    assert not reached(rows[:2], "area-a02", "resolved")


@pytest.mark.integration
def test_the_live_view_shows_buses_readings_hall_alerts_and_keys(influxdb: InfluxDB) -> None:
    now = int(time.time() * 1000)
    write_dataset(influxdb, now)
    scenarios = load_scenarios(DEMO / "scenarios.yaml")
    progress = {"outage": Progress("outage", "running", note="waiting for area_outage area-a02 firing")}
    console = Console(width=200, record=True)
    console.print(view(influxdb, now - 6 * 3_600_000, _buses(), scenarios, progress))
    text = console.export_text()
    shown = ("area-a01", "hall-line", "000000000001", "mb-11", "hall-main", "area_outage", "waiting for")
    for expected in shown:
        assert expected in text, f"{expected!r} not in the view:\n{text}"
    assert "InfluxDB:" not in text, text
