"""A DL/T 645 control command whose reply is lost is not sent again: the meter may have acted on it
(a trip, or a master station's ciphertext that recharges a wallet), and the relay read-back says what
happened. Reads are still retried. (Found by the DL/T 698.45 work, which does the same.)"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from firmware_sim.devices.dlt645 import Dlt645Meter
from gateway.bus import Bus
from gateway.drivers.base import DriverContext
from gateway.drivers.dlt645.config import Dlt645Device
from gateway.drivers.dlt645.driver import Dlt645Driver
from gateway.line import LineSettings
from protocols.dlt645 import split_frames
from tests.gateway.helpers import sim_line

ADDRESS = "000000000001"
CONTROL = 0x1C


async def test_a_trip_whose_reply_is_lost_is_sent_once(tmp_path: Path) -> None:
    meter = Dlt645Meter(ADDRESS, start_time=time.time())
    functions: list[int] = []
    respond = meter.respond

    def counting(request: bytes, now: float):  # type: ignore[no-untyped-def]
        functions.extend(f.function for f in split_frames(request))
        return respond(request, now)

    meter.respond = counting  # type: ignore[method-assign]
    async with sim_line([meter], baud=2400, parity="E") as (path, line):
        async with Bus("b", path, LineSettings(2400, 8, "E", 1)) as bus:
            config = Dlt645Device(
                kind="dlt645", id=ADDRESS, address=ADDRESS, control=True, password="123456",
                retries=2, reply_timeout_ms=300,
            )  # fmt: skip
            ctx = DriverContext("gw", lambda: int(time.time() * 1000), tmp_path, logging.getLogger("t"))
            driver = Dlt645Driver(config, bus, ctx)
            line.faults.silence = 1.0  # the meter acts; every reply is lost on the way back
            outcome = await driver.execute("trip", {})
    assert outcome.status == "failed" and "not confirmed" in (outcome.reason or "")
    assert functions.count(CONTROL) == 1, functions  # retries=2 applies to reads only
    assert functions.count(0x11) == 3  # the read-back, retried as reads are
