"""A broker slow to acknowledge alert publishes does not stall the engine, and keeps the order per subject.

The alerts role subscribes on one real broker and publishes its alerts to a second real broker, which
the test freezes (SIGSTOP) so that no PUBACK comes: the engine must go on evaluating the deliveries of
the first one, the state store must not hold changes the broker has not acknowledged (the durability
promise), and once it resumes (SIGCONT) every change arrives in order per subject and is then saved.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gridedge.services import Mosquitto
from ingest.alerts.outputs import Publisher
from ingest.alerts.rules import devices
from ingest.alerts.store import Store
from ingest.config import IngestConfig
from protocols import messages as m
from protocols import topics
from protocols.config import load as load_model

from .clock import T0_S, FakeClock
from .conftest import ALERTS_FILTER, SyncedRole, _Client

pytestmark = pytest.mark.integration

GW = "gw-w"


async def _until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    # in-process state the role changes as it works: there is no event to await for "evaluated"
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)
    assert cond(), what


def _health(dev: str, state: str, seq: int) -> bytes:
    ts = round(T0_S * 1000) - 100 + seq  # reported just before the engine's (fake) now
    return m.encode(m.Health(schema=1, gw=GW, dev=dev, seq=seq, ts=ts, state=state))  # type: ignore[arg-type]


async def test_a_frozen_broker_does_not_stall_the_engine(
    mosquitto: Any, influxdb: Any, tmp_path: Path
) -> None:
    slow = Mosquitto(tmp_path / "slow")
    slow.start()
    doc = {
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "client_id": "window"},
        "influx": {"url": influxdb.url, "database": influxdb.database},
        "alerts": {"state_path": str(tmp_path / "alerts.sqlite"), "tick_s": 3600,
                   "rules": {"devices": {"pending_s": 0}}},
    }  # fmt: skip
    cfg = load_model(IngestConfig, json.dumps(doc), source="test", environ={})
    sync = f"gridedge-test/sync/{uuid.uuid4().hex[:8]}"
    role = SyncedRole(cfg, clock=FakeClock(T0_S), sets=[devices.RULESET], sync_topic=sync)
    slow_mqtt = cfg.mqtt.model_copy(update={"port": slow.port})
    role.outputs.publisher = Publisher(slow_mqtt, "window-pub")  # injected: the alerts go to `slow`
    pub = _Client(mosquitto.port)
    watch = _Client(slow.port, [ALERTS_FILTER, "gridedge-test/end"])
    stop = asyncio.Event()
    task = asyncio.create_task(role.run(stop), name="test:alerts-role")
    frozen = False
    try:

        async def synced() -> bool:
            marker = uuid.uuid4().hex.encode()
            await asyncio.to_thread(pub.publish, sync, marker)
            return await role.wait_synced(marker, 0.5)

        async with asyncio.timeout(20):
            while not await synced():
                assert not task.done()

        assert slow.proc is not None
        os.kill(slow.proc.pid, signal.SIGSTOP)
        frozen = True
        sequence = [("m1", "offline"), ("m1", "online"), ("m1", "offline"), ("m2", "offline")]
        for seq, (dev, state) in enumerate(sequence, 1):
            await asyncio.to_thread(pub.publish, topics.health_topic(GW, dev), _health(dev, state, seq))
        # evaluated while not one PUBACK came: both meters' alerts are firing in the engine
        await _until(lambda: role.engine.stats.messages >= len(sequence), "the engine evaluated them all")
        assert role.engine.firing("device_offline", f"{GW}/m1") is not None
        assert role.engine.firing("device_offline", f"{GW}/m2") is not None
        assert role.outputs.publisher.in_flight >= 5  # firing, resolved + clear, firing, firing
        on_disk = Store(tmp_path / "alerts.sqlite", 100)
        try:
            assert on_disk.load().tracks == [], "state saved before the broker acknowledged its alerts"
        finally:
            on_disk.close()

        os.kill(slow.proc.pid, signal.SIGCONT)
        frozen = False
        async with asyncio.timeout(20):
            while not await synced():
                pass
        got = await asyncio.to_thread(watch.until_marker, "gridedge-test/end")
        m1 = [(json.loads(x.payload)["change"] if x.payload else "") for x in got if x.topic.endswith("/m1")]
        assert m1 == ["firing", "resolved", "", "firing"]
        assert [x.topic for x in got if x.payload][-1].endswith("/m2")
        assert role.outputs.stats.published == 5 and role.outputs.stats.publish_unconfirmed == 0
        on_disk = Store(tmp_path / "alerts.sqlite", 100)
        try:
            saved = sorted(t["alert"]["subject"] for t in on_disk.load().tracks)
        finally:
            on_disk.close()
        assert saved == [f"{GW}/m1", f"{GW}/m2"]
    finally:
        if frozen and slow.proc is not None:
            os.kill(slow.proc.pid, signal.SIGCONT)
        stop.set()
        await asyncio.wait_for(task, 30)
        pub.close()
        watch.close()
        slow.stop()
