"""The MQTT side of the ingest: a persistent MQTT 5 session with manual acknowledgements.

Layer: ingest I/O. paho-mqtt 2 runs its network loop on its own thread (it reconnects by itself);
messages are handed to the event loop through a queue. `manual_ack=True` means the broker gets our
PUBACK only when the service calls `ack` — after InfluxDB accepted the points — and the CONNECT
property Receive Maximum = `max_unacked` makes the broker stop sending once that many are
unacknowledged, so a database outage backs up in the broker, not in our memory.

A PUBACK belongs to one connection: messages received before a reconnect are never acknowledged
on the next connection (their packet ids may be reused); the broker redelivers them instead and the
write is idempotent. (aiomqtt has no manual acknowledgement, hence paho directly here.)

Throughput (bench/ingest_throughput.py): paho reads every packet with three or more `recv` calls (one
byte of command, the length byte by byte, the body), and every call releases the GIL; with the event
loop busy decoding on the other thread each re-acquisition waits for the switch interval, so the
network thread starved (a GIL convoy). `_BufferedClient` reads the socket in 64 KiB chunks and parses
every complete packet in the chunk before it returns to `select`; a QoS 0/1 PUBLISH is parsed here
into a `Delivery` (paho builds a Properties object and an MQTTMessage per message, several times
slower). Acknowledgements are queued as one packet of concatenated PUBACKs per batch (one wake-up of
the network thread and one `send`, not one of each per message), in the order the PUBLISHes arrived
(MQTT-4.6.0-2). This relies on three internals of paho-mqtt 2 (`_sock_recv`, `_handle_publish`,
`_packet_queue`; pinned <3 in pyproject); without them the client falls back to paho's own path.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import struct
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from .config import MqttSection

log = logging.getLogger(__name__)

SYS_DROPPED = "$SYS/broker/publish/messages/dropped"
_READ_CHUNK = 65536
_PUBACK = struct.Struct("!BBH")  # PUBACK, remaining length 2, packet id (MQTT 5: reason 0 omitted)


class _BufferedClient(mqtt.Client):
    """paho's client reading its socket in chunks and handing QoS 0/1 PUBLISHes straight to `sink`
    (see the module docstring)."""

    _rbuf: bytes = b""
    _rpos: int = 0
    _rsock: object = None
    sink: Callable[[str, int, int, bytes], None] | None = None

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rsock is not self._sock:  # a new connection: nothing of the old one is valid
            self._rbuf, self._rpos, self._rsock = b"", 0, self._sock
        if self._rpos >= len(self._rbuf):
            chunk = super()._sock_recv(_READ_CHUNK)  # raises BlockingIOError when nothing is there
            if not chunk:
                return chunk  # EOF
            self._rbuf, self._rpos = chunk, 0
        start = self._rpos
        end = min(start + bufsize, len(self._rbuf))
        self._rpos = end
        if start == 0 and end == len(self._rbuf):
            return self._rbuf
        return self._rbuf[start:end]

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        # select() sees only the socket: handle every packet already buffered before going back to it
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None and self._buffered():
            rc = super().loop_read(max_packets)
        return rc

    def _buffered(self) -> bool:
        return self._rsock is self._sock and self._rpos < len(self._rbuf)

    def _handle_publish(self) -> MQTTErrorCode:
        # MQTT 5 PUBLISH: topic (u16 length + UTF-8), packet id if QoS > 0, properties (varint length),
        # payload. We set no Topic Alias Maximum, so the broker sends full topics and no alias; the
        # properties are not used here. paho's own path builds a Properties object and an MQTTMessage
        # per message and is several times slower; QoS 2 and anything unusual still go through it.
        sink = self.sink
        packet = self._in_packet["packet"]
        qos = (self._in_packet["command"] & 0x06) >> 1
        if sink is None or qos == 2 or self._protocol != mqtt.MQTTv5:
            return super()._handle_publish()
        try:
            end = 2 + ((packet[0] << 8) | packet[1])
            topic = packet[2:end].decode("utf-8")
            mid = 0
            if qos:
                mid = (packet[end] << 8) | packet[end + 1]
                end += 2
            length, shift = 0, 0
            while True:
                byte = packet[end]
                end += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            end += length
        except (IndexError, UnicodeDecodeError):
            return super()._handle_publish()  # paho reports the malformed packet its own way
        if end > len(packet) or not topic:  # an empty topic would be a Topic Alias: paho's path
            return super()._handle_publish()
        sink(topic, mid, qos, bytes(packet[end:]))
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: list[int]) -> None:
        """Queue the PUBACKs of `mids`, in order, as one write."""
        if not mids:
            return
        packet = b"".join([_PUBACK.pack(0x40, 2, mid) for mid in mids])
        self._packet_queue(0x40, packet, 0, 0)


_FAST_PATH = all(hasattr(mqtt.Client, name) for name in ("_sock_recv", "_packet_queue", "_handle_publish"))


class Delivery(NamedTuple):  # a tuple: built once per message on the network thread, cheaply
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
        cls = _BufferedClient if _FAST_PATH else mqtt.Client
        self._client = cls(
            CallbackAPIVersion.VERSION2, client_id=cfg.client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_message = self._on_message
        if isinstance(self._client, _BufferedClient):
            self._client.sink = self._deliver
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
        if not self.connected.is_set():
            return 0
        generation = self.generation
        mids = [d.mid for d in deliveries if d.qos == 1 and d.generation == generation]
        if isinstance(self._client, _BufferedClient):
            self._client.ack_many(mids)
        else:
            for mid in mids:
                self._client.ack(mid, 1)
        self.acks += len(mids)
        return len(mids)

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
        self._deliver(msg.topic, msg.mid, msg.qos, bytes(msg.payload))

    def _deliver(self, topic: str, mid: int, qos: int, payload: bytes) -> None:
        if topic == SYS_DROPPED:
            with contextlib.suppress(ValueError):
                self.broker_dropped = int(payload)
            return
        assert self._loop is not None
        self._inbox.append(Delivery(self.generation, mid, qos, topic, payload, time.monotonic()))
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
