"""The MQTT side of the ingest: a persistent MQTT 5 session with manual acknowledgements.

Layer: ingest I/O. paho-mqtt 2 runs its network loop on its own thread (it reconnects by itself);
messages are handed to the event loop through a queue. `manual_ack=True` means the broker gets our
PUBACK only when the service calls `ack` — after InfluxDB accepted the points — and the CONNECT
property Receive Maximum = `max_unacked` makes the broker stop sending once that many are
unacknowledged, so a database outage backs up in the broker, not in our memory.

A PUBACK belongs to one connection: messages received before a reconnect are never acknowledged
on the next connection (their packet ids may be reused); the broker redelivers them instead and the
write is idempotent. (aiomqtt has no manual acknowledgement, hence paho directly here.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from .config import MqttSection

log = logging.getLogger(__name__)

SYS_DROPPED = "$SYS/broker/publish/messages/dropped"


@dataclass(frozen=True, slots=True)
class Delivery:
    generation: int  # connection the message came on
    mid: int
    qos: int
    topic: str
    payload: bytes
    received: float  # time.monotonic() when paho handed it over


class Subscriber:
    def __init__(self, cfg: MqttSection) -> None:
        self.cfg = cfg
        # paho's thread appends; the event loop is woken once per burst, not once per message
        self._inbox: collections.deque[Delivery] = collections.deque()
        self._arrived = asyncio.Event()
        self._wake_pending = False
        self._wake_lock = threading.Lock()
        self.generation = 0
        self.connected = threading.Event()
        self.broker_dropped: int | None = None
        self.acks = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=cfg.client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(1, 30)
        if cfg.username is not None:
            self._client.username_pw_set(cfg.username, cfg.secret())
        if cfg.tls_ca_file is not None:
            self._client.tls_set_context(ssl.create_default_context(cafile=str(cfg.tls_ca_file)))

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.cfg.session_expiry_s
        props.ReceiveMaximum = self.cfg.max_unacked
        self._client.connect_async(
            self.cfg.host, self.cfg.port, self.cfg.keepalive_s, clean_start=False, properties=props
        )
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def ack(self, deliveries: list[Delivery]) -> int:
        """PUBACK what came on the current connection; return how many were acknowledged."""
        n = 0
        for d in deliveries:
            if d.qos and d.generation == self.generation and self.connected.is_set():
                self._client.ack(d.mid, d.qos)
                n += 1
        self.acks += n
        return n

    async def publish(self, topic: str, payload: bytes, timeout: float = 10.0) -> bool:
        """QoS 1 publish (dead letters); True once the broker acknowledged it."""
        info = self._client.publish(topic, payload, qos=1)
        try:
            await asyncio.to_thread(info.wait_for_publish, timeout)
        except (ValueError, RuntimeError):
            return False
        return info.is_published()

    # ---- paho thread ------------------------------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object
    ) -> None:
        if getattr(rc, "is_failure", False):
            log.warning("mqtt: %s:%d refused the connection: %s", self.cfg.host, self.cfg.port, rc)
            return
        self.generation += 1
        self.connected.set()
        log.info(
            "mqtt: connected to %s:%d (session present: %s)",
            self.cfg.host,
            self.cfg.port,
            getattr(flags, "session_present", "?"),
        )
        client.subscribe([(f, SubscribeOptions(qos=1)) for f in self.cfg.filters()])
        client.subscribe(SYS_DROPPED, options=SubscribeOptions(qos=0))

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        # paho retries on its own thread; without this a refused TLS handshake would be silent
        log.warning(
            "mqtt: cannot connect to %s:%d (network or TLS: does the CA file hold the CA that signed the "
            "broker's certificate?); retrying",
            self.cfg.host,
            self.cfg.port,
        )

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object
    ) -> None:
        if self.connected.is_set():
            log.warning("mqtt: disconnected from %s:%d: %s", self.cfg.host, self.cfg.port, rc)
        self.connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == SYS_DROPPED:
            with contextlib.suppress(ValueError):
                self.broker_dropped = int(msg.payload)
            return
        assert self._loop is not None
        self._inbox.append(
            Delivery(self.generation, msg.mid, msg.qos, msg.topic, bytes(msg.payload), time.monotonic())
        )
        with self._wake_lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        with self._wake_lock:
            self._wake_pending = False
        self._arrived.set()

    # ---- event loop side --------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        return len(self._inbox)

    def oldest_received(self) -> float | None:
        try:
            received: float = self._inbox[0].received
            return received
        except IndexError:
            return None

    async def take(self, limit: int, timeout: float | None) -> list[Delivery]:
        """Up to `limit` deliveries, waiting up to `timeout` (None: forever) for the first one."""
        if not self._inbox:
            self._arrived.clear()
            if not self._inbox:
                if timeout is None:
                    await self._arrived.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout):
                            await self._arrived.wait()
        out: list[Delivery] = []
        inbox = self._inbox
        while inbox and len(out) < limit:
            out.append(inbox.popleft())
        return out
