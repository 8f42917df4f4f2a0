"""MQTT over TLS with a password file: the gateway and the ingest connect to a Mosquitto whose
certificate was made by the test (CA + server certificate for 127.0.0.1 and localhost), data flows
simulator -> gateway -> broker -> ingest -> InfluxDB; a wrong password is refused with an error naming
the broker; a client that does not trust the broker's CA refuses to talk to it."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.devices.dlt645 import Dlt645Meter
from gridedge.services import InfluxDB
from ingest.service import Ingest
from tests.gateway.helpers import base_config, gateway_plan, sim_line
from tests.gateway.test_gateway_mqtt import running as gateway_running
from tests.ingest.helpers import count, ingest_config, wait_until
from tests.ingest.helpers import running as ingest_running
from tests.security.conftest import PASSWORDS
from tests.security.pki import Pki, SecureBroker

pytestmark = pytest.mark.integration

ADDR = "000000000001"


def secret_file(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def dlt645_bus(port: str) -> dict[str, Any]:
    device = {
        "kind": "dlt645",
        "id": ADDR,
        "address": ADDR,
        "interval_s": 1,
        "items": ["energy_import_kwh"],
    }
    return {"name": "area-1", "port": port, "baud": 9600, "parity": "E", "devices": [device]}


def gateway_doc(tmp_path: Path, port: int, buses: list[dict[str, Any]], **mqtt: Any) -> dict[str, Any]:
    return base_config(tmp_path, port, buses, **mqtt)


def tls_gateway_mqtt(broker: SecureBroker, tmp_path: Path, password: str, ca: Path) -> dict[str, Any]:
    return {
        "username": "gw-test",
        "password_file": str(secret_file(tmp_path / "gw-mqtt.secret", password)),
        "tls": {"ca_file": str(ca)},
    }


async def test_gateway_and_ingest_over_tls_with_passwords_end_to_end(
    secure_broker: SecureBroker, influxdb: InfluxDB, tmp_path: Path
) -> None:
    meter = Dlt645Meter(ADDR, seed=3, start_time=time.time())
    mqtt = tls_gateway_mqtt(secure_broker, tmp_path, PASSWORDS["gw-test"], secure_broker.ca)
    cfg = ingest_config(
        secure_broker.tls_port,
        influxdb.url,
        influxdb.database,
        host="localhost",  # the certificate names both localhost and 127.0.0.1
        username="gridedge-ingest",
        password_file=str(secret_file(tmp_path / "ingest-mqtt.secret", PASSWORDS["gridedge-ingest"])),
        tls_ca_file=str(secure_broker.ca),
    )
    async with sim_line([meter], baud=9600, parity="E") as (path, _line), ingest_running(cfg) as ingest:
        plan = gateway_plan(
            gateway_doc(tmp_path, secure_broker.tls_port, [dlt645_bus(path)], **mqtt), tmp_path
        )
        async with gateway_running(plan) as gw:
            await wait_until(lambda: count(influxdb, "meter", "energy_import_kwh") >= 2, 20)
            assert gw.publisher.stats.connects == 1 and gw.publisher.stats.connect_failures == 0
    assert ingest.stats.deadletters == 0
    series = influxdb.query('SELECT last("energy_import_kwh") FROM "meter" GROUP BY "gw", "dev"')
    assert [s["tags"] for s in series] == [{"gw": "gw-test", "dev": ADDR}]
    log = secure_broker.log.read_text()
    assert f"on port {secure_broker.tls_port}" in log and "u'gw-test'" in log and "u'gridedge-ingest'" in log


async def test_wrong_password_is_refused_naming_the_broker(
    secure_broker: SecureBroker, influxdb: InfluxDB, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    where = f"127.0.0.1:{secure_broker.tls_port}"
    mqtt = tls_gateway_mqtt(secure_broker, tmp_path, "not-the-password", secure_broker.ca)
    plan = gateway_plan(gateway_doc(tmp_path, secure_broker.tls_port, [], **mqtt), tmp_path)
    async with gateway_running(plan) as gw:
        await wait_until(lambda: gw.publisher.stats.connect_failures >= 1, 10, interval=0.05)
        assert gw.publisher.stats.connects == 0
    gateway_errors = [r.getMessage() for r in caplog.records if r.name == "gateway.publisher"]
    assert any(where in e and "Not authorized" in e for e in gateway_errors), gateway_errors

    cfg = ingest_config(
        secure_broker.tls_port,
        influxdb.url,
        influxdb.database,
        username="gridedge-ingest",
        password="not-the-password",
        tls_ca_file=str(secure_broker.ca),
    )
    ingest = Ingest(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop), name="test:ingest")
    try:
        refused = [f"mqtt: {where} refused the connection: Not authorized"]
        await wait_until(lambda: any(r.getMessage() in refused for r in caplog.records), 10, interval=0.05)
        assert not ingest.subscriber.connected.is_set()
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def test_a_client_that_does_not_trust_the_ca_is_refused(
    secure_broker: SecureBroker, pki: Pki, influxdb: InfluxDB, tmp_path: Path
) -> None:
    # the gateway: the TLS handshake fails on its side, with the reason and the broker in its error
    mqtt = tls_gateway_mqtt(secure_broker, tmp_path, PASSWORDS["gw-test"], pki.rogue_ca)
    plan = gateway_plan(gateway_doc(tmp_path, secure_broker.tls_port, [], **mqtt), tmp_path)
    async with gateway_running(plan) as gw:
        await wait_until(lambda: gw.publisher.stats.connect_failures >= 1, 10, interval=0.05)
        assert gw.publisher.stats.connects == 0
        assert "CERTIFICATE_VERIFY_FAILED" in gw.publisher.stats.last_error, gw.publisher.stats.last_error
    handshakes = _unknown_ca_alerts(secure_broker)
    assert handshakes >= 1

    # the ingest: it tries (and retries) but never completes a connection
    cfg = ingest_config(
        secure_broker.tls_port,
        influxdb.url,
        influxdb.database,
        username="gridedge-ingest",
        password=PASSWORDS["gridedge-ingest"],
        tls_ca_file=str(pki.rogue_ca),
    )
    ingest = Ingest(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop), name="test:ingest")
    try:
        # the broker sees the client abort the handshake (first attempt and one retry)
        await wait_until(lambda: _unknown_ca_alerts(secure_broker) >= handshakes + 2, 15)
        assert not ingest.subscriber.connected.is_set()
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert "u'gridedge-ingest'" not in secure_broker.log.read_text()


def _unknown_ca_alerts(broker: SecureBroker) -> int:
    return broker.log.read_text().count("alert unknown ca")
