"""The DL/T 698.45 driver's line silence before a request: 4 characters (at least the 33 bit times
600888 waits, dlt698.md §1), not DL/T 645's 20 ms floor, which at 9600 baud cost 13 % of a read
(bench/bus_efficiency.py --kind dlt698 --meters 32: 84.5 % of the wire-time limit with it, 93 %
without). On a 9600 8E1 pty, 645 and 698.45 meters polled alternately with these gaps answer every
request with no frame error, stray byte or timeout on the bus."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware_sim.device import SimDevice
from firmware_sim.devices.dlt645 import Dlt645Meter
from firmware_sim.devices.dlt698 import Dlt698Meter
from gateway.bus import Bus
from gateway.drivers.base import DriverContext
from gateway.drivers.dlt645.config import Dlt645Device
from gateway.drivers.dlt645.driver import Dlt645Driver
from gateway.drivers.dlt698.config import Dlt698Device
from gateway.drivers.dlt698.driver import Dlt698Driver
from gateway.line import LineSettings
from protocols import dlt645
from protocols.dlt698 import Oad
from tests.gateway.helpers import sim_line

LINE = LineSettings(9600, 8, "E", 1)
IMPORT_TOTAL = Oad(0x0010, 2, 1)


def test_the_gap_is_four_characters_not_20_ms() -> None:
    gap = Dlt698Driver.line_gap_s(LINE)
    assert gap == pytest.approx(4 * 11 / 9600)  # 4.6 ms (was 20 ms)
    assert gap * LINE.baud >= 33
    assert Dlt698Driver.line_gap_s(LineSettings(2400, 8, "E", 1)) == pytest.approx(4 * 11 / 2400)
    assert Dlt698Driver.line_gap_s(LineSettings(0)) == 0.02  # speed unknown (a serial server over TCP)
    assert Dlt645Driver.line_gap_s(LINE) == 0.02  # a 645 meter keeps its 20 ms before its own requests


@pytest.mark.integration
async def test_a_mixed_9600_line_polled_back_to_back_has_no_cross_talk(tmp_path: Path) -> None:
    now = time.time()
    fast = (0.020, 0.030)
    meters: list[SimDevice] = [
        Dlt645Meter("000000000001", seed=1, start_time=now, turnaround_s=fast),
        Dlt698Meter("000000000002", seed=2, start_time=now, turnaround_s=fast),
        Dlt645Meter("000000000003", seed=3, start_time=now, turnaround_s=fast),
        Dlt698Meter("000000000004", seed=4, start_time=now, turnaround_s=fast),
    ]
    ctx = DriverContext("gw", lambda: int(time.time() * 1000), tmp_path, logging.getLogger("test"))
    item = dlt645.lookup("energy_import_kwh")
    async with sim_line(meters, baud=9600, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        d645 = [
            Dlt645Driver(Dlt645Device(kind="dlt645", id=a, address=a, items=["energy_import_kwh"]), bus, ctx)
            for a in ("000000000001", "000000000003")
        ]
        d698 = [
            Dlt698Driver(Dlt698Device(kind="dlt698", id=a, address=a, retries=0, backfill=False), bus, ctx)
            for a in ("000000000002", "000000000004")
        ]
        assert d698[0].transaction_timing(800, 120, 0).gap_before_s == pytest.approx(4 * 11 / 9600)
        for _ in range(5):
            for one, other in zip(d645, d698, strict=True):
                await one.read_item(item)
                [result] = await other.session.get([IMPORT_TOTAL])
                assert result.data is not None
    s = bus.stats
    assert (s.ok, s.frame_errors, s.stray_bytes, s.timeouts, s.retries) == (20, 0, 0, 0, 0)


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["dlt698", "mixed"])
def test_the_bus_benchmark_polls_698_and_mixed_lines_cleanly(kind: str, tmp_path: Path) -> None:
    """bench/bus_efficiency.py --kind: the simulator in its own process (a site file for mixed)."""
    argv = [sys.executable, "bench/bus_efficiency.py", "--kind", kind, "--meters", "4", "--seconds", "1"]
    done = subprocess.run(
        [*argv, "--repeats", "1"],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "9600 8E1" in done.stdout and re.search(r"^seed 1 +achieved +[\d.]+ reads/s", done.stdout, re.M)
    assert "bus: 0 frame errors, 0 stray bytes, 0 timeouts" in done.stdout, done.stdout
    assert list(tmp_path.iterdir()) == []  # the site file's directory is gone
