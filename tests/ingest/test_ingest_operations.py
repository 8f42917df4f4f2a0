"""What an operator relies on in a running writer, against a real Mosquitto and influxd: `kill -HUP`
reloads the topology (and a broken file keeps the old one), the Prometheus endpoint serves the
self-metrics, and messages the broker drops ($SYS/broker/publish/messages/dropped) are reported."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from gridedge.services import Mosquitto, free_port
from tests.ingest.helpers import T0, StreamPublisher, ingest_config, reading, running, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOPIC = "gridedge/v1/gw-1/m0001/reading"


def _publish(port: int, topic: str, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"op-pub-{time.monotonic_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def _area_at(influxdb: Any, ts: int) -> str | None:
    series = influxdb.query(f'SELECT "voltage_a_v", "area" FROM "meter" WHERE time = {ts}ms')
    return str(series[0]["values"][0][2]) if series else None


async def _stored_area(influxdb: Any, ts: int, timeout: float = 20) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (area := _area_at(influxdb, ts)) is not None:
            return area
        await asyncio.sleep(0.2)
    return None


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    samples = (line.split() for line in text.splitlines() if not line.startswith("#"))  # HELP, TYPE
    return {name: float(value) for name, value in samples}


async def test_sighup_reloads_the_topology_and_prometheus_serves_the_metrics(
    mosquitto: Mosquitto, influxdb: Any, tmp_path: Path
) -> None:
    topology = tmp_path / "topology.yaml"
    topology.write_text(yaml.safe_dump({"devices": {"gw-1/m0001": {"area": "area-old"}}}))
    prometheus = free_port()
    doc = {
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "client_id": "op-writer"},
        "influx": {"url": influxdb.url, "database": influxdb.database, "flush_interval_s": 0.1},
        "topology": "topology.yaml",
        "metrics": {"interval_s": 1, "prometheus_port": prometheus},
    }
    (tmp_path / "ingest.yaml").write_text(yaml.safe_dump(doc))
    log = tmp_path / "ingest.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gridedge",
            "-v",
            "ingest",
            "run",
            "-c",
            str(tmp_path / "ingest.yaml"),
            "--role",
            "writer",
        ],
        cwd=REPO,
        stderr=log.open("w"),
    )
    try:
        await wait_until(lambda: "subscribed to 4 of 4 filter(s)" in log.read_text(), 20)
        await asyncio.to_thread(_publish, mosquitto.port, TOPIC, reading("gw-1", "m0001", 1, T0))
        assert await _stored_area(influxdb, T0) == "area-old"

        metrics = await asyncio.to_thread(_metrics, prometheus)
        assert metrics["gridedge_ingest_messages_in"] == 1 and metrics["gridedge_ingest_acked"] == 1
        assert (
            metrics["gridedge_ingest_points_written"] >= 1 and metrics["gridedge_ingest_mqtt_connected"] == 1
        )
        assert metrics["gridedge_ingest_influx_ok"] == 1 and metrics["gridedge_ingest_deadletters"] == 0

        topology.write_text(yaml.safe_dump({"devices": {"gw-1/m0001": {"area": "area-new"}}}))
        proc.send_signal(signal.SIGHUP)
        await wait_until(lambda: "reloaded: 1 device(s)" in log.read_text(), 10)
        await asyncio.to_thread(_publish, mosquitto.port, TOPIC, reading("gw-1", "m0001", 2, T0 + 1000))
        assert await _stored_area(influxdb, T0 + 1000) == "area-new"

        topology.write_text("devices: {gw-1/m0001: {area: [not, a, name]}}\n")
        proc.send_signal(signal.SIGHUP)
        await wait_until(lambda: "not reloaded" in log.read_text(), 10)
        assert proc.poll() is None, "a broken topology file must not stop the writer"
        await asyncio.to_thread(_publish, mosquitto.port, TOPIC, reading("gw-1", "m0001", 3, T0 + 2000))
        assert await _stored_area(influxdb, T0 + 2000) == "area-new"  # the previous topology is kept
        assert "topology.yaml" in log.read_text().split("not reloaded")[0].splitlines()[-1]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    assert code == 0, log.read_text()[-2000:]
    assert _area_at(influxdb, T0) == "area-old"  # points written before the reload keep their tags


async def test_messages_the_broker_drops_are_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker whose per-client queue is tiny (5 messages past the in-flight window), an ingest that cannot
    acknowledge (its database is down): the broker drops the overflow, and the ingest says so."""
    broker = Mosquitto(tmp_path / "mosquitto", extra_config="max_queued_messages 5\nsys_interval 1\n")
    broker.start()
    try:
        cfg = ingest_config(broker.port, f"http://127.0.0.1:{free_port()}", "none", max_unacked=10)
        cfg = cfg.model_copy(update={"influx": cfg.influx.model_copy(update={"create_database": False})})
        caplog.set_level(logging.ERROR, logger="ingest")
        async with running(cfg) as ingest:
            await wait_until(lambda: ingest._broker_dropped_seen is not None, 10)  # the baseline
            pub = StreamPublisher(broker.port, "op-flood")
            try:
                messages = [(TOPIC, reading("gw-1", "m0001", i, T0 + i * 1000)) for i in range(200)]
                await asyncio.to_thread(pub.publish_all, messages)
            finally:
                pub.close()
            await wait_until(lambda: "broker dropped" in caplog.text, 15)
            assert ingest.metric_fields()["broker_dropped"] >= 200 - 10 - 5
    finally:
        broker.stop()
    assert "raise max_queued_bytes or add writers" in caplog.text
