"""MQTT publisher: drains the spool to the broker, QoS 1, at least once, in order per device.

Layer: gateway core. One `aiomqtt.Client` per connection attempt (MQTT 5, persistent session, retained
Last Will `state=offline` on `.../status`). On every connect it publishes the retained birth status
and the latest retained health of every device, then pumps the spool oldest-first with a bounded
window of unacknowledged publishes. A record is deleted from the spool only once its PUBACK arrived
(acks are written in batches every 100 ms). On any MQTT error the session ends, nothing is deleted
that was not acknowledged, and the next connection resumes from the oldest record: readings are
published at least once, and the per-gateway `seq` lets a consumer drop duplicates.

Replay does not starve live data: consecutive samples of one device found in a spool chunk go out
as one reading (`Reading.more`, up to `batch_samples`), so a backlog of an hour at one-minute polls is
one message per device, and the newest readings are at most one chunk behind. Order per device is
preserved because the spool is read in `seq` order. The spool holds each sample encoded once; a
reading is those bytes in an envelope (`outbox.reading_payload`), nothing is decoded and re-encoded.

Must not: poll devices, or build contract messages other than the status (readings: `outbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocols import messages as m
from protocols import topics

from . import outbox
from .config import MqttSection
from .spool import SAMPLE, Record, Spool

log = logging.getLogger(__name__)

CHUNK: Final = 1000  # spool records fetched at once
ACK_FLUSH_S: Final = 0.1
# aiomqtt warns about every publish beyond ten awaiting its PUBACK; our window is deliberate
_client_log = logging.getLogger("gateway.mqtt.client")
_client_log.setLevel(logging.ERROR)


@dataclass
class PublisherStats:
    connected: bool = False
    connects: int = 0
    connect_failures: int = 0
    messages: int = 0  # PUBACKed publishes of spooled records
    records: int = 0  # spooled records those carried
    last_error: str = ""
    last_ack_monotonic: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class StatusSource:
    """What the birth/periodic status reports besides the spool (supplied by the app)."""

    version: str
    buses: Callable[[], list[m.BusStatus]]
    started: float = field(default_factory=time.monotonic)
    config_hash: str = ""  # of the config file the gateway runs (gateway.config_doc)


class Publisher:
    def __init__(
        self,
        gateway_id: str,
        cfg: MqttSection,
        spool: Spool,
        status: StatusSource,
        *,
        status_interval_s: float = 60.0,
    ) -> None:
        self.gw = gateway_id
        self.cfg = cfg
        self.spool = spool
        self.status_source = status
        self.status_interval_s = status_interval_s
        self.stats = PublisherStats()
        self._retained: dict[str, bytes] = {}
        self._retained_dirty: asyncio.Queue[str] = asyncio.Queue()
        self._acks: list[int] = []
        self._has_acks = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._drain_deadline = 0.0
        self._acked = asyncio.Event()
        # set by the app: called (without awaiting) for every message on .../+/cmd
        self.on_command: Callable[[str, bytes], None] | None = None
        self._rng = random.Random()

    # ---- API for the app ------------------------------------------------------------------------

    def set_retained(self, topic: str, payload: bytes) -> None:
        """Latest value of a retained topic (device health). Published now if connected, and again on
        every reconnect."""
        self._retained[topic] = payload
        self._retained_dirty.put_nowait(topic)

    async def stop(self, drain_s: float) -> None:
        """Publish what the spool holds for up to `drain_s`, mark the gateway offline, disconnect."""
        self._drain_deadline = time.monotonic() + drain_s
        self._stopping.set()
        await self._stopped.wait()

    async def run(self) -> None:
        """Connect, publish, reconnect with jittered exponential back-off; returns after `stop`."""
        delay = self.cfg.reconnect_min_s
        # one client object for every reconnection: paho acknowledges a command when it arrives, and the
        # queue it waits in belongs to the client, so a fresh client per connection would drop commands
        # received but not yet handled when the connection broke
        client = self._client()
        try:
            while not self._stopping.is_set():
                try:
                    async with client:
                        self.stats.connected, delay = True, self.cfg.reconnect_min_s
                        self.stats.connects += 1
                        log.info("mqtt: connected to %s:%d", self.cfg.host, self.cfg.port)
                        await self._session(client)
                    return
                except* aiomqtt.MqttError as group:
                    exc = group.exceptions[0]
                    self.stats.connect_failures += 1
                    first = self.stats.last_error == ""
                    self.stats.last_error = str(exc)
                    (log.warning if (first or self.stats.connected) and not _normal(exc) else log.info)(
                        "mqtt: %s:%d: %s; retrying in <= %.0f s", self.cfg.host, self.cfg.port, exc, delay
                    )
                finally:
                    self.stats.connected = False
                    await self._flush_acks()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._rng.uniform(delay / 2, delay)):
                        await self._stopping.wait()
                delay = min(delay * 2, self.cfg.reconnect_max_s)
        finally:
            self._stopped.set()

    # ---- one connection -------------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        cfg = self.cfg
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = cfg.session_expiry_s
        tls_context = None
        if cfg.tls is not None:
            tls_context = ssl.create_default_context(cafile=str(cfg.tls.ca_file) if cfg.tls.ca_file else None)
            if cfg.tls.cert_file is not None:
                keyfile = str(cfg.tls.key_file) if cfg.tls.key_file else None
                tls_context.load_cert_chain(str(cfg.tls.cert_file), keyfile)
            if cfg.tls.insecure:
                tls_context.check_hostname = False
        will = aiomqtt.Will(
            topics.status_topic(self.gw), m.encode(self._status("offline", seq=0)), qos=1, retain=True
        )
        return aiomqtt.Client(
            cfg.host,
            cfg.port,
            identifier=cfg.identifier(self.gw),
            username=cfg.username,
            password=cfg.secret(),
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            keepalive=cfg.keepalive_s,
            will=will,
            tls_context=tls_context,
            tls_insecure=cfg.tls.insecure if cfg.tls else None,
            max_inflight_messages=cfg.max_inflight,
            logger=_client_log,
            timeout=cfg.publish_timeout_s,
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        async with asyncio.TaskGroup() as tg:
            # aiomqtt reports a lost connection only to its message iterator, through a future nobody
            # else reads: it iterates from the first packet to the last (the offline status on stop),
            # or a connection lost meanwhile leaves an error asyncio reports as never retrieved
            watch = tg.create_task(self._commands(client), name="mqtt:commands")
            await self._publish_status(client, "online")
            for topic in list(self._retained):
                await self._publish_retained(client, topic)
            if self.on_command is not None:
                await client.subscribe(topics.cmd_topic(self.gw, "+"), qos=1)
            tasks = [
                tg.create_task(self._pump(client), name="mqtt:pump"),
                tg.create_task(self._retained_pump(client), name="mqtt:retained"),
                tg.create_task(self._status_ticker(client), name="mqtt:status"),
                tg.create_task(self._ack_flusher(), name="mqtt:acks"),
            ]
            await self._stopping.wait()
            await self._drain()
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            await self._flush_acks()
            await self._publish_status(client, "offline")
            watch.cancel()
        log.info("mqtt: stopped, %d record(s) left in the spool", self.spool.stats.depth)

    async def _drain(self) -> None:
        while self.spool.stats.depth > 0 and (left := self._drain_deadline - time.monotonic()) > 0:
            self._acked.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._acked.wait()

    async def _pump(self, client: aiomqtt.Client) -> None:
        window = asyncio.Semaphore(self.cfg.max_inflight)
        cursor = 0
        async with asyncio.TaskGroup() as tg:
            while True:
                records = await self.spool.pending(CHUNK, after=cursor)
                if not records:
                    await self.spool.wait_changed(1.0)
                    continue
                cursor = records[-1].seq
                for topic, payload, seqs in self._messages(records):
                    await window.acquire()
                    tg.create_task(
                        self._publish_record(client, topic, payload, seqs, window), name=f"mqtt:pub:{seqs[0]}"
                    )

    async def _publish_record(
        self, client: aiomqtt.Client, topic: str, payload: bytes, seqs: list[int], window: asyncio.Semaphore
    ) -> None:
        try:
            await client.publish(topic, payload, qos=self.cfg.qos)
        finally:
            window.release()
        self._acks += seqs
        self._has_acks.set()
        self.stats.messages += 1
        self.stats.records += len(seqs)
        self.stats.last_ack_monotonic = time.monotonic()

    def _messages(self, records: list[Record]) -> Iterator[tuple[str, bytes, list[int]]]:
        """Finished messages (events, results) one by one; the samples of each device in this chunk
        wrapped (in seq order) into readings of up to `batch_samples`. Messages go out in the order of
        their first seq."""
        runs: dict[str, list[Record]] = {}
        out: list[list[Record]] = []
        for rec in records:
            if rec.kind != SAMPLE:
                out.append([rec])
                continue
            run = runs.get(rec.topic)
            if run is None or len(run) >= self.cfg.batch_samples:
                run = runs[rec.topic] = []
                out.append(run)
            run.append(rec)
        for group in out:
            yield self._message(group)

    @staticmethod
    def _message(group: list[Record]) -> tuple[str, bytes, list[int]]:
        first = group[0]
        seqs = [rec.seq for rec in group]
        if first.kind != SAMPLE:
            return first.topic, first.payload, seqs
        # the topic the sample was spooled under names the gateway (and device) it was acquired by
        where = topics.parse_topic(first.topic)
        payload = outbox.reading_payload(where.gw, where.dev, first.protocol, [r.payload for r in group])
        return first.topic, payload, seqs

    async def _commands(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if self.on_command is not None and isinstance(message.payload, bytes | bytearray):
                self.on_command(str(message.topic), bytes(message.payload))

    async def _retained_pump(self, client: aiomqtt.Client) -> None:
        while True:
            topic = await self._retained_dirty.get()
            await self._publish_retained(client, topic)

    async def _publish_retained(self, client: aiomqtt.Client, topic: str) -> None:
        await client.publish(topic, self._retained[topic], qos=1, retain=True)

    async def _status_ticker(self, client: aiomqtt.Client) -> None:
        while True:
            await asyncio.sleep(self.status_interval_s)
            await self._publish_status(client, "online")

    async def _ack_flusher(self) -> None:
        # asleep while nothing is acknowledged (no timer ticking 10 times a second on an idle gateway);
        # once an ack arrives, wait ACK_FLUSH_S so that the acks of that window go in one commit
        while True:
            await self._has_acks.wait()
            await asyncio.sleep(ACK_FLUSH_S)
            await self._flush_acks()

    async def _flush_acks(self) -> None:
        self._has_acks.clear()
        if self._acks:
            acks, self._acks = self._acks, []
            await self.spool.ack(acks)
            self._acked.set()

    # ---- status ---------------------------------------------------------------------------------

    async def _publish_status(self, client: aiomqtt.Client, state: str) -> None:
        status = self._status(state, seq=await self.spool.allocate_seq())
        await client.publish(topics.status_topic(self.gw), m.encode(status), qos=1, retain=True)

    def _status(self, state: str, *, seq: int) -> m.Status:
        spool = self.spool.stats
        lag = time.monotonic() - self.stats.last_ack_monotonic if spool.depth else 0.0
        return m.Status(
            schema=m.SCHEMA_VERSION,
            gw=self.gw,
            seq=seq,
            ts=int(time.time() * 1000),
            state="online" if state == "online" else "offline",
            version=self.status_source.version,
            buses=self.status_source.buses(),
            spool_depth=spool.depth,
            spool_dropped=spool.dropped,
            uptime_s=round(time.monotonic() - self.status_source.started, 1),
            publish_lag_s=round(lag, 1),
            config_hash=self.status_source.config_hash,
        )


def _normal(exc: Exception) -> bool:
    """A disconnection with reason 0 ("Normal disconnection": the broker closed the session in order,
    e.g. on a restart) is reported at INFO; the reconnect that follows is the same either way."""
    rc = getattr(exc, "rc", None)
    if rc is None:
        return False
    return not rc.is_failure if hasattr(rc, "is_failure") else rc == 0
