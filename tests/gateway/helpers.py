"""Building blocks of the gateway acceptance tests: simulators on ptys, configs, an MQTT recorder."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import yaml

from firmware_sim.clock import SimClock
from firmware_sim.device import SimDevice
from firmware_sim.faults import Faults
from firmware_sim.line import Line, Wire
from gateway.config import GatewayConfig, Plan, compile_plan
from protocols.config import Locator
from protocols.config import load as load_model


@contextlib.asynccontextmanager
async def sim_line(
    devices: list[SimDevice], baud: int = 9600, parity: str = "N"
) -> AsyncIterator[tuple[str, Line]]:
    """Serve `devices` on a real pty, paced at `baud`; yields (pty path, line)."""
    line = Line(
        devices, Wire(baud=baud, bits_per_char=10 + (parity != "N")), clock=SimClock(), faults=Faults()
    )
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(line.serve_pty(ready.set_result), name="sim:line")
    try:
        yield await ready, line
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def gateway_plan(doc: dict[str, Any], tmp_path: Path) -> Plan:
    text = yaml.safe_dump(doc, sort_keys=False)
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    cfg = load_model(GatewayConfig, text, source=str(path), environ={})
    return compile_plan(cfg, Locator(text, str(path)))


def base_config(tmp_path: Path, broker_port: int, buses: list[dict[str, Any]], **mqtt: Any) -> dict[str, Any]:
    return {
        "gateway": {"id": "gw-test", "state_dir": str(tmp_path / "state"), "status_interval_s": 2},
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1,
            **mqtt,
        },
        "spool": {"path": str(tmp_path / "state" / "spool.sqlite3")},
        "buses": buses,
    }


@dataclass
class Recorder:
    """Collects every message under gridedge/# (decoded JSON) from a real broker."""

    port: int
    messages: list[tuple[str, dict[str, Any], bool]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        # One client for every reconnection: paho acknowledges a message when it arrives, before we read
        # it from aiomqtt's queue, and that queue belongs to the client object. A new client per
        # connection would drop what was received but not yet read when the broker went away.
        client = aiomqtt.Client("127.0.0.1", self.port, identifier="recorder", clean_session=False)
        while True:
            try:
                async with client:
                    await client.subscribe("gridedge/#", qos=1)
                    self.connected.set()
                    async for msg in client.messages:
                        payload = json.loads(bytes(msg.payload))  # type: ignore[arg-type]
                        self.messages.append((str(msg.topic), payload, bool(msg.retain)))
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.2)

    def of(self, suffix: str) -> list[dict[str, Any]]:
        return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def samples(self, dev: str) -> list[dict[str, Any]]:
        """Every sample of `dev` (a replayed reading carries several in `more`)."""
        out = []
        for payload in self.of(f"/{dev}/reading"):
            out.append(payload)
            out += payload.get("more", [])
        return out

    async def wait_for(self, predicate: Any, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def recording(port: int) -> AsyncIterator[Recorder]:
    rec = Recorder(port)
    task = asyncio.create_task(rec.run(), name="test:recorder")
    try:
        await asyncio.wait_for(rec.connected.wait(), 10)
        yield rec
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
