"""The ACL of deploy/compose/mosquitto/acl on a real Mosquitto with a password file: each gateway logs
in as its gateway id and is confined to its own subtree. What gw-a publishes under gw-b never reaches a
subscriber, gw-a receives only its own commands, and a payload that claims another gateway than the
topic (which the ACL cannot see) is dead-lettered by the ingest.

Mosquitto does not tell subscribers who published a message: the topic is all the ingest can check,
so the ACL is what binds `gridedge/v1/{gw}/...` to the authenticated user `gw`."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from gridedge.services import InfluxDB
from ingest.config import DEFAULT_TOPICS
from tests.ingest.helpers import T0, count, ingest_config, reading, running, wait_until
from tests.security.conftest import PASSWORDS
from tests.security.pki import ACL, Pki, SecureBroker, start_secure_broker

pytestmark = pytest.mark.integration


@pytest.fixture
def acl_broker(tmp_path: Path, pki: Pki) -> Iterator[SecureBroker]:
    broker = start_secure_broker(tmp_path / "acl-broker", pki, PASSWORDS, acl=ACL)
    yield broker
    broker.stop()


class Client:
    """A paho MQTT 5 client on the plain loopback listener, logged in as `user`."""

    def __init__(self, port: int, user: str, filters: Sequence[str] = ()) -> None:
        self.received: list[str] = []
        self.cond = threading.Condition()
        self.acks: dict[int, int] = {}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{user}-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(user, PASSWORDS[user])
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = threading.Event()
        self.connected = threading.Event()
        self.client.on_connect = lambda *args: self.connected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.connected.wait(5), f"{user} could not log in"
        if filters:
            self.client.subscribe([(f, SubscribeOptions(qos=1)) for f in filters])
            assert self.subscribed.wait(5)

    def _on_message(self, client: object, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.received.append(msg.topic)
            self.cond.notify_all()

    def _on_publish(self, client: object, userdata: object, mid: int, reason: object, props: object) -> None:
        with self.cond:
            self.acks[mid] = int(getattr(reason, "value", 0))
            self.cond.notify_all()

    def _on_subscribe(self, *args: object) -> None:
        self.subscribed.set()

    def publish(self, topic: str, payload: bytes = b"{}") -> int:
        """QoS 1; wait for the broker's answer (PUBACK, or the connection closed on a refusal)."""
        info = self.client.publish(topic, payload, qos=1)
        with self.cond:
            self.cond.wait_for(lambda: info.mid in self.acks or not self.client.is_connected(), 5)
            return self.acks.get(info.mid, -1)

    def wait_for(self, topic: str) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: topic in self.received, 5), f"{topic} never arrived"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_gateway_cannot_publish_as_another_nor_read_its_commands(acl_broker: SecureBroker) -> None:
    port = acl_broker.port
    ingest = Client(port, "gridedge-ingest", [*DEFAULT_TOPICS, "gridedge/v1/+/+/cmd/result"])
    gw_a = Client(port, "gw-a", ["gridedge/v1/+/+/cmd", "gridedge/v1/gw-b/#"])  # asks for more than its own
    gw_b = Client(port, "gw-b", ["gridedge/v1/gw-b/+/cmd"])
    clients = [ingest, gw_a, gw_b]
    try:
        forged = [
            "gridedge/v1/gw-b/status",
            "gridedge/v1/gw-b/m1/reading",
            "gridedge/v1/gw-b/m1/event",
            "gridedge/v1/gw-b/m1/health",
            "gridedge/v1/gw-b/m1/cmd/result",
        ]
        for topic in forged:
            forger = Client(port, "gw-a")  # a refused publish may end the connection: one client each
            clients.append(forger)
            assert forger.publish(topic) != 0, f"the broker accepted {topic} from gw-a"
        # gw-b's own reading: gw-a subscribed to gw-b's subtree, but may not read it
        assert gw_b.publish("gridedge/v1/gw-b/m1/reading") == 0
        marker = "gridedge/v1/gw-a/m9/reading"
        assert gw_a.publish(marker) == 0
        ingest.wait_for(marker)  # after the forged ones on the broker: had they been let through...
        ingest.wait_for("gridedge/v1/gw-b/m1/reading")
        assert [t for t in ingest.received if t.startswith("gridedge/v1/gw-b/")] == [
            "gridedge/v1/gw-b/m1/reading"  # ...they would be here: only gw-b's own message is
        ]

        assert ingest.publish("gridedge/v1/gw-b/m1/cmd") == 0
        assert ingest.publish("gridedge/v1/gw-a/m1/cmd") == 0
        gw_a.wait_for("gridedge/v1/gw-a/m1/cmd")
        gw_b.wait_for("gridedge/v1/gw-b/m1/cmd")
        assert gw_a.received == ["gridedge/v1/gw-a/m1/cmd"], gw_a.received
    finally:
        for client in clients:
            client.close()


async def test_a_payload_claiming_another_gateway_is_dead_lettered(
    acl_broker: SecureBroker, influxdb: InfluxDB
) -> None:
    """The ACL lets gw-a publish under gridedge/v1/gw-a/; the ingest checks the payload matches the topic."""
    cfg = ingest_config(
        acl_broker.port,
        influxdb.url,
        influxdb.database,
        username="gridedge-ingest",
        password=PASSWORDS["gridedge-ingest"],
    )
    async with running(cfg) as ingest:
        gw_a = Client(acl_broker.port, "gw-a")
        try:
            assert gw_a.publish("gridedge/v1/gw-a/m1/reading", reading("gw-b", "m1", 1, T0)) == 0
            assert gw_a.publish("gridedge/v1/gw-a/m1/reading", reading("gw-a", "m2", 2, T0)) == 0
            assert gw_a.publish("gridedge/v1/gw-a/m1/reading", reading("gw-a", "m1", 3, T0)) == 0
        finally:
            gw_a.close()
        await wait_until(lambda: ingest.stats.acked >= 3, 10)
    assert ingest.stats.deadletters == 2
    assert count(influxdb) == 1
    series = influxdb.query('SELECT count("voltage_a_v") FROM "meter" GROUP BY "gw", "dev"')
    assert [s["tags"] for s in series] == [{"gw": "gw-a", "dev": "m1"}]
