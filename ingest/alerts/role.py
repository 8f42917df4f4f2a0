"""`gridedge ingest run --role alerts`: MQTT deliveries -> decoded Inbound -> engine -> outputs, plus a
timer that ticks the engine (silence is a signal).

Layer: ingest alert service. Its own MQTT session (client id `mqtt.client_id + alerts.client_id_suffix`,
QoS 1, persistent, manual acknowledgements through ingest.subscriber): a batch of deliveries is
acknowledged only after the broker acknowledged the alerts it produced and the engine saved the state
behind them (ingest/alerts/commits.py), so a crash loses nothing (the broker redelivers). The engine
does not wait for those acknowledgements: it evaluates the next batches meanwhile, within the
publisher's window and the committer's depth. Payloads are decoded with the same contract as the
writer; a malformed one is counted and skipped (the writer dead-letters it). Must not: write device
data.

Auto-control (off by default) is the engine's `Control`: built here with the cost-control ledger of
the rules, it enters the engine nowhere else; its commands and audit go out through the same window.

SIGHUP (installed by the CLI) calls `reload_topology`: the rules see new meters, areas and halls from
the next message or tick on; their memory and the current alerts are kept.

Partitioned (`alerts.partition`, ingest/alerts/partition.py): the engine owns the gateways that hash to
its index; its client id and state file get `-p{i}of{n}`; a delivery about another partition's gateway
or account is dropped before it is decoded (counted: `partition.foreign_messages`), and the rules see
only the partition's share of the topology.

The clock is injectable (a callable returning UNIX seconds) so tests run in compressed time; `tick()`
evaluates the timers once and returns when its outputs are done. Tests observe the role by
subclassing it (`_filters`, `_process`, `_finished`; tests/alerts/conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from protocols import topics
from protocols.errors import ContractError

from .. import prometheus
from ..config import IngestConfig, MqttSection
from ..errors import RetryableWrite
from ..influx import InfluxV1, make_writer
from ..subscriber import Delivery, Subscriber
from ..topology import Topology
from .actions import ACTION_PREFIX
from .actions import decode as decode_action
from .autocontrol import APPROVE, REJECT, AutoControl, decode_decision, ledger_of, load_key
from .autocontrol import FILTERS as AUTOCONTROL_FILTERS
from .commits import Committer
from .costcontrol.ledger import Ledger
from .engine import Change, Engine
from .handover import handover
from .model import Inbound, Rule, RuleSet
from .outputs import Outputs, Publisher
from .partition import Partition, PartitionedEngine, copy_state
from .rules import rulesets
from .store import Store
from .work import WorkDesk

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
    """A delivery as the engine sees it; raise ContractError for anything the contract refuses."""
    if topic.startswith(ACTION_PREFIX):
        return decode_action(topic, payload)  # an operator's action on an alert (ingest/alerts/work.py)
    if topic.startswith((APPROVE, REJECT)):
        try:
            return decode_decision(topic, payload)
        except ValueError as exc:
            raise ContractError("$", str(exc)) from None
    where = _parse_topic(topic)
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
    message = topics.decode_message(where, payload)
    return Inbound(topic, where.gw, where.dev, message)


_TOPIC_CACHE = 100_000  # parsed topics kept (one per device and kind), as the writer's (ingest/service.py)
_topics: dict[str, topics.Topic] = {}


def _parse_topic(topic: str) -> topics.Topic:
    """`topics.parse_topic`, remembered (pure; parsing was ~4 us of the engine's ~45 per reading)."""
    where = _topics.get(topic)
    if where is None:
        where = topics.parse_topic(topic)  # raises for a topic outside the contract: not cached
        if len(_topics) >= _TOPIC_CACHE:
            _topics.clear()
        _topics[topic] = where
    return where


def alert_filters(cfg: IngestConfig, sets: Iterable[RuleSet]) -> list[str]:
    """What the role subscribes to: the contract topics, what the rule sets ask for, autocontrol's."""
    filters = list(cfg.mqtt.topics)
    for rs in sets:
        filters += [t for t in rs.topics if t not in filters]
    if cfg.alerts.autocontrol.enabled:
        filters += [t for t in AUTOCONTROL_FILTERS if t not in filters]
    return filters + [t for t in topics.ACTION_FILTERS if t not in filters]  # operators' actions


def session_config(cfg: IngestConfig, filters: list[str]) -> MqttSection:
    """The role's MQTT session: client id `mqtt.client_id + alerts.client_id_suffix` (+ `-p{i}of{n}`
    when partitioned), never a shared subscription: stateful rules must see every message of their
    gateways (a partition takes them all and ignores the other partitions' before decoding)."""
    part = cfg.alerts.partition
    client_id = cfg.mqtt.client_id + cfg.alerts.client_id_suffix + (part.suffix if part else "")
    return cfg.mqtt.model_copy(update={"client_id": client_id, "topics": filters, "shared_group": None})


async def open_session(
    cfg: IngestConfig, sets: Iterable[RuleSet] | None = None, timeout: float = 30.0
) -> None:
    """Create an alert engine's persistent session on the broker (subscribe, then disconnect) without
    running it: the broker keeps what arrives for it until the engine starts. Step 1 of a repartition
    (docs/production.md), so that nothing published during the switch is lost."""
    subscriber = Subscriber(session_config(cfg, alert_filters(cfg, rulesets() if sets is None else sets)))
    subscriber.start()
    try:
        if not await asyncio.to_thread(subscriber.subscribed.wait, timeout):
            raise TimeoutError(f"alerts: no subscription on {cfg.mqtt.host}:{cfg.mqtt.port} in {timeout} s")
    finally:
        await asyncio.to_thread(subscriber.stop)


class AlertsRole:
    def __init__(
        self,
        cfg: IngestConfig,
        topology: Topology | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sets: Iterable[RuleSet] | None = None,
    ) -> None:
        section = cfg.alerts
        self.cfg = cfg
        self.sets = list(rulesets() if sets is None else sets)
        self.topology = topology or Topology.empty()
        part = section.partition
        self.partition = None if part is None else Partition(part, self.topology)
        mqtt_cfg = session_config(cfg, self._filters())
        client_id = mqtt_cfg.client_id
        self.subscriber = Subscriber(mqtt_cfg)
        self.store = Store(self._state_path(), section.history)
        self.engine = self._build_engine(clock)
        self.autocontrol = self.engine.control if isinstance(self.engine.control, AutoControl) else None
        self.writer = make_writer(cfg.influx)
        publisher = Publisher(cfg.mqtt, client_id + "-pub")
        self.outputs = Outputs(publisher, self.writer, section.webhook, section.alertmanager)
        self.committer = Committer(self.engine, self.outputs, self._acknowledge)
        self.work = WorkDesk(self.engine, partitioned=self.partition is not None)  # operators' actions
        self.stats = RoleStats()
        self._lock = asyncio.Lock()

    def _state_path(self) -> Path:
        """The state file: a partition's own, handed over from `inherit_from` the first time (its
        ledger, when it has its own, copied from `inherit_ledger_from` before)."""
        section = self.cfg.alerts
        part = section.partition
        if part is None or self.partition is None:
            return section.state_path
        path = part.own_state_path(section.state_path)
        ledger, old_ledger = self._ledger_path(), part.inherited_ledger(section.state_path)
        if ledger is not None and old_ledger is not None and not ledger.exists():
            copy_state(old_ledger, ledger)
            log.warning("alerts: partition %s: ledger %s copied from %s", part.suffix[1:], ledger, old_ledger)
        sources = part.inherited_states(section.state_path)
        if sources and not path.exists():
            accounts = Ledger(ledger) if ledger is not None else None
            try:
                account_of = accounts.account if accounts is not None else (lambda _: None)
                handed = handover(sources, path, self.partition, self.topology, account_of=account_of)
            finally:
                if accounts is not None:
                    accounts.close()
            log.warning(
                "alerts: partition %s takes over %d alert(s), %d history row(s) and %d rule part(s) "
                "from %s", part.suffix[1:], handed.tracks, handed.history, handed.entries,
                ", ".join(handed.sources),
            )  # fmt: skip
        return path

    def _ledger_path(self) -> Path | None:
        """The cost-control ledger, as the rule set opens it (relative: from the state file's folder)."""
        sets = [rs for rs in self.sets if rs.name == "costcontrol"]
        if not sets:
            return None
        ledger: Path = self.cfg.alerts.rule_configs(sets)["costcontrol"].ledger_path
        return self.cfg.alerts.state_path.parent / ledger

    def _build_engine(self, clock: Callable[[], float]) -> Engine:
        """The engine; a partition's sees its share of the topology and only its own subjects."""
        section = self.cfg.alerts
        control = self._autocontrol if section.autocontrol.enabled else None
        if self.partition is None:
            return Engine.build(
                section, self.topology, self.sets, clock=clock, store=self.store, control=control
            )
        share = self.partition.share(self.topology)
        engine = PartitionedEngine.build(
            section, share, self.sets, clock=clock, store=self.store, control=control
        )
        assert isinstance(engine, PartitionedEngine)  # build() makes its class
        self.partition.account_of = ledger_of([rule for _, rule in engine.rules])
        forgotten = engine.own(self.partition)
        log.info(
            "alerts: partition %d of %d: %d of %d gateway(s), %d device(s)%s",
            self.partition.index, self.partition.count, len(share.sites), len(self.topology.sites),
            len(share.devices), f"; {forgotten} alert(s) of other partitions forgotten" if forgotten else "",
        )  # fmt: skip
        return engine

    def _filters(self) -> list[str]:
        return alert_filters(self.cfg, self.sets)

    def _autocontrol(self, rules: Sequence[Rule]) -> AutoControl:
        """The trip / reconnect policy, reading keep-power and meters from the cost-control ledger."""
        section = self.cfg.alerts
        key = load_key(section.autocontrol, section.state_path.parent)
        return AutoControl(section.autocontrol, key, account=ledger_of(rules))

    async def run(self, stop: asyncio.Event) -> None:
        await self._prepare_database()
        assert self.outputs.publisher is not None
        self.outputs.publisher.start()
        self.subscriber.start()
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self._consume(), name="alerts:consume"),
                    tg.create_task(self.committer.run(), name="alerts:commit"),
                    tg.create_task(self.subscriber.watch(), name="alerts:watch-network"),
                    tg.create_task(self._ticker(), name="alerts:tick"),
                    tg.create_task(self.outputs.run_webhook(), name="alerts:webhook"),
                    tg.create_task(self.outputs.run_alertmanager(self.engine.alerts()), name="alerts:am"),
                ]
                if (port := self.cfg.alerts.prometheus_port) is not None:
                    endpoint = prometheus.serve(port, self.outputs.metric_fields)
                    tasks.append(tg.create_task(endpoint, name="alerts:prometheus"))
                await stop.wait()
                for task in tasks:
                    task.cancel()
        finally:
            if self.partition is not None:
                log.info(
                    "alerts: partition %d of %d: %d delivery(ies) of other partitions ignored, %d signal(s) "
                    "about their subjects dropped", self.partition.index, self.partition.count,
                    self.partition.foreign_messages, self.partition.foreign_signals,
                )  # fmt: skip
            try:
                await self.committer.drain()
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
        does not load, or (partitioned) would move a gateway to another partition, keeps the previous
        topology."""
        if self.cfg.topology is None:
            return
        try:
            topology = Topology.load(self.cfg.topology)
        except Exception as exc:
            log.error("alerts: topology %s not reloaded: %s", self.cfg.topology, exc)
            return
        if self.partition is not None:
            # every engine refuses the same file, so none takes a gateway whose alerts another holds
            moved = self.partition.moved_by(topology)
            if moved:
                log.error(
                    "alerts: topology %s not reloaded: it moves gateway(s) %s to another partition; "
                    "repartition (docs/production.md) to use it",
                    self.cfg.topology, ", ".join(moved[:20]),
                )  # fmt: skip
                return
            self.partition.set_topology(topology)
        self.topology = topology
        self.engine.set_topology(self.partition.share(topology) if self.partition else topology)
        log.warning("alerts: topology %s reloaded: %d device(s)", self.cfg.topology, len(topology.devices))

    async def tick(self) -> None:
        """Evaluate the timers once (the ticker does this every `alerts.tick_s`); returns once the
        changes are confirmed and saved."""
        async with self._lock:
            step = await self._step(self.engine.tick(), [])
        await step

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
                changes: list[Change] = []
                for start in range(0, len(batch), SLICE):
                    # let the writer role (same event loop by default) run between two slices, also
                    # between two batches: the acknowledgement no longer suspends this task
                    await asyncio.sleep(0)
                    for d in batch[start : start + SLICE]:
                        changes += self._process(d)
                await self._step(changes, batch)

    async def _step(self, changes: list[Change], batch: list[Delivery]) -> asyncio.Future[None]:
        """Submit the changes and the control's messages (in order, within the window) and queue the
        state they leave for the committer. Commands go out before the state is saved: after a crash a
        command may go twice, never not at all."""
        sent = await self.outputs.emit(changes)
        if self.autocontrol is not None:
            outgoing, lines = self.autocontrol.take()
            for item in outgoing:
                sent += await self.outputs.send(item.topic, item.payload, retain=item.retain)
            self.outputs.write_later(lines)
        self.outputs.write_later(self.work.take_lines())
        for answer in self.work.take_results():
            sent += await self.outputs.send(topics.ACTION_RESULT_TOPIC, answer)
        step = await self.committer.put(sent, self.engine.prepare(), batch)
        return step.done

    async def _acknowledge(self, batch: list[Delivery]) -> int:
        acked = await asyncio.to_thread(self.subscriber.ack, batch)
        self.stats.acked += acked
        self._finished(batch)
        return acked

    def _finished(self, batch: list[Delivery]) -> None:
        """A batch is evaluated, its alerts confirmed, their state saved and it is acknowledged."""

    def _process(self, d: Delivery) -> list[Change]:
        self.stats.received += 1
        if self.partition is not None and not self.partition.wants(d.topic, d.payload):
            return []  # another partition's (counted there: partition.foreign_messages)
        try:
            inbound = decode(d.topic, d.payload)
        except ContractError as exc:
            self.stats.malformed += 1
            log.debug("alerts: skipped %s: %s: %s", d.topic, exc.field, exc.reason)
            return []
        if inbound.gw:  # a gateway's message (an operator's action names none): ~0.2 us a reading saved
            return self.engine.on_message(inbound)
        # an operator's action changes its alert's work state first; then the rules see it too
        return self.work.act(inbound) + self.engine.on_message(inbound)
