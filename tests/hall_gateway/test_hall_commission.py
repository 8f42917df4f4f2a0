"""`gridedge scan/read --protocol hall` against `gridedge sim hall` behind a real pty."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def hall_sim() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridedge", "sim", "hall", "--port", "pty", "--counters", "2", "--seed", "1"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    yield proc.stdout.readline().strip()
    proc.terminate()
    proc.wait(10)


def gridedge(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridedge", *argv], capture_output=True, text=True, timeout=60, check=False
    )


def test_scan_finds_exactly_the_hall_devices(hall_sim: str) -> None:
    result = gridedge("scan", "--protocol", "hall", "--port", hall_sim, "--hall-addresses", "1-40", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)["found"]
    assert [(f["address"], f["kind"], f["counter"]) for f in found] == [
        (1, "dispenser", 0),
        (2, "keypad", 1),
        (3, "keypad", 2),
        (33, "rating pad", 1),
        (34, "rating pad", 2),
    ]


def test_read_identifies_and_polls_without_acknowledging(hall_sim: str) -> None:
    ident = gridedge("read", "--protocol", "hall", "--port", hall_sim, "--hall-address", "3", "--raw")
    assert ident.returncode == 0, ident.stderr
    assert ident.stdout.startswith("identity = keypad fw 1.2 counter 2")
    assert "request  ff 68 02 02 68 03 05 08 16" in ident.stdout
    poll = gridedge(
        "read",
        "--protocol",
        "hall",
        "--port",
        hall_sim,
        "--hall-address",
        "2",
        "--hall-read",
        "poll",
        "--json",
    )
    assert poll.returncode == 0, poll.stderr
    assert json.loads(poll.stdout)["name"] == "event"
    silent = gridedge("read", "--protocol", "hall", "--port", hall_sim, "--hall-address", "9")
    assert silent.returncode != 0 and "Timeout" in silent.stderr
