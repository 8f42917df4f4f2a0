"""`gridedge demo` end to end: simulators -> gateway -> Mosquitto -> ingest -> InfluxDB, then a clean stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(120)
def test_demo_runs_the_whole_pipeline_and_stops_cleanly(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gridedge",
            "demo",
            "--workdir",
            str(tmp_path),
            "--duration",
            "25",
            "--no-live",
        ],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mb-11" in result.stdout and "mb-12" in result.stdout, result.stdout
    assert "000000000001" in result.stdout and "000000000103" in result.stdout, "DL/T 645 meters too"
    assert "0 dead letter(s)" in result.stdout
    left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False).stdout
    assert not left.strip(), f"processes left behind: {left}"
    gateway_log = (tmp_path / "gateway.log").read_text()
    assert "stopped; 0 record(s) kept in the spool" in gateway_log
