"""Who may act on alerts is the broker's ACL (deploy/compose/mosquitto/acl): the alerts role logged in
as `gridedge-ingest` on a Mosquitto with that ACL and a password file; `gridedge alerts` run as an
operator and as a field crew. The crew may report `arrived` and notes, but its `ack` and `close` are
refused by the broker and never change the alert; the operator's are taken."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from gridedge.cli import main as gridedge
from ingest.alerts.role import AlertsRole
from ingest.alerts.rules import outage
from ingest.config import IngestConfig
from ingest.topology import Topology
from protocols import messages as m
from protocols import topics
from protocols.config import load as load_model
from tests.security.pki import ACL, SecureBroker, make_pki, start_secure_broker

pytestmark = pytest.mark.integration

GW = "gw-acl"
USERS = {
    GW: "gw-acl-Pa55-8e1f",
    "gridedge-ingest": "ingest-Pa55-77aa01",
    "gridedge-operator": "operator-Pa55-3c9d02",
    "gridedge-crew": "crew-Pa55-41be03",
}
KEY = ("gateway_offline", GW)


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[SecureBroker]:
    broker = start_secure_broker(tmp_path / "broker", make_pki(tmp_path / "pki"), USERS, acl=ACL)
    yield broker
    broker.stop()


class Watcher:
    """An operator's subscriber on the alerts: what is retained now, as the dashboards see it."""

    def __init__(self, port: int) -> None:
        self.retained: dict[str, dict[str, Any]] = {}
        self.cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{uuid.uuid4().hex[:6]}")
        self.client.username_pw_set("gridedge-operator", USERS["gridedge-operator"])
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(topics.alert_topic(*KEY), qos=1)

    def _on_message(self, client: object, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.retained[msg.topic] = json.loads(msg.payload) if msg.payload else {}
            self.cond.notify_all()

    def wait_firing(self, timeout: float = 20) -> None:
        topic = topics.alert_topic(*KEY)
        with self.cond:
            ok = self.cond.wait_for(lambda: self.retained.get(topic, {}).get("state") == "firing", timeout)
        assert ok, "gateway_offline never fired"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
async def role(acl_broker: SecureBroker, influxdb: Any, tmp_path: Path) -> AsyncIterator[AlertsRole]:
    (tmp_path / "topology.yaml").write_text(yaml.safe_dump({"gateways": {GW: {"site": "s1"}}}))
    doc = {
        "mqtt": {"host": "127.0.0.1", "port": acl_broker.port, "client_id": "alerts-acl",
                 "username": "gridedge-ingest", "password": USERS["gridedge-ingest"]},
        "influx": {"url": influxdb.url, "database": influxdb.database},
        "alerts": {"state_path": str(tmp_path / "alerts.sqlite"), "tick_s": 3600},
    }  # fmt: skip
    cfg = load_model(IngestConfig, json.dumps(doc), source="test", environ={})
    r = AlertsRole(cfg, Topology.load(tmp_path / "topology.yaml"), sets=[outage.RULESET])
    stop = asyncio.Event()
    task = asyncio.create_task(r.run(stop), name="test:alerts-role")
    yield r
    stop.set()
    await asyncio.wait_for(task, 20)


def _gateway_goes_offline(port: int) -> None:
    """The gateway's Last Will, published as the gateway (its own user) until the role has taken it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw-acl-lw")
    client.username_pw_set(GW, USERS[GW])
    client.connect("127.0.0.1", port)
    client.loop_start()
    status = m.Status(schema=1, gw=GW, seq=1, ts=1_763_800_000_000, state="offline")
    client.publish(topics.status_topic(GW), m.encode(status), qos=1, retain=True).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


async def _act(port: int, folder: Path, user: str, verb: str, *extra: str) -> int:
    """`gridedge alerts VERB` as `user` (its password in a file, as an operator keeps it)."""
    password = folder / f"{user}.password"
    password.write_text(USERS[user])
    argv = ["alerts", verb, *KEY, "--port", str(port), "--username", user, "--password-file", str(password)]
    return await asyncio.to_thread(gridedge, [*argv, "--by", user, "--wait", "10", *extra])


async def test_only_the_acl_lets_an_operator_ack_and_close(
    acl_broker: SecureBroker, role: AlertsRole, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    watch = Watcher(acl_broker.port)
    try:
        await asyncio.to_thread(_gateway_goes_offline, acl_broker.port)
        await asyncio.to_thread(watch.wait_firing)

        assert await _act(acl_broker.port, tmp_path, "gridedge-crew", "ack") == 1
        assert "refused ack" in capsys.readouterr().err
        assert role.engine.get(*KEY).work == "open"  # type: ignore[union-attr]
        assert await _act(acl_broker.port, tmp_path, "gridedge-crew", "arrived", "--crew", "crew-7") == 0
        assert "taken: work on_site" in capsys.readouterr().out
        assert (
            await _act(acl_broker.port, tmp_path, "gridedge-operator", "ack") == 0
        )  # recorded; stays on site

        close = ("--cause", "router power", "--outcome", "power supply replaced")
        # the gateway is still offline: the engine refuses to close its alert, and says why
        assert await _act(acl_broker.port, tmp_path, "gridedge-operator", "close", *close) == 1
        assert "refused close: its condition still holds (firing)" in capsys.readouterr().err

        online = m.Status(schema=1, gw=GW, seq=2, ts=1_763_800_060_000, state="online")
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw-acl-back")
        client.username_pw_set(GW, USERS[GW])
        client.connect("127.0.0.1", acl_broker.port)
        client.loop_start()
        client.publish(topics.status_topic(GW), m.encode(online), qos=1, retain=True).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()

        assert await _act(acl_broker.port, tmp_path, "gridedge-crew", "close", *close) == 1
        assert "refused close" in capsys.readouterr().err
        assert await _act(acl_broker.port, tmp_path, "gridedge-operator", "close", *close) == 0
        assert "taken: work closed" in capsys.readouterr().out
        alert = role.engine.get(*KEY)
        assert alert is not None and (alert.state.value, alert.work, alert.assignee) == (
            "resolved",
            "closed",
            "crew-7",
        )
        # the crew's ack and close never reached the engine; the operator's early close was refused by it
        assert (role.work.stats.actions, role.work.stats.refused) == (3, 1)
    finally:
        watch.close()
