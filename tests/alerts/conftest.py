"""`alert_harness`: the alerts role (in-process, asyncio) against the real `mosquitto` and `influxdb`
fixtures, on a fake clock the test advances. For end-to-end tests of any rule set.

Usage::

    from protocols import messages as m

    async def test_device_goes_offline(alert_harness) -> None:
        h = await alert_harness(
            topology={"devices": {"gw-1/m1": {"area": "area-1"}}},   # a dict or an ingest.topology.Topology
            rules={"devices": {"pending_s": 60}},                    # alerts.rules.<set>: {...}
            # sets=[devices.RULESET],  # only these rule sets (default: every module in ingest/alerts/rules)
            # start=1_763_800_000.0,   # the fake clock's first value (UNIX s); h.now is the current one
            # alerts={"flap": {"max_flips": 2}},                     # other keys of the alerts: section
        )
        await h.publish("gridedge/v1/gw-1/m1/health", m.Health(..., ts=h.ms(), state="offline"), retain=True)
        await h.advance(61)                    # sync, move the clock 61 s, run one tick (outputs done)
        assert h.retained_alerts()[("device_offline", "gw-1/m1")]["state"] == "firing"
        rows = h.influx_alerts()               # SELECT * FROM alert, as dicts (time in ms)
        await h.restart()                      # stop the role and start it again on the same state file
        assert h.engine.firing("device_offline", "gw-1/m1") is not None
        live = await h.alert_messages()        # every message on gridedge/v1/alerts/# since the start

`publish` returns once the role has processed the message (a marker on a private sync topic is
published after it and awaited: deterministic, no sleeps); `advance` processes everything published
so far at the current time, then moves the clock and ticks. `h.role` is the running `SyncedRole`, an
`ingest.alerts.role.AlertsRole` with the test's hooks (`h.engine`, `h.role.stats`, `h.role.outputs.stats`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from ingest.alerts.engine import Change, Engine
from ingest.alerts.model import RuleSet
from ingest.alerts.role import AlertsRole
from ingest.config import IngestConfig
from ingest.subscriber import Delivery
from ingest.topology import Topology
from protocols import messages as m
from protocols.config import load as load_model

from .clock import T0_S, FakeClock

ALERTS_FILTER = "gridedge/v1/alerts/#"


class SyncedRole(AlertsRole):
    """The role plus what tests observe it by: a private sync topic whose markers are recorded once
    their batch is finished (evaluated, alerts confirmed, state saved, acknowledged), and an event set
    by every successful topology reload."""

    def __init__(self, *args: Any, sync_topic: str, **kwargs: Any) -> None:
        self.sync_topic = sync_topic
        self.synced: list[bytes] = []
        self._synced_event = asyncio.Event()
        self.topology_reloaded = asyncio.Event()  # tests clear it
        super().__init__(*args, **kwargs)

    def _filters(self) -> list[str]:
        return [*super()._filters(), self.sync_topic]

    def _process(self, d: Delivery) -> list[Change]:
        return [] if d.topic == self.sync_topic else super()._process(d)

    def _finished(self, batch: list[Delivery]) -> None:
        seen = [d.payload for d in batch if d.topic == self.sync_topic]
        if seen:
            self.synced += seen
            self._synced_event.set()

    def reload_topology(self) -> None:
        before = self.topology
        super().reload_topology()
        if self.topology is not before:
            self.topology_reloaded.set()

    async def wait_synced(self, marker: bytes, timeout: float) -> bool:
        """True once a delivery on `sync_topic` with this payload has been finished."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while marker not in self.synced:
                    self._synced_event.clear()
                    await self._synced_event.wait()
        return marker in self.synced


