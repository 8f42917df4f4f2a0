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
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from .config import MqttSection
from .errors import SubscribeError

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
    sink: Callable[[list[tuple[str, int, int, bytes]]], None] | None = None  # (topic, mid, qos, payload)s

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
        # select() sees only the socket: read a chunk, hand its whole QoS 0/1 PUBLISHes over without
        # paho's packet state machine (`_take_publishes`), and let paho read anything else (another
        # packet type, a PUBLISH cut by the chunk's end, a closed or failed socket) one packet at a
        # time, until the chunk is used up.
        if self._sock is None:
            return super().loop_read(max_packets)
        filled = self._in_packet["command"] == 0 and not self._buffered() and self._fill()
        while True:
            if self._in_packet["command"] == 0 and self._buffered() and self._take_publishes():
                with self._msgtime_mutex:
                    self._last_bytes_received = mqtt.time_func()  # paho's keepalive clock
            if filled and not self._buffered():
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            rc = super().loop_read(max_packets)
            filled = True
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._sock is None or not self._buffered():
                return rc

    def _fill(self) -> bool:
        """Read a chunk into the (empty) buffer; False when there is nothing to read, the peer closed
        or the socket failed (paho's own read then meets the same condition and handles it)."""
        if self._rsock is not self._sock:
            self._rbuf, self._rpos, self._rsock = b"", 0, self._sock
        try:
            chunk = mqtt.Client._sock_recv(self, _READ_CHUNK)
        except OSError:  # BlockingIOError (nothing there), a reset connection, ...
            return False
        if not chunk:
            return False
        self._rbuf, self._rpos = chunk, 0
        return True

    def _buffered(self) -> bool:
        return self._rsock is self._sock and self._rpos < len(self._rbuf)

    def _take_publishes(self) -> int:
        """Hand every complete QoS 0/1 PUBLISH at the head of the buffer to `sink` as one burst, in
        order; stop at the first other packet, incomplete one or unusual one (left for paho, which reads
        it through `_handle_publish`). Returns how many were taken."""
        sink = self.sink
        if sink is None or self._protocol != mqtt.MQTTv5:
            return 0
        buf, pos, size = self._rbuf, self._rpos, len(self._rbuf)
        taken: list[tuple[str, int, int, bytes]] = []
        while pos < size:
            command = buf[pos]
            if command & 0xF0 != 0x30 or command & 0x06 > 0x02:  # not a PUBLISH, or QoS 2
                break
            length, at = _varint(buf, pos + 1, size)
            end = at + length
            if at < 0 or end > size:
                break  # the packet runs past the buffer (or its length is malformed: paho says so)
            qos = (command & 0x06) >> 1
            parsed = _parse_publish(buf, at, end, qos)
            if parsed is None:
                break
            taken.append((parsed[0], parsed[1], qos, parsed[2]))
            pos = end
        if taken:
            self._rpos = pos
            sink(taken)
        return len(taken)

    def _handle_publish(self) -> MQTTErrorCode:
        # a PUBLISH that came through paho's packet reader (cut by a chunk boundary): same parse
        sink = self.sink
        qos = (self._in_packet["command"] & 0x06) >> 1
        if sink is None or qos == 2 or self._protocol != mqtt.MQTTv5:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        parsed = _parse_publish(packet, 0, len(packet), qos)
        if parsed is None:
            return super()._handle_publish()  # paho reports the malformed packet its own way
        sink([(parsed[0], parsed[1], qos, parsed[2])])
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: list[int]) -> None:
        """Queue the PUBACKs of `mids`, in order, as one write."""
        if not mids:
            return
        packet = b"".join([_PUBACK.pack(0x40, 2, mid) for mid in mids])
        self._packet_queue(0x40, packet, 0, 0)


