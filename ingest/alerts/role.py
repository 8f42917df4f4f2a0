"""`gridedge ingest run --role alerts`: MQTT deliveries -> decoded Inbound -> engine -> outputs, plus a
timer that ticks the engine (silence is a signal).

Layer: ingest alert service. Its own MQTT session (client id `mqtt.client_id + alerts.client_id_suffix`,
QoS 1, persistent, manual acknowledgements through ingest.subscriber): a batch of deliveries is
acknowledged only after the engine committed the alerts and rule state it produced, so a crash
loses nothing (the broker redelivers). Payloads are decoded with the same contract as the writer; a
malformed one is counted and skipped (the writer dead-letters it). Must not: write device data.

SIGHUP (installed by the CLI) calls `reload_topology`: the rules see new meters, areas and halls from
the next message or tick on; their memory and the current alerts are kept.

The clock is injectable (a callable returning UNIX seconds) so tests run in compressed time;
`tick()` and `sync_topic` let a test drive and observe the role deterministically.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from protocols import topics
from protocols.errors import ContractError

from ..config import IngestConfig
from ..errors import RetryableWrite
from ..influx import InfluxV1, make_writer
from ..subscriber import Delivery, Subscriber
from ..topology import Topology
from .autocontrol import FILTERS as AUTOCONTROL_FILTERS
from .autocontrol import AutoControl, load_key
from .engine import Change, Engine
from .costcontrol.ledger import Ledger
from .model import Inbound, RuleSet
from .outputs import Outputs, Publisher
from .rules import rulesets
from .store import Store

log = logging.getLogger("ingest.alerts")

TAKE = 1000
SLICE = 100  # messages evaluated in one stretch of the event loop (~5-10 ms on a Pi-class core)

_READ = frozenset(topics.MODELS) - {topics.TopicKind.ALERT, topics.TopicKind.DEADLETTER}


@dataclass
class RoleStats:
    received: int = 0
    malformed: int = 0
    acked: int = 0


def decode(topic: str, payload: bytes) -> Inbound:
    """A delivery as the rules see it; raise ContractError for anything the contract refuses."""
    where = topics.parse_topic(topic)
    if where.kind is topics.TopicKind.BILLING:
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise ContractError("$", f"not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ContractError("$", "a billing payload must be a JSON object")
        return Inbound(topic, "", "", data)
    if where.kind not in _READ:
        raise ContractError("topic", f"{topic}: the alert engine does not read {where.kind.value} messages")
    message = topics.decode_payload(where, payload)
    return Inbound(topic, where.gw, where.dev, message)


class AlertsRole:
    def __init__(
        self,
        cfg: IngestConfig,
        topology: Topology | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sets: Iterable[RuleSet] | None = None,
        sync_topic: str | None = None,
    ) -> None:
        section = cfg.alerts
        self.cfg = cfg
        self.sets = list(rulesets() if sets is None else sets)
        self.sync_topic = sync_topic
        filters = list(cfg.mqtt.topics)
        for rs in self.sets:
            filters += [t for t in rs.topics if t not in filters]
        if section.autocontrol.enabled:
            filters += [t for t in AUTOCONTROL_FILTERS if t not in filters]
        if sync_topic is not None:
            filters.append(sync_topic)
        client_id = cfg.mqtt.client_id + section.client_id_suffix
        # never a shared subscription: stateful rules must see every message of their gateways
        mqtt_cfg = cfg.mqtt.model_copy(
            update={"client_id": client_id, "topics": filters, "shared_group": None}
        )
        self.subscriber = Subscriber(mqtt_cfg)
        self.store = Store(section.state_path, section.history)
        self.topology = topology or Topology.empty()
        self.engine = Engine.build(section, self.topology, self.sets, clock=clock, store=self.store)
        self.autocontrol = self._autocontrol() if section.autocontrol.enabled else None
        self.writer = make_writer(cfg.influx)
        self.outputs = Outputs(Publisher(cfg.mqtt, client_id + "-pub"), self.writer, section.webhook)
        self.stats = RoleStats()
        self.synced: list[bytes] = []  # sync markers seen, in order (tests)
        self._synced_event = asyncio.Event()
        self._lock = asyncio.Lock()
        self.topology_reloaded = asyncio.Event()  # set by every successful reload (tests clear it)

    def _autocontrol(self) -> AutoControl:
        """The trip / reconnect policy, reading keep-power from the cost-control rule's ledger, kept in
        the engine's rule list so that its pending actions are committed with the alerts."""
        section = self.cfg.alerts
        found = (getattr(r, "ledger", None) for _, r in self.engine.rules)
        ledgers = [x for x in found if isinstance(x, Ledger)]
        lookup = ledgers[0].account if ledgers else (lambda _: None)
        policy = AutoControl(
            section.autocontrol, load_key(section.autocontrol, section.state_path.parent), account=lookup
        )
        state = self.store.load().rules.get("autocontrol")
        if state is not None:
            policy.restore(state)
        self.engine.rules.append(("autocontrol", policy))
        return policy

    async def run(self, stop: asyncio.Event) -> None:
        await self._prepare_database()
        assert self.outputs.publisher is not None
        self.outputs.publisher.start()
        self.subscriber.start()
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self._consume(), name="alerts:consume"),
                    tg.create_task(self.subscriber.watch(), name="alerts:watch-network"),
                    tg.create_task(self._ticker(), name="alerts:tick"),
                    tg.create_task(self.outputs.run_webhook(), name="alerts:webhook"),
                ]
                await stop.wait()
                for task in tasks:
                    task.cancel()
        finally:
            try:
                self.engine.commit()
            finally:
                await asyncio.to_thread(self.subscriber.stop)
                await asyncio.to_thread(self.outputs.publisher.stop)
                await self.outputs.close()
                await self.writer.close()
                self.store.close()

    def reload_topology(self) -> None:
        """SIGHUP: load `cfg.topology` again and hand it to the rules (between two messages: the event
        loop runs this callback, never in the middle of the engine's synchronous work). A file that
        does not load keeps the previous topology."""
        if self.cfg.topology is None:
            return
        try:
            topology = Topology.load(self.cfg.topology)
        except Exception as exc:
            log.error("alerts: topology %s not reloaded: %s", self.cfg.topology, exc)
            return
        self.topology = topology
        self.engine.set_topology(topology)
        self.topology_reloaded.set()
        log.warning("alerts: topology %s reloaded: %d device(s)", self.cfg.topology, len(topology.devices))

    async def tick(self) -> None:
        """Evaluate the timers once (the ticker does this every `alerts.tick_s`)."""
        async with self._lock:
            changes = self.engine.tick()
            await self.outputs.emit(changes)
            await self._control(changes)
            if not changes:
                await self.outputs.flush_influx()  # retry what the database could not take
            self.engine.commit()

    async def wait_synced(self, marker: bytes, timeout: float) -> bool:
        """True once a delivery on `sync_topic` with this payload has been processed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while marker not in self.synced:
                    self._synced_event.clear()
                    await self._synced_event.wait()
        return marker in self.synced

    async def _prepare_database(self) -> None:
        if isinstance(self.writer, InfluxV1) and self.cfg.influx.create_database:
            try:
                await self.writer.create_database()
            except RetryableWrite as exc:  # the points wait in the outputs until it is back
                log.warning("alerts: influx: %s", exc)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.alerts.tick_s)
            await self.tick()

    async def _consume(self) -> None:
        while True:
            batch = await self.subscriber.take(TAKE, None)
            async with self._lock:
                markers: list[list[Any] | bytes] = []
                for start in range(0, len(batch), SLICE):
                    if start:  # let the writer role (same event loop by default) run in between
                        await asyncio.sleep(0)
                    markers += [self._process(d) for d in batch[start : start + SLICE]]
                changes = [c for found in markers if isinstance(found, list) for c in found]
                await self.outputs.emit(changes)
                await self._control(changes)
                self.engine.commit()
            acked = await asyncio.to_thread(self.subscriber.ack, batch)
            self.stats.acked += acked
            seen = [x for x in markers if isinstance(x, bytes)]
            if seen:
                self.synced += seen
                self._synced_event.set()

    async def _control(self, changes: list[Change]) -> None:
        """Hand alert changes to the trip / reconnect policy; publish its commands and audit.
        Published before the commit: after a crash a command may go twice, never not at all."""
        if self.autocontrol is None:
            return
        self.autocontrol.on_changes(changes, self.engine.clock())
        outgoing, lines = self.autocontrol.take()
        assert self.outputs.publisher is not None
        for item in outgoing:
            if not await self.outputs.publisher.publish(item.topic, item.payload, retain=item.retain):
                log.warning("alerts: autocontrol: %s not confirmed by the broker", item.topic)
        await self.outputs.write_lines(lines)

    def _process(self, d: Delivery) -> list[Any] | bytes:
        self.stats.received += 1
        if d.topic == self.sync_topic:
            return d.payload
        if self.autocontrol is not None and self.autocontrol.handles(d.topic):
            self.autocontrol.on_control(d.topic, d.payload, self.engine.clock())
            return []
        try:
            inbound = decode(d.topic, d.payload)
        except ContractError as exc:
            self.stats.malformed += 1
            log.debug("alerts: skipped %s: %s: %s", d.topic, exc.field, exc.reason)
            return []
        return self.engine.on_message(inbound)
