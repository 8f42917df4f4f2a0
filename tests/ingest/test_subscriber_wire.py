"""The subscriber's own PUBLISH reader against a real Mosquitto: every message arrives once, in order,
with its topic, packet id and payload intact, whether it came whole in a chunk, cut across chunks, as
QoS 0 or 1, or with properties (paho's path); and a dead network thread stops the ingest instead of
leaving it idle forever."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from bench.mqtt_load import Blaster, publish_packets
from gridedge.services import InfluxDB, Mosquitto
from ingest.config import IngestConfig, MqttSection
from ingest.errors import SubscribeError
from ingest.service import Ingest
from ingest.subscriber import Delivery, Subscriber
from protocols.config import load as load_model

pytestmark = pytest.mark.integration


async def connected(sub: Subscriber) -> None:
    for _ in range(100):
        if sub.subscribed.is_set():  # the broker acknowledged the SUBSCRIBE
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the subscriber did not connect")


async def take_all(sub: Subscriber, n: int, timeout: float = 20.0) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        batch = await sub.take(500, 0.5)
        got += batch
        sub.ack(batch)
    return got


def paho_publish(port: int, items: list[tuple[str, bytes, int, bool]]) -> None:
    """QoS 0/1 publishes over MQTT 5, some with a user property (the broker forwards properties)."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="wire-paho", protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = []
    for topic, payload, qos, with_props in items:
        props = None
        if with_props:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.UserProperty = ("origin", "test")
        infos.append(c.publish(topic, payload, qos=qos, properties=props))
    for info in infos:
        info.wait_for_publish(10)
    c.disconnect()
    c.loop_stop()


async def test_every_publish_arrives_once_in_order_whatever_its_shape(mosquitto: Mosquitto) -> None:
    sub = Subscriber(MqttSection(host="127.0.0.1", port=mosquitto.port, client_id="wire-1", max_unacked=500))
    sub.start()
    try:
        await connected(sub)
        # sizes from a few bytes to past the 64 KiB read chunk, so packets are cut at every place
        sizes = [1, 10, 300, 4000, 70_000, 17, 65_530, 2, 140_000, 5] * 30
        msgs = [(f"gridedge/v1/gw-w/d{i % 7}/reading", bytes([i % 251]) * n) for i, n in enumerate(sizes)]
        blaster = Blaster(mosquitto.port, "wire-load")
        await asyncio.to_thread(blaster.send_all, publish_packets(msgs), 100)
        blaster.close()
        got = await take_all(sub, len(msgs))
        assert [(d.topic, d.payload) for d in got] == msgs
        assert all(d.qos == 1 and 1 <= d.mid <= 65535 for d in got)
        # QoS 0 and QoS 1, with and without properties, through paho's publisher
        mixed = [
            (f"gridedge/v1/gw-w/p{i}/event", json.dumps({"i": i}).encode() * (i % 5 + 1), i % 2, i % 3 == 0)
            for i in range(300)
        ]
        await asyncio.to_thread(paho_publish, mosquitto.port, mixed)
        got = await take_all(sub, len(mixed))
        by_qos = {q: [(d.topic, d.payload) for d in got if d.qos == q] for q in (0, 1)}
        for q in (0, 1):  # MQTT orders messages per QoS level, not across them
            assert by_qos[q] == [(t, p) for t, p, qos, _ in mixed if qos == q]
        assert all(d.mid == 0 for d in got if d.qos == 0)
    finally:
        await asyncio.to_thread(sub.stop)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_a_dead_network_thread_stops_the_ingest(mosquitto: Mosquitto, influxdb: InfluxDB) -> None:
    doc = {
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "client_id": "wire-dead"},
        "influx": {"url": influxdb.url, "database": influxdb.database},
    }
    cfg = load_model(IngestConfig, json.dumps(doc), source="test", environ={})
    ingest = Ingest(cfg)

    def broken(messages: list[tuple[str, int, int, bytes]]) -> None:
        raise RuntimeError("a bug on the network thread")

    setattr(ingest.subscriber._client, "sink", broken)  # noqa: B010 (the test breaks a private)
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop), name="test:ingest")
    await connected(ingest.subscriber)
    blaster = Blaster(mosquitto.port, "wire-load-2")
    blaster.send(publish_packets([("gridedge/v1/gw-w/d1/reading", b"{}")]))
    blaster.close()
    started = time.monotonic()
    with pytest.raises(ExceptionGroup) as caught:
        async with asyncio.timeout(10):
            await task
    assert caught.group_contains(SubscribeError, match="network thread died")
    assert time.monotonic() - started < 5


def test_a_refused_subscription_is_reported_by_name(caplog: pytest.LogCaptureFixture) -> None:
    """Mosquitto grants every SUBSCRIBE and applies its ACL when it delivers, so this cannot be provoked
    on the test broker; EMQX, HiveMQ and VerneMQ answer a filter their ACL does not grant with SUBACK
    reason 0x87. The SUBACK callback of our filters, as paho calls it, must say which filter."""
    cfg = MqttSection(topics=["gridedge/v1/+/+/reading", "gridedge/v1/+/+/cmd"])
    sub = Subscriber(cfg)
    sub._filters_mid = 7
    granted, refused = (
        ReasonCode(PacketTypes.SUBACK, identifier=1),
        ReasonCode(PacketTypes.SUBACK, identifier=0x87),
    )
    caplog.set_level(logging.INFO, logger="ingest")
    sub._on_subscribe(sub._client, None, 8, [refused], None)  # the $SYS subscription: not ours to judge
    assert not sub.subscribed.is_set() and not caplog.records
    sub._on_subscribe(sub._client, None, 7, [granted, refused], None)
    assert sub.subscribed.is_set()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "mqtt: localhost:1883 refused the subscription gridedge/v1/+/+/cmd: Not authorized"
    ]
    assert "subscribed to 1 of 2 filter(s)" in caplog.text


async def test_a_normal_disconnect_is_not_a_warning(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopping the subscriber disconnects with reason 0, "Normal disconnection": INFO, not WARNING
    (issue 20 item 7); a broker that goes away is still a warning."""
    sub = Subscriber(MqttSection(host="127.0.0.1", port=mosquitto.port, client_id="wire-normal"))
    sub.start()
    await connected(sub)
    with caplog.at_level(logging.INFO, logger="ingest"):
        await asyncio.to_thread(sub.stop)
    said = [r for r in caplog.records if "disconnected from" in r.getMessage()]
    assert said and all(r.levelno == logging.INFO for r in said), [
        (r.levelname, r.getMessage()) for r in said
    ]
    caplog.clear()
    sub = Subscriber(MqttSection(host="127.0.0.1", port=mosquitto.port, client_id="wire-lost"))
    sub.start()
    try:
        await connected(sub)
        with caplog.at_level(logging.INFO, logger="ingest"):
            mosquitto.stop()
            for _ in range(100):
                if not sub.connected.is_set():
                    break
                await asyncio.sleep(0.05)
        lost = [r for r in caplog.records if "disconnected from" in r.getMessage()]
        assert lost and lost[0].levelno == logging.WARNING
    finally:
        await asyncio.to_thread(sub.stop)
