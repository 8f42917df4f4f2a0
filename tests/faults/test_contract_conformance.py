"""Everything the running system publishes decodes with the contract (`protocols.topics.decode_payload`).

The fault rig (tests/faults/harness.py: simulators on ptys -> gateway -> real mosquitto -> ingest with
its alert engine -> real influxd) with commands and alerts on. A recorder subscribed to `gridedge/#`
keeps every message; the test cuts a meter's supply (device_offline fires; the restore resolves it and
back-fills its power events) and sends a signed command with the operator's tool (`gridedge cmd`).
Then every recorded message of every topic kind is decoded, and each kind must have been seen.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from gridedge.services import REPO_ROOT
from protocols import messages as m
from protocols import topics
from protocols.errors import ContractError
from tests.faults.harness import DLT_METERS, GW, Rig

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

KEY = "conformance-command-key-0123456789"
KINDS = {"status", "reading", "event", "health", "cmd", "cmd/result", "alert"}


class ContractRig(Rig):
    """The fault rig with the alert engine and signed commands on."""

    def _write_configs(self) -> None:
        super()._write_configs()
        path = self.workdir / "ingest.yaml"
        ingest = yaml.safe_load(path.read_text())
        ingest["alerts"] = {
            "enabled": True,
            "state_path": str(self.workdir / "alerts.sqlite"),
            "tick_s": 1,
            "rules": {"devices": {"pending_s": 0}},
        }
        path.write_text(yaml.safe_dump(ingest, sort_keys=False))

    def _gateway_config(self) -> dict[str, Any]:
        doc = super()._gateway_config()
        key_file = self.workdir / "command.key"  # a key inline in a world-readable file is refused
        key_file.write_text(KEY + "\n")
        key_file.chmod(0o600)
        doc["commands"] = {"key_file": str(key_file)}
        for bus in doc["buses"]:
            for dev in bus["devices"]:
                if dev["kind"] == "dlt645":
                    dev.update(control=True, password="123456")
        return doc


class Recorder:
    """Every message on gridedge/# (QoS 1), in arrival order."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="conformance-recorder")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe("gridedge/#", qos=1)
        assert subscribed.wait(10), "no SUBACK"

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def wait_alert(self, change: str, timeout: float) -> None:
        def seen() -> bool:
            for topic, payload, _ in self.messages:
                alert = topic.startswith(f"{topics.PREFIX}/alerts/") and payload
                if alert and m.decode(m.Alert, payload).change == change:
                    return True
            return False

        with self._cond:
            assert self._cond.wait_for(seen, timeout), f"no {change} alert within {timeout:.0f} s"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[ContractRig]:
    r = ContractRig(tmp_path / "rig", seed=5)
    with r:
        yield r


def test_every_published_message_decodes(rig: ContractRig) -> None:
    assert rig.broker.port is not None
    rec = Recorder(rig.broker.port)
    try:
        meter = DLT_METERS[0]
        rig.sim.command(f"cut {meter}")
        rec.wait_alert("firing", 60)  # quarantined after its failed polls: device_offline
        rig.sim.command(f"restore {meter}")
        rec.wait_alert("resolved", 60)  # answers again at the gateway's next probe
        tool = subprocess.run(
            [sys.executable, "-m", "gridedge", "cmd", "--gw", GW, "--dev", DLT_METERS[1],
             "--action", "alarm_on", "--port", str(rig.broker.port), "--json"],
            env={**os.environ, "GRIDEDGE_COMMAND_KEY": KEY}, cwd=REPO_ROOT, capture_output=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert tool.stdout, tool.stderr
        rig.delivering(timeout=30)  # and the pipeline still runs
    finally:
        rec.close()

    seen: dict[str, int] = {}
    refused: list[str] = []
    for topic, payload, _ in rec.messages:
        where = topics.parse_topic(topic)
        if not payload:  # an empty retained payload clears a resolved alert's topic: MQTT, not a message
            assert where.kind is topics.TopicKind.ALERT, topic
            continue
        try:
            topics.decode_payload(where, payload)
        except ContractError as exc:
            refused.append(f"{topic}: {exc.field}: {exc.reason}: {payload[:200]!r}")
        seen[where.kind.value] = seen.get(where.kind.value, 0) + 1
    print(f"decoded by kind: {seen}; refused: {len(refused)}")
    assert refused == [], "\n".join(refused[:10])
    assert set(seen) >= KINDS, f"kinds seen: {seen}"
