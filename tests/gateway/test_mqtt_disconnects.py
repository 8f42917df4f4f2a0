"""What the gateway logs when the broker goes away and when it stops (issue 20 item 7).

Stopping a gateway whose broker was killed left an MQTT future holding an exception nobody retrieved
(asyncio: `Future exception was never retrieved ... MqttCodeError`, at garbage collection); a normal
disconnection was logged as a warning. Real broker, real simulator on a pty; asyncio's exception
handler and the log are both watched.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.devices.modbus import ModbusPrepaidMeter
from gridedge.services import Mosquitto
from tests.gateway.helpers import base_config, gateway_plan, recording, sim_line
from tests.gateway.test_gateway_mqtt import modbus_bus, running

pytestmark = pytest.mark.integration


def unretrieved(caplog: pytest.LogCaptureFixture, handled: list[dict[str, Any]]) -> list[str]:
    """Futures holding an exception nobody retrieved: reported by asyncio when they are collected (the
    log, the loop's exception handler), or still alive (a traceback may keep the client a while):
    `_log_traceback` is the flag asyncio reports them by."""
    gc.collect()
    logged = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
    alive = [
        repr(f)
        for f in gc.get_objects()
        if isinstance(f, asyncio.Future) and f.done() and not f.cancelled() and f._log_traceback
    ]
    return logged + alive + [str(c.get("message")) + repr(c.get("exception")) for c in handled]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
async def test_stop_after_the_broker_died_leaves_no_unretrieved_future(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture, how: int
) -> None:
    caplog.set_level(logging.DEBUG)
    handled: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: handled.append(context))
    meters = [ModbusPrepaidMeter(u, seed=u, start_time=time.time()) for u in (1, 2)]
    async with sim_line(meters) as (path, _line), recording(mosquitto.port) as rec:
        plan = gateway_plan(base_config(tmp_path, mosquitto.port, [modbus_bus(path, [1, 2], 1.0)]), tmp_path)
        async with running(plan) as gw:
            await rec.wait_for(lambda: len(rec.samples("mb-1")) >= 2, 10)
            await asyncio.to_thread(mosquitto.stop, how)
            await rec.wait_for(lambda: gw.publisher.stats.connect_failures >= 1, 10)
            await rec.wait_for(lambda: gw.spool.stats.depth >= 2, 10)  # publishing into the void
    assert unretrieved(caplog, handled) == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("gateway")]
    assert not errors, caplog.text


@pytest.mark.timeout(90)
async def test_stop_while_the_broker_hangs_leaves_no_unretrieved_future(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker stops answering (SIGSTOP: a cut cable, a hung host): the gateway is stopped, its
    offline status waits for a PUBACK, and the keep-alive declares the connection dead meanwhile."""
    caplog.set_level(logging.DEBUG)
    handled: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: handled.append(context))
    meters = [ModbusPrepaidMeter(1, seed=1, start_time=time.time())]
    async with sim_line(meters) as (path, _line), recording(mosquitto.port) as rec:
        doc = base_config(
            tmp_path, mosquitto.port, [modbus_bus(path, [1])], keepalive_s=5, publish_timeout_s=15
        )
        assert mosquitto.proc is not None
        try:
            async with running(gateway_plan(doc, tmp_path), drain_s=0.5):
                await rec.wait_for(lambda: len(rec.samples("mb-1")) >= 2, 10)
                os.kill(mosquitto.proc.pid, signal.SIGSTOP)
        finally:
            os.kill(mosquitto.proc.pid, signal.SIGCONT)
    assert unretrieved(caplog, handled) == []


async def test_a_normal_disconnection_is_not_a_warning(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    handled: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: handled.append(context))
    meters = [ModbusPrepaidMeter(1, seed=1, start_time=time.time())]
    async with sim_line(meters) as (path, _line), recording(mosquitto.port) as rec:
        plan = gateway_plan(base_config(tmp_path, mosquitto.port, [modbus_bus(path, [1], 0.5)]), tmp_path)
        async with running(plan):
            await rec.wait_for(lambda: len(rec.samples("mb-1")) >= 2, 10)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("gateway")]
    assert not [r for r in warnings if "running as root" not in r.getMessage()], caplog.text
    assert unretrieved(caplog, handled) == []