class _Client:
    """A paho client on its own thread; messages are collected, markers awaited."""

    def __init__(self, port: int, filters: Iterable[str] = ()) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._filters = list(filters)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"harness-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if self._filters:
            self.client.subscribe([(f, 1) for f in self._filters])
            assert self._subscribed.wait(10), "no SUBACK"

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), f"broker did not acknowledge {topic}"

    def until_marker(self, marker_topic: str, timeout: float = 10) -> list[mqtt.MQTTMessage]:
        """Publish a marker to a topic we subscribe to; return what arrived before it."""
        token = uuid.uuid4().hex.encode()
        self.publish(marker_topic, token)
        with self._cond:
            ok = self._cond.wait_for(lambda: any(x.payload == token for x in self.messages), timeout)
            assert ok, "marker did not come back"
            upto = next(i for i, x in enumerate(self.messages) if x.payload == token)
            return [x for x in self.messages[:upto] if x.topic != marker_topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class AlertHarness:
    def __init__(
        self,
        mosquitto: Any,
        influxdb: Any,
        workdir: Path,
        topology: Topology,
        cfg: IngestConfig,
        sets: list[RuleSet] | None,
        start: float,
    ) -> None:
        self.mosquitto, self.influxdb, self.workdir = mosquitto, influxdb, workdir
        self.topology, self.cfg, self.sets = topology, cfg, sets
        self.clock = FakeClock(start)
        self.sync_topic = f"gridedge-test/sync/{uuid.uuid4().hex[:8]}"
        self._marker_topic = f"gridedge-test/marker/{uuid.uuid4().hex[:8]}"
        self.pub = _Client(mosquitto.port)
        self.watch = _Client(mosquitto.port, [ALERTS_FILTER, self._marker_topic])
        self.role: SyncedRole | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # ---- life ---------------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.clock.t

    def ms(self, offset_s: float = 0.0) -> int:
        """The fake clock (+ offset) in epoch milliseconds, for message `ts`."""
        return round((self.clock.t + offset_s) * 1000)

    @property
    def engine(self) -> Engine:
        assert self.role is not None, "the role is not running"
        return self.role.engine

    async def start(self) -> None:
        assert self._task is None
        self.role = SyncedRole(
            self.cfg, self.topology, clock=self.clock, sets=self.sets, sync_topic=self.sync_topic
        )
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.role.run(self._stop), name="test:alerts-role")
        # the subscription exists once a marker comes through (markers before it are simply lost)
        async with asyncio.timeout(20):
            while not await self._sync(timeout=0.5):
                if self._task.done():
                    self._task.result()

    async def stop(self) -> None:
        if self._task is None:
            return
        assert self._stop is not None
        self._stop.set()
        task, self._task = self._task, None
        await asyncio.wait_for(task, 20)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def close(self) -> None:
        try:
            await self.stop()
        finally:
            self.pub.close()
            self.watch.close()

    # ---- driving ------------------------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes | m.Message, *, retain: bool = False) -> None:
        """Publish (QoS 1) and return once the role has processed it."""
        data = payload if isinstance(payload, bytes) else m.encode(payload)
        await asyncio.to_thread(self.pub.publish, topic, data, retain)
        await self.sync()

    async def sync(self) -> None:
        """Wait until the role has processed everything published so far."""
        assert await self._sync(timeout=20), "the alerts role did not process the sync marker"

    async def _sync(self, timeout: float) -> bool:
        assert self.role is not None
        marker = uuid.uuid4().hex.encode()
        await asyncio.to_thread(self.pub.publish, self.sync_topic, marker)
        return await self.role.wait_synced(marker, timeout)

    async def advance(self, seconds: float) -> None:
        """Process what was published at the current time, move the clock, run one tick."""
        await self.sync()
        self.clock.t += seconds
        assert self.role is not None
        await self.role.tick()

    # ---- observing ----------------------------------------------------------------------------------

    def retained_alerts(self) -> dict[tuple[str, str], dict[str, Any]]:
        """What a dashboard connecting now sees: {(rule, subject): payload} of retained alert topics."""
        client = _Client(self.mosquitto.port, [ALERTS_FILTER, self._marker_topic + "/r"])
        try:
            got = client.until_marker(self._marker_topic + "/r")
        finally:
            client.close()
        out = {}
        for msg in got:
            if msg.retain and msg.payload:
                rule, _, subject = msg.topic.removeprefix("gridedge/v1/alerts/").partition("/")
                out[(rule, subject)] = json.loads(msg.payload)
        return out

    async def alert_messages(self) -> list[tuple[str, dict[str, Any] | None, bool]]:
        """Every message on gridedge/v1/alerts/# since the harness started: (topic, payload or None
        for an empty one, retain flag)."""
        got = await asyncio.to_thread(self.watch.until_marker, self._marker_topic)
        return [(x.topic, json.loads(x.payload) if x.payload else None, bool(x.retain)) for x in got]

    def influx_alerts(self) -> list[dict[str, Any]]:
        """SELECT * FROM alert, one dict per row (`time` in ms)."""
        out = []
        for series in self.influxdb.query("SELECT * FROM alert"):
            for values in series["values"]:
                out.append(dict(zip(series["columns"], values, strict=True)))
        return out


HarnessFactory = Callable[..., Awaitable[AlertHarness]]


@pytest.fixture
async def alert_harness(mosquitto: Any, influxdb: Any, tmp_path: Path) -> AsyncIterator[HarnessFactory]:
    made: list[AlertHarness] = []

    async def make(
        topology: Topology | dict[str, Any] | None = None,
        rules: dict[str, dict[str, Any]] | None = None,
        *,
        sets: list[RuleSet] | None = None,
        start: float = T0_S,
        alerts: dict[str, Any] | None = None,
    ) -> AlertHarness:
        workdir = tmp_path / f"alerts-{len(made)}"
        workdir.mkdir()
        if isinstance(topology, dict):
            path = workdir / "topology.yaml"
            path.write_text(yaml.safe_dump(topology))
            topology = Topology.load(path)
        doc = {
            "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "client_id": f"alerts-test-{len(made)}"},
            "influx": {"url": influxdb.url, "database": influxdb.database, "retry_min_s": 0.2},
            "alerts": {
                "state_path": str(workdir / "alerts.sqlite"),
                "tick_s": 3600,  # the test ticks (advance); the real-time ticker stays out of the way
                **(alerts or {}),
                "rules": rules or {},
            },
        }
        cfg = load_model(IngestConfig, json.dumps(doc), source="alert_harness", environ={})
        h = AlertHarness(mosquitto, influxdb, workdir, topology or Topology.empty(), cfg, sets, start)
        made.append(h)
        await h.start()
        return h

    yield make
    for h in made:
        await h.close()