def _varint(buf: bytes | bytearray, at: int, end: int) -> tuple[int, int]:
    """An MQTT variable byte integer at `at`: (value, index after it); index -1 when it runs past `end`
    or is longer than the four bytes MQTT allows."""
    value = shift = 0
    while at < end and shift < 28:
        byte = buf[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at
    return 0, -1


def _parse_publish(buf: bytes | bytearray, start: int, end: int, qos: int) -> tuple[str, int, bytes] | None:
    """(topic, packet id, payload) of the MQTT 5 PUBLISH whose variable header starts at `start` and
    whose packet ends at `end`: topic (u16 length + UTF-8), packet id if QoS > 0, properties (varint
    length, skipped: not used here), payload. We set no Topic Alias Maximum, so the broker sends full
    topics. paho's own path builds a Properties object and an MQTTMessage per message, several times
    slower. None when the packet is anything unusual (an empty topic, bad UTF-8, lengths past `end`)."""
    if start + 2 > end:
        return None
    topic_start = start + 2
    at = topic_start + ((buf[start] << 8) | buf[start + 1])
    topic_end = at
    mid = 0
    if qos:
        if at + 2 > end:
            return None
        mid = (buf[at] << 8) | buf[at + 1]
        at += 2
    if at < end and buf[at] == 0:  # no properties: the usual case
        at += 1
    else:
        length, at = _varint(buf, at, end)
        if at < 0:
            return None
        at += length
    if topic_end == topic_start or at > end:
        return None
    try:
        topic = buf[topic_start:topic_end].decode()
    except UnicodeDecodeError:
        return None
    return topic, mid, bytes(buf[at:end])


_FAST_PATH = all(hasattr(mqtt.Client, name) for name in ("_sock_recv", "_packet_queue", "_handle_publish"))


def configure(client: mqtt.Client, cfg: MqttSection) -> None:
    """What every ingest MQTT client shares: reconnect back-off, credentials, TLS."""
    client.reconnect_delay_set(1, 30)
    if cfg.username is not None:
        client.username_pw_set(cfg.username, cfg.secret())
    if cfg.tls_ca_file is not None:
        client.tls_set_context(ssl.create_default_context(cafile=str(cfg.tls_ca_file)))


async def publish_confirmed(
    client: mqtt.Client, topic: str, payload: bytes, *, retain: bool, timeout: float
) -> bool:
    """QoS 1 publish; True once the broker acknowledged it, False when unconfirmed within `timeout`
    (paho keeps it and resends it after a reconnect)."""
    info = client.publish(topic, payload, qos=1, retain=retain)
    try:
        await asyncio.to_thread(info.wait_for_publish, timeout)
    except (ValueError, RuntimeError):
        return False
    return info.is_published()


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
        self.subscribed = threading.Event()  # the broker acknowledged our filters on this connection
        self._filters_mid: int | None = None
        self.broker_dropped: int | None = None
        self.acks = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._network_thread: threading.Thread | None = None
        cls = _BufferedClient if _FAST_PATH else mqtt.Client
        self._client = cls(
            CallbackAPIVersion.VERSION2, client_id=cfg.client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        if isinstance(self._client, _BufferedClient):
            self._client.sink = self._deliver
        configure(self._client, cfg)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.cfg.session_expiry_s
        props.ReceiveMaximum = self.cfg.max_unacked
        self._client.connect_async(
            self.cfg.host, self.cfg.port, self.cfg.keepalive_s, clean_start=False, properties=props
        )
        self._client.loop_start()
        # paho forgets its thread when the thread ends, however it ends: keep our own reference
        self._network_thread = getattr(self._client, "_thread", None)

    def stop(self) -> None:
        self._network_thread = None
        self._client.disconnect()
        self._client.loop_stop()

    def network_alive(self) -> bool:
        """False once paho's network thread has died (an exception on it: its traceback is on stderr);
        nothing would ever arrive again, so the service stops rather than idle forever."""
        thread = self._network_thread
        return thread is None or thread.is_alive()

    async def watch(self, every_s: float = 1.0) -> None:
        """Raise SubscribeError once the network thread has died (run it in the role's task group)."""
        while True:
            await asyncio.sleep(every_s)
            if not self.network_alive():
                raise SubscribeError(
                    "mqtt: the network thread died (traceback above); stopping so that the service "
                    "manager restarts the ingest (unacknowledged messages are redelivered)"
                )

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
        return await publish_confirmed(self._client, topic, payload, retain=False, timeout=timeout)

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
        _, self._filters_mid = client.subscribe([(f, SubscribeOptions(qos=1)) for f in self.cfg.filters()])
        client.subscribe(SYS_DROPPED, options=SubscribeOptions(qos=0))

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, reason_codes: list[Any], props: object
    ) -> None:
        if mid != self._filters_mid:
            return
        filters = self.cfg.filters()
        refused = [(f, rc) for f, rc in zip(filters, reason_codes, strict=False) if rc.is_failure]
        for topic_filter, rc in refused:  # an ACL that does not grant the filter: nothing would arrive
            log.error(
                "mqtt: %s:%d refused the subscription %s: %s", self.cfg.host, self.cfg.port, topic_filter, rc
            )
        log.info("mqtt: subscribed to %d of %d filter(s)", len(filters) - len(refused), len(filters))
        self.subscribed.set()

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
            # our own stop (and a broker's orderly DISCONNECT 0) is reason 0, "Normal disconnection":
            # not a warning; anything else (a lost connection, a broker shutting down) is
            level = logging.WARNING if getattr(rc, "is_failure", rc != 0) else logging.INFO
            log.log(level, "mqtt: disconnected from %s:%d: %s", self.cfg.host, self.cfg.port, rc)
        self.connected.clear()
        self.subscribed.clear()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self._deliver([(msg.topic, msg.mid, msg.qos, bytes(msg.payload))])

    def _deliver(self, messages: list[tuple[str, int, int, bytes]]) -> None:
        """On the network thread: queue a burst of (topic, mid, qos, payload) for the event loop and
        wake it once (the broker's dropped counter is taken out on the way)."""
        generation, now = self.generation, time.monotonic()
        batch = [Delivery(generation, mid, qos, topic, payload, now) for topic, mid, qos, payload in messages]
        if any(d.topic == SYS_DROPPED for d in batch):  # rare: take the broker's counter out
            for d in batch:
                if d.topic == SYS_DROPPED:
                    with contextlib.suppress(ValueError):
                        self.broker_dropped = int(d.payload)
            batch = [d for d in batch if d.topic != SYS_DROPPED]
        if not batch:
            return
        assert self._loop is not None
        self._inbox.extend(batch)
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
