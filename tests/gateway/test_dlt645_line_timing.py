"""A 32-meter DL/T 645 line at 2400 baud through a pty: each transaction takes the wire time of its
frames plus the meter's configured turnaround, within 10 % (the simulator runs in its own process and
paces every byte at 11 bits per character)."""

from __future__ import annotations

import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.bus import Bus
from gateway.drivers.base import DriverContext
from gateway.drivers.dlt645.config import Dlt645Device
from gateway.drivers.dlt645.driver import Dlt645Driver
from gateway.line import LineSettings
from protocols.dlt645 import lookup, read_reply, read_request

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TURNAROUND_S = 0.050


async def test_32_meters_transaction_time_matches_wire_time_plus_turnaround(tmp_path: Path) -> None:
    addresses = [f"{i:012d}" for i in range(1, 33)]
    argv = [
        sys.executable,
        "-m",
        "gridedge",
        "sim",
        "dlt645",
        "--port",
        "pty",
        "--baud",
        "2400",
        "--turnaround-ms",
        str(int(TURNAROUND_S * 1000)),
    ]
    for a in addresses:
        argv += ["--meter", a]
    sim = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert sim.stdout is not None
        path = sim.stdout.readline().strip()
        line = LineSettings(2400, 8, "E", 1)
        ctx = DriverContext("gw", lambda: int(time.time() * 1000), tmp_path, logging.getLogger("test"))
        item = lookup("energy_import_kwh")
        durations = []
        async with Bus("area", path, line) as bus:
            for a in addresses:
                config = Dlt645Device(kind="dlt645", id=a, address=a, items=["energy_import_kwh"], preamble=0)
                await Dlt645Driver(config, bus, ctx).read_item(item)
                durations.append(bus.stats.last_duration_s)
            assert bus.stats.ok == 32 and bus.stats.timeouts == 0
    finally:
        sim.terminate()
        sim.wait(10)
    request = read_request(addresses[0], item.di).encode(0)
    reply = read_reply(addresses[0], item.di, b"\0" * (item.size or 4)).encode(0)
    expected = line.wire_time(len(request) + len(reply)) + TURNAROUND_S
    median = statistics.median(durations)
    assert abs(median - expected) <= 0.10 * expected, (median, expected)
    assert all(d >= expected * 0.9 for d in durations), "no transaction beats the wire"
