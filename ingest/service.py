"""The ingest writer: MQTT deliveries -> validated messages -> line protocol -> InfluxDB -> PUBACK.

Layer: ingest service. One consumer task batches deliveries (by points and by time), writes the batch,
dead-letters what cannot be stored (malformed payloads at decode, lines the database refuses), and only
then acknowledges the batch's deliveries to the broker. A database outage stops acknowledgements, so
the broker holds the backlog (Receive Maximum bounds what we hold); a crash before the acks means the
broker redelivers and the rewrite overwrites the same points (no duplicates).

Self-metrics go to InfluxDB as measurement `ingest` and, optionally (`metrics.prometheus_port`), to a
Prometheus endpoint (ingest/prometheus.py, prometheus_client's server).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field, fields
from typing import cast

from protocols import messages as m
from protocols import topics
from protocols.errors import ContractError

from . import prometheus
from .config import IngestConfig
from .errors import RetryableWrite
from .influx import InfluxV1, InfluxWriter, make_writer
from .lineproto import point
from .schema import lines_for
from .subscriber import Delivery, Subscriber
from .topology import Topology

log = logging.getLogger("ingest")

TAKE = 1000  # deliveries taken from the subscriber at once
STILL_FAILING_S = 60.0  # while InfluxDB refuses, the warning is repeated this often
_TOPIC_CACHE = 100_000  # parsed topics kept (one per device and kind); parse_topic is pure
_topics: dict[str, topics.Topic] = {}

_STORED = (topics.TopicKind.READING, topics.TopicKind.EVENT, topics.TopicKind.HEALTH, topics.TopicKind.STATUS)
Stored = m.Reading | m.Event | m.Health | m.Status


@dataclass
class IngestStats:
    messages_in: int = 0
    readings_in: int = 0
    points_written: int = 0
    batches: int = 0
    batch_latency_ms: float = 0.0
    deadletters: int = 0
    rejected_points: int = 0
    write_retries: int = 0
    acked: int = 0
    redelivered_unacked: int = 0
    oldest_unacked_s: float = 0.0
    mqtt_connected: bool = False
    influx_ok: bool = True
    broker_dropped: int = 0


@dataclass
class Batch:
    deliveries: list[Delivery] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)  # index into deliveries, per line
    dead: list[tuple[Delivery, ContractError]] = field(default_factory=list)
    readings: int = 0

    def __len__(self) -> int:
        return len(self.deliveries)


class Ingest:
    def __init__(self, cfg: IngestConfig, topology: Topology | None = None) -> None:
        self.cfg = cfg
        self.topology = topology or Topology.empty()
        self.stats = IngestStats()
        self.subscriber = Subscriber(cfg.mqtt)
        self._batches: asyncio.Queue[Batch] = asyncio.Queue(maxsize=2)
        self.writer: InfluxWriter = make_writer(cfg.influx)
        self.instance = cfg.metrics.instance or cfg.mqtt.client_id
        self._extra_lines: list[str] = []
        self._broker_dropped_seen: int | None = None

    def reload_topology(self) -> None:
        if self.cfg.topology is None:
            return
        try:
            self.topology = Topology.load(self.cfg.topology)
        except Exception as exc:  # keep the previous topology; say why the new one was refused
            log.error("topology %s not reloaded: %s", self.cfg.topology, exc)
            return
        log.warning("topology %s reloaded: %d device(s)", self.cfg.topology, len(self.topology.devices))

    async def run(self, stop: asyncio.Event) -> None:
        await self._prepare_database(stop)
        self.subscriber.start()
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self._consume(), name="ingest:consume"),
                    tg.create_task(self._write_batches(), name="ingest:write"),
                    tg.create_task(self._metrics(), name="ingest:metrics"),
                    tg.create_task(self.subscriber.watch(), name="ingest:watch-network"),
                ]
                if (port := self.cfg.metrics.prometheus_port) is not None:
                    endpoint = prometheus.serve(port, self.metric_fields)
                    tasks.append(tg.create_task(endpoint, name="ingest:prometheus"))
                await stop.wait()
                for task in tasks:
                    task.cancel()
        finally:
            await asyncio.to_thread(self.subscriber.stop)
            await self.writer.close()

    async def _prepare_database(self, stop: asyncio.Event) -> None:
        if not isinstance(self.writer, InfluxV1) or not self.cfg.influx.create_database:
            return
        delay = self.cfg.influx.retry_min_s
        while not stop.is_set():
            try:
                if not await self.writer.create_database():
                    log.warning(
                        "influx: user %r may not CREATE DATABASE (not an admin): writing to %r as it is "
                        "(set influx.create_database: false to skip this)",
                        self.cfg.influx.username,
                        self.cfg.influx.database,
                    )
                return
            except RetryableWrite as exc:
                log.warning("influx: %s; retrying in %.1f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await stop.wait()
                delay = min(delay * 2, self.cfg.influx.retry_max_s)

    # ---- the consumer -----------------------------------------------------------------------------

    async def _consume(self) -> None:
        """Build batches (by points and by time) and hand them to the writer; decoding the next batch
        overlaps with writing the previous one."""
        loop = asyncio.get_running_loop()
        limit = self.cfg.influx.batch_points
        while True:
            batch = Batch()
            deadline: float | None = None
            while len(batch.lines) < limit:
                timeout = None if deadline is None else deadline - loop.time()
                if timeout is not None and timeout <= 0:
                    break
                deliveries = await self.subscriber.take(TAKE, timeout)
                now_ms = int(time.time() * 1000)
                for d in deliveries:
                    self._add(batch, d, now_ms)
                # take() does not suspend while the inbox holds messages: without this, a backlog is
                # decoded in one stretch of the event loop and the finished write waits behind it
                # (measured: 0.1-0.6 s stalls, batches queued behind a write that was long done)
                await asyncio.sleep(0)
                if deadline is None and batch:
                    deadline = loop.time() + self.cfg.influx.flush_interval_s
            if batch:
                await self._batches.put(batch)

    async def _write_batches(self) -> None:
        while True:
            batch = await self._batches.get()
            await self._flush(batch)

    def _add(self, batch: Batch, d: Delivery, now_ms: int | None = None) -> None:
        self.stats.messages_in += 1
        index = len(batch.deliveries)
        batch.deliveries.append(d)
        try:
            message = self._decode(d, int(time.time() * 1000) if now_ms is None else now_ms)
            lines = lines_for(message, self.topology)
        except ContractError as exc:
            batch.dead.append((d, exc))
            return
        except (ValueError, ArithmeticError) as exc:  # a value line protocol cannot carry (NaN, ...)
            batch.dead.append((d, ContractError("$", str(exc))))
            return
        if isinstance(message, m.Reading):
            batch.readings += 1 + len(message.more)
        batch.lines += lines
        batch.owners += [index] * len(lines)

    def _decode(self, d: Delivery, now_ms: int) -> Stored:
        where = _topics.get(d.topic)
        if where is None:
            where = topics.parse_topic(d.topic)  # raises for a topic outside the contract: not cached
            if len(_topics) >= _TOPIC_CACHE:
                _topics.clear()
            _topics[d.topic] = where
        if where.kind not in _STORED:
            raise ContractError("topic", f"{d.topic}: the ingest does not store {where.kind.value} messages")
        message = cast(Stored, topics.decode_payload(where, d.payload, now_ms=now_ms))
        return message

    async def _flush(self, batch: Batch) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        lines = batch.lines + self._extra_lines
        self._extra_lines = []
        rejected = await self._write(lines)
        for index, reason in rejected:
            self.stats.rejected_points += 1
            if index >= len(batch.owners):  # the self-metrics lines come after the batch's own
                log.error("influx refused a self-metrics line: %s: %s", reason, lines[index])
                continue
            owner = batch.deliveries[batch.owners[index]]
            batch.dead.append((owner, ContractError("$", f"InfluxDB refused the point: {reason}")))
        dead_ids: set[int] = set()
        for d, exc in batch.dead:
            if id(d) in dead_ids:
                continue
            dead_ids.add(id(d))
            if not await self._deadletter(d, exc):
                # the broker did not take the dead letter: do not ack the original, it comes back
                batch.deliveries = [x for x in batch.deliveries if x is not d]
        self.stats.batches += 1
        self.stats.points_written += len(lines) - len(rejected)
        self.stats.readings_in += batch.readings
        self.stats.batch_latency_ms = round((loop.time() - started) * 1000, 1)
        acked = self.subscriber.ack(batch.deliveries)  # queues one packet: no blocking I/O here
        self.stats.acked += acked
        self.stats.redelivered_unacked += len(batch.deliveries) - acked

    async def _write(self, lines: list[str]) -> list[tuple[int, str]]:
        """Write until the database has decided every line; return [(index, reason)] of the refused ones.
        A failure is said at once and again every STILL_FAILING_S while it lasts (a wrong password or
        retention policy never heals by itself)."""
        delay = self.cfg.influx.retry_min_s
        failing_since: float | None = None
        said = 0.0
        while True:
            try:
                rejected = await self.writer.write_indexed(lines)
            except RetryableWrite as exc:
                self.stats.write_retries += 1
                self.stats.influx_ok = False
                wait = (
                    exc.retry_after_s if exc.retry_after_s is not None else random.uniform(delay / 2, delay)
                )
                now = time.monotonic()
                if failing_since is None:
                    failing_since = said = now
                    log.warning("influx: %s; retrying in %.1f s", exc, wait)
                elif now - said >= STILL_FAILING_S:
                    said = now
                    log.warning(
                        "influx: still failing after %.0f s (%d points waiting, the messages stay in the "
                        "broker): %s", now - failing_since, len(lines), exc,
                    )  # fmt: skip
                else:
                    log.debug("influx: %s; retrying in %.1f s", exc, wait)
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.cfg.influx.retry_max_s)
                continue
            if not self.stats.influx_ok:
                log.warning("influx: writing again")
            self.stats.influx_ok = True
            return rejected

    async def _deadletter(self, d: Delivery, exc: ContractError) -> bool:
        self.stats.deadletters += 1
        letter = m.DeadLetter(
            schema=m.SCHEMA_VERSION,
            ts=int(time.time() * 1000),
            topic=d.topic,
            field=exc.field,
            reason=exc.reason,
            payload=d.payload[:4096].decode("utf-8", "replace"),
        )
        log.info("dead letter: %s: %s: %s", d.topic, exc.field, exc.reason)
        return await self.subscriber.publish(topics.DEADLETTER_TOPIC, m.encode(letter))

    # ---- self-metrics -----------------------------------------------------------------------------

    def metric_fields(self) -> dict[str, float | int | bool]:
        s = self.stats
        s.mqtt_connected = self.subscriber.connected.is_set()
        oldest = self.subscriber.oldest_received()
        s.oldest_unacked_s = 0.0 if oldest is None else round(time.monotonic() - oldest, 3)
        if self.subscriber.broker_dropped is not None:
            s.broker_dropped = self.subscriber.broker_dropped
        return {f.name: getattr(s, f.name) for f in fields(s)}

    async def _metrics(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.metrics.interval_s)
            values = self.metric_fields()
            dropped = self.subscriber.broker_dropped
            if dropped is not None:
                if self._broker_dropped_seen is not None and dropped > self._broker_dropped_seen:
                    log.error(
                        "broker dropped %d message(s) since the last check ($SYS/broker/publish/messages/"
                        "dropped): raise max_queued_bytes or add writers",
                        dropped - self._broker_dropped_seen,
                    )
                self._broker_dropped_seen = dropped
            self._extra_lines.append(
                point("ingest", {"instance": self.instance}, values, int(time.time() * 1000))
            )
            if not self.subscriber.backlog and self._batches.empty():  # idle: still record the metrics
                with contextlib.suppress(RetryableWrite):
                    await self.writer.write(self._extra_lines)
                    self._extra_lines = []
