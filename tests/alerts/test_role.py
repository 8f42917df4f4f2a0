"""The alerts role: config section defaults, payload decoding (malformed ones counted and skipped), and
`gridedge ingest run --role ...` as a process against the real broker and influxd."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from ingest.alerts.rules import devices
from ingest.config import load_config
from protocols import messages as m
from protocols import topics

REPO = Path(__file__).resolve().parents[2]


def test_existing_configs_load_with_alert_defaults(tmp_path: Path) -> None:
    cfg = load_config(REPO / "examples" / "ingest.yaml", environ={})
    assert cfg.alerts.enabled and cfg.alerts.tick_s == 5.0
    assert cfg.alerts.state_path.parent == REPO / "examples"  # relative to the config file
    (tmp_path / "i.yaml").write_text("alerts:\n  rules:\n    devices:\n      pending_s: -3\n")
    with pytest.raises(Exception, match=r"i\.yaml:2: alerts\.rules: .*alerts\.rules\.devices\.pending_s"):
        load_config(tmp_path / "i.yaml", environ={})


@pytest.mark.integration
async def test_malformed_payloads_are_counted_and_skipped(alert_harness) -> None:
    h = await alert_harness(sets=[devices.RULESET], rules={"devices": {"pending_s": 0}})
    await h.publish(topics.health_topic("gw-1", "m1"), b"{not json")
    await h.publish(topics.health_topic("gw-1", "m1"), b'{"schema": 1}')
    wrong_dev = m.Health(schema=1, gw="gw-1", dev="m2", seq=1, ts=h.ms(), state="offline")
    await h.publish(topics.health_topic("gw-1", "m1"), wrong_dev)
    assert h.role is not None and h.role.stats.malformed == 3
    good = m.Health(schema=1, gw="gw-1", dev="m1", seq=2, ts=h.ms(), state="offline")
    await h.publish(topics.health_topic("gw-1", "m1"), good)
    assert list(h.retained_alerts()) == [("device_offline", "gw-1/m1")]


class Watch:
    def __init__(self, port: int) -> None:
        self.retained: dict[str, bytes] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="role-watch")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("gridedge/v1/alerts/#", qos=1)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.retained[msg.topic] = bytes(msg.payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def poll(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    # waiting on another process: there is no event to await, so poll
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.1)


@pytest.mark.integration
@pytest.mark.parametrize("role", ["all", "alerts"])
async def test_cli_role_runs_the_engine(mosquitto, influxdb, tmp_path: Path, role: str) -> None:
    doc = {
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "client_id": f"cli-{role}"},
        "influx": {"url": influxdb.url, "database": influxdb.database},
        "alerts": {"tick_s": 0.2, "rules": {"devices": {"pending_s": 0}}},
    }
    config = tmp_path / "ingest.yaml"
    config.write_text(yaml.safe_dump(doc))
    log = (tmp_path / "ingest.log").open("ab")
    watch = Watch(mosquitto.port)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="role-pub")
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    health = m.Health(schema=1, gw="gw-1", dev="m1", seq=1, ts=int(time.time() * 1000), state="offline")
    pub.publish(topics.health_topic("gw-1", "m1"), m.encode(health), qos=1, retain=True).wait_for_publish(10)
    argv = [sys.executable, "-m", "gridedge", "ingest", "run", "-c", str(config), "--role", role]
    proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=REPO)
    topic = topics.alert_topic("device_offline", "gw-1/m1")
    try:
        await poll(lambda: topic in watch.retained, 30)
        assert json.loads(watch.retained[topic])["state"] == "firing"
        await poll(lambda: bool(influxdb.query("SELECT * FROM alert")), 10)
        if role == "all":
            await poll(lambda: bool(influxdb.query("SELECT * FROM device_health")), 10)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 20)
        pub.disconnect()
        pub.loop_stop()
        watch.close()
        log.close()
    assert code == 0, (tmp_path / "ingest.log").read_text()
    assert (tmp_path / "alerts.sqlite").exists()
    if role == "alerts":
        assert influxdb.query("SELECT * FROM device_health") == []


async def test_webhook_retries_with_back_off_and_drops_when_the_queue_is_full() -> None:
    from ingest.alerts.config import WebhookSection
    from ingest.alerts.engine import Change
    from ingest.alerts.model import Alert, AlertState, Severity
    from ingest.alerts.outputs import Outputs

    bodies: list[dict[str, object]] = []
    got = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1]
        )
        body = json.loads(await reader.readexactly(length))
        bodies.append(body)
        status = b"500 Oops" if len(bodies) == 1 else b"204 No Content"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        if len(bodies) == 2:
            got.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hook = WebhookSection(url=f"http://127.0.0.1:{port}/hook", backoff_s=0.05, retries=3, queue=1)
    outputs = Outputs(None, None, hook)
    t0 = 1_763_800_000.0
    a = Alert("device_offline", "gw-1/m1", AlertState.FIRING, Severity.WARNING, t0, fired_at=t0 + 1)
    await outputs.emit([Change("firing", a, t0 + 1), Change("firing", a, t0 + 1)])  # the second is dropped
    assert outputs.stats.webhook_dropped == 1
    async with server, asyncio.TaskGroup() as tg:
        sender = tg.create_task(outputs.run_webhook(), name="test:webhook")
        await asyncio.wait_for(got.wait(), 10)
        async with asyncio.timeout(10):  # the server has answered 204: wait until the sender has read it
            while outputs.stats.webhook_sent == 0:
                await asyncio.sleep(0.01)
        sender.cancel()
    assert [b["subject"] for b in bodies] == ["gw-1/m1", "gw-1/m1"]  # a 500, then the retry
    assert bodies[0]["change"] == "firing" and outputs.stats.webhook_sent == 1
