"""bench/alerts_throughput.py still runs (a few hundred readings; the figure itself is for `make bench`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_the_alert_engine_benchmark_runs_and_evaluates_every_reading() -> None:
    done = subprocess.run(
        [sys.executable, "bench/alerts_throughput.py", "--readings", "400", "--meters", "20"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^400 readings from 20 meters \(accounts: all\)", done.stdout, re.M)
    assert re.search(r"^\s+alerts\s+[\d,]+ readings/s", done.stdout, re.M)
    assert ", 0 firing," in done.stdout  # realistic readings: the rules' normal path, no storm
