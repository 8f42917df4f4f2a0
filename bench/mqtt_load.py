"""A cheap MQTT load generator for the benchmarks: pre-encoded QoS 1 PUBLISH packets (MQTT 3.1.1)
written in bursts on one plain socket, PUBACKs counted by a reader thread.

Why not paho: paho publishes about 5,000 QoS 1 messages/s here on a whole core, so a benchmark that
offered 7,500 readings/s with it measured its own load generator fighting the ingest for the second
core. Encoding is done before the clock starts; what remains per message is a share of one `sendall`.
The broker does the same work as for any client (it parses, acknowledges and routes every message).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterable

# The reading the ingest benchmarks publish: ten values, decimal quantities as a meter's BCD decodes to
# (230.1, not a float sum like 230.10000000000002 whose 17-digit repr costs every consumer more).
VALUES = (
    "voltage_a_v",
    "voltage_b_v",
    "voltage_c_v",
    "current_a_a",
    "current_b_a",
    "current_c_a",
    "power_active_kw",
    "power_factor",
    "energy_import_kwh",
    "balance_cny",
)


def reading_values(seq: int) -> dict[str, float]:
    return {k: round(200.0 + (seq % 97) / 10, 1) for k in VALUES}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def publish_packet(topic: str, payload: bytes, mid: int) -> bytes:
    """One QoS 1 PUBLISH; `mid` in 1..65535."""
    body = _string(topic) + struct.pack("!H", mid) + payload
    return b"\x32" + _varint(len(body)) + body


def publish_packets(messages: Iterable[tuple[str, bytes]]) -> list[bytes]:
    return [publish_packet(t, p, i % 65535 + 1) for i, (t, p) in enumerate(messages)]


class Blaster:
    """One MQTT 3.1.1 connection (clean session, no keepalive) that writes prepared packets."""

    def __init__(self, port: int, client_id: str = "bench-load", host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = _string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 0) + _string(client_id)
        self.sock.sendall(b"\x10" + _varint(len(body)) + body)
        connack = self._read_exactly(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"broker refused the load generator: CONNACK {connack.hex()}")
        self.sent = 0
        self.acked = 0
        self._acked_changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_acks, name="bench-load:acks", daemon=True)
        self._reader.start()

    def send(self, packets: list[bytes]) -> None:
        self.sock.sendall(b"".join(packets))
        self.sent += len(packets)

    def send_all(self, packets: list[bytes], window: int = 20_000) -> None:
        """Everything, as fast as the broker acknowledges, never more than `window` unacknowledged
        (packet ids are reused after 65,535)."""
        step = max(1, min(1000, window))
        for start in range(0, len(packets), step):
            self.wait_acked(self.sent + step - window)
            self.send(packets[start : start + step])
        self.wait_acked(self.sent)

    def wait_acked(self, n: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        with self._acked_changed:
            while self.acked < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.acked} of {n} publishes acknowledged after {timeout} s")
                self._acked_changed.wait(left)

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        finally:
            self.sock.close()
        self._reader.join(5)

    def _read_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("broker closed the load generator's connection")
            data += chunk
        return data

    def _read_acks(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            whole = len(buf) - len(buf) % 4  # a PUBACK is 4 bytes: 0x40 0x02 id id
            if whole:
                with self._acked_changed:
                    self.acked += whole // 4
                    self._acked_changed.notify_all()
                buf = buf[whole:]
