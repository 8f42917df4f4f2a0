"""`gridedge demo --headless`: the whole pipeline with its scripted scenarios, then every dashboard panel.

simulators on ptys -> gateway -> Mosquitto -> ingest (writer + alert engine) -> InfluxDB, for 120 s,
with the scenarios of examples/demo/scenarios.yaml raising and resolving area_outage, arrears,
relay_misoperation, device_offline (which inhibits the dead meter's missed_reading), hall_wait and
dissatisfied_rating. Afterwards the run's InfluxDB data directory is served again and every Grafana
panel's query must return data from it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gridedge.services import InfluxDB
from tests.deploy.test_dashboards import dashboard_queries, returned_data

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULES = (
    "area_outage",
    "arrears",
    "relay_misoperation",
    "hall_wait",
    "dissatisfied_rating",
    "device_offline",
)


@pytest.mark.timeout(260)
def test_headless_demo_raises_and_resolves_every_scenario_and_feeds_every_panel(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    argv = [sys.executable, "-m", "gridedge", "demo", "--headless", "--duration", "120"]
    argv += ["--workdir", str(tmp_path), "--json-summary", str(summary_path)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=230, check=False)
    if result.returncode != 0:  # the work directory is gone after the run: keep what explains it
        logs = "".join(
            f"\n--- {name} (end) ---\n{(tmp_path / name).read_text(errors='replace')[-3000:]}"
            for name in ("gateway.log", "sim.log", "ingest.log")
            if (tmp_path / name).exists()
        )
        pytest.fail(result.stdout[-6000:] + result.stderr[-3000:] + logs)
    left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False).stdout
    assert not left.strip(), f"processes left behind: {left}"
    assert "stopped; 0 record(s) kept in the spool" in (tmp_path / "gateway.log").read_text()

    summary = json.loads(summary_path.read_text())
    assert summary["ok"] is True and summary["problems"] == []
    devices = ["000000000001", "000000000004", "000000000101", "000000000103", "mb-11", "mb-12", "hall-1"]
    assert all(summary["readings"][dev] > 0 for dev in devices), summary["readings"]
    for rule in RULES:
        episodes = [a for a in summary["alerts"] if a["rule"] == rule]
        assert episodes and any(a["resolved"] for a in episodes), f"{rule}: {episodes}"
    assert summary["points"]["meter"] > 50 and summary["points"]["alert"] >= 2 * len(RULES)
    assert summary["deadletters"] == 0
    assert "gridedge demo: OK" in result.stdout

    # every dashboard panel has data from this run (the run's own database, served again)
    influx = InfluxDB(tmp_path / "influxdb", database="gridedge")
    with influx:
        start_ms, end_ms = int(summary["started_at"] * 1000), int(summary["ended_at"] * 1000) + 60_000
        failures = []
        for q in dashboard_queries():
            text = q.render(start_ms=start_ms, end_ms=end_ms, interval="10s")
            series = influx.query(text)
            if not returned_data(series):  # type: ignore[arg-type]
                failures.append(f"{q.where}: no data for {text}")
        assert not failures, "\n".join(failures)
