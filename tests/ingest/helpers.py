"""Ingest test building blocks: a fast QoS 1 stream publisher, configs, running the service."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ingest.config import IngestConfig
from ingest.service import Ingest
from protocols.config import load as load_model

T0 = 1_763_800_000_000  # 2025-11-22, ms


def reading(gw: str, dev: str, seq: int, ts: int, **extra: Any) -> bytes:
    values = {
        "voltage_a_v": 220.0 + (seq % 50) / 10,
        "current_a_a": 5.0 + (seq % 7),
        "power_active_kw": 1.1,
        "energy_import_kwh": 1000.0 + seq / 100,
        "balance_cny": 88.5,
        "relay": "closed",
    }
    return json.dumps(
        {
            "schema": 1,
            "gw": gw,
            "dev": dev,
            "seq": seq,
            "ts": ts,
            "values": values,
            "protocol": "dlt645",
            **extra,
        }
    ).encode()


def stream(devices: int, per_device: int, gw: str = "gw-1") -> Iterator[tuple[str, bytes]]:
    """`devices * per_device` good readings, device-interleaved, one per second per device."""
    seq = 0
    for i in range(per_device):
        for d in range(devices):
            seq += 1
            dev = f"m{d:04d}"
            yield f"gridedge/v1/{gw}/{dev}/reading", reading(gw, dev, seq, T0 + i * 1000)


class StreamPublisher:
    """Publishes QoS 1 as fast as the broker acknowledges (paho network thread, window of 1000)."""

    def __init__(self, port: int, client_id: str = "test-publisher") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish_all(self, messages: list[tuple[str, bytes]], rate: float | None = None) -> None:
        infos: collections.deque[mqtt.MQTTMessageInfo] = collections.deque()
        started = time.monotonic()
        for i, (topic, payload) in enumerate(messages):
            if len(infos) >= 20_000:  # packet ids are 16 bits: never have more outstanding than that
                infos.popleft().wait_for_publish(60)
            infos.append(self.client.publish(topic, payload, qos=1))
            if rate and i % 100 == 0:
                ahead = i / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        for info in infos:
            info.wait_for_publish(60)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def ingest_config(broker_port: int, influx_url: str, database: str, **mqtt_extra: Any) -> IngestConfig:
    doc = {
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "client_id": "ingest-test", **mqtt_extra},
        "influx": {"url": influx_url, "database": database, "retry_min_s": 0.2, "retry_max_s": 2},
        "metrics": {"interval_s": 1},
    }
    return load_model(IngestConfig, json.dumps(doc), source="test", environ={})


@contextlib.asynccontextmanager
async def running(cfg: IngestConfig) -> AsyncIterator[Ingest]:
    ingest = Ingest(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop), name="test:ingest")
    try:
        await wait_until(ingest.subscriber.subscribed.is_set, 10)  # SUBACK: nothing published now is missed
        yield ingest
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(interval)


def count(db: Any, measurement: str = "meter", field: str = "voltage_a_v") -> int:
    series = db.query(f'SELECT count("{field}") FROM "{measurement}"')
    return int(series[0]["values"][0][1]) if series else 0


class DeadLetters:
    """Collects gridedge/v1/deadletter."""

    def __init__(self, port: int) -> None:
        self.messages: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="deadletter-watch")
        self.client.on_connect = lambda c, *a: (
            c.subscribe("gridedge/v1/deadletter", qos=1),
            self.ready.set(),
        )
        self.client.on_message = lambda c, u, msg: self.messages.append(json.loads(msg.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.ready.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
