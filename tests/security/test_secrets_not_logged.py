"""Secrets never appear in logs: the gateway and the ingest run as real processes (`python -m gridedge
-vv ... run`, debug logging) against a real Mosquitto (TLS, password file, the deploy ACL) and influxd,
with a command key (two, mid-rotation), MQTT passwords and an InfluxDB password and token given
through files and the environment. A signed command and a badly signed one are sent; then every line
the processes and the broker wrote is searched for every secret."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import ssl
import sys
import time
from pathlib import Path

import aiomqtt
import pytest
import yaml

from firmware_sim.devices.dlt645 import Dlt645Meter
from gateway.commands import key_id
from gridedge.services import InfluxDB
from tests.gateway.helpers import sim_line
from tests.gateway.test_commands import command
from tests.ingest.helpers import count, wait_until
from tests.security.conftest import PASSWORDS
from tests.security.pki import ACL, Pki, start_secure_broker
from tests.security.test_tls_auth import ADDR, dlt645_bus, secret_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OLD_KEY = "cmdkey-old-6a0f3e9b1c2d"
NEW_KEY = "cmdkey-new-d94b7e20a5f1"
INFLUX_PASSWORD = "influx-Pa55-e7c1b9d4"
INFLUX_TOKEN = "influx-token-2b8f6c0e9a"


async def spawn(name: str, args: list[str], env: dict[str, str], logs: Path) -> asyncio.subprocess.Process:
    out = (logs / f"{name}.out").open("wb")
    err = (logs / f"{name}.err").open("wb")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gridedge", "-vv", *args, env={**os.environ, **env}, stdout=out, stderr=err
        )
    finally:
        out.close()
        err.close()


async def stop(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), 30)


async def operator_send(port: int, ca: Path, cmd: dict) -> dict:
    """Publish a command as the operator over TLS; return its final result."""
    tls = ssl.create_default_context(cafile=str(ca))
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=f"operator-{cmd['id']}",
        username="gridedge-operator",
        password=PASSWORDS["gridedge-operator"],
        tls_context=tls,
    ) as client:
        await client.subscribe(f"gridedge/v1/gw-test/{cmd['dev']}/cmd/result", qos=1)
        await client.publish(f"gridedge/v1/gw-test/{cmd['dev']}/cmd", json.dumps(cmd), qos=1)
        async with asyncio.timeout(20):
            async for msg in client.messages:
                result = json.loads(bytes(msg.payload))  # type: ignore[arg-type]
                if result["id"] == cmd["id"] and result["status"] in ("done", "failed", "rejected"):
                    return result
    raise AssertionError("unreachable")


async def test_no_secret_in_any_log_of_a_full_run(tmp_path: Path, pki: Pki, influxdb: InfluxDB) -> None:
    users = {**PASSWORDS}
    broker = start_secure_broker(tmp_path / "broker", pki, users, acl=ACL)
    logs = tmp_path / "logs"
    logs.mkdir()
    key_file = secret_file(tmp_path / "command.key", f"{OLD_KEY}\n{NEW_KEY}")
    meter = Dlt645Meter(ADDR, seed=9, start_time=time.time())
    procs: list[asyncio.subprocess.Process] = []
    try:
        async with sim_line([meter], baud=9600, parity="E") as (pty, _line):
            bus = dlt645_bus(pty)
            bus["devices"][0].update(control=True, password="123456")
            gateway_yaml = tmp_path / "gateway.yaml"
            gateway_yaml.write_text(
                yaml.safe_dump(
                    {
                        "gateway": {
                            "id": "gw-test",
                            "state_dir": str(tmp_path / "state"),
                            "require_ntp": False,
                        },
                        "mqtt": {
                            "host": "localhost",
                            "port": broker.tls_port,
                            "username": "gw-test",
                            "tls": {"ca_file": str(pki.ca)},
                        },
                        "spool": {"path": str(tmp_path / "state" / "spool.sqlite3")},
                        "commands": {"key_file": str(key_file)},
                        "buses": [bus],
                    }
                )
            )
            ingest_yaml = tmp_path / "ingest.yaml"
            ingest_yaml.write_text(
                yaml.safe_dump(
                    {
                        "mqtt": {
                            "host": "127.0.0.1",
                            "port": broker.tls_port,
                            "client_id": "gridedge-ingest-sec",
                            "username": "gridedge-ingest",
                            "password_file": str(
                                secret_file(tmp_path / "ingest-mqtt.secret", PASSWORDS["gridedge-ingest"])
                            ),
                            "tls_ca_file": str(pki.ca),
                        },
                        "influx": {
                            "url": influxdb.url,
                            "database": influxdb.database,
                            "username": "gridedge",
                            "token_file": str(secret_file(tmp_path / "influx.token", INFLUX_TOKEN)),
                        },
                        "metrics": {"interval_s": 1},
                    }
                )
            )
            gateway_env = {"GRIDEDGE_MQTT__PASSWORD": PASSWORDS["gw-test"]}
            ingest_env = {"GRIDEDGE_INFLUX__PASSWORD": INFLUX_PASSWORD}
            procs.append(await spawn("ingest", ["ingest", "run", "-c", str(ingest_yaml)], ingest_env, logs))
            procs.append(
                await spawn("gateway", ["gateway", "run", "-c", str(gateway_yaml)], gateway_env, logs)
            )

            await wait_until(lambda: count(influxdb, "meter", "energy_import_kwh") >= 1, 30, interval=0.2)
            good = command("alarm_on", key=NEW_KEY.encode())
            assert (await operator_send(broker.tls_port, pki.ca, good))["status"] == "done"
            bad = command("alarm_off", key=b"not-" + OLD_KEY.encode())
            rejected = await operator_send(broker.tls_port, pki.ca, bad)
            assert rejected["status"] == "rejected" and rejected["reason"].startswith("bad_signature")
            codes = [await stop(p) for p in reversed(procs)]
            procs.clear()
            assert codes == [0, 0]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        broker.stop()

    outputs = {path.name: path.read_text(errors="replace") for path in sorted(logs.iterdir())}
    outputs["mosquitto.log"] = broker.log.read_text(errors="replace")
    gateway_log = outputs["gateway.err"]
    assert "mqtt: connected to localhost" in gateway_log and "accepted (signed with key" in gateway_log
    assert f"accepted (signed with key {key_id(NEW_KEY.encode())})" in gateway_log
    assert "rejected (bad_signature)" in gateway_log
    assert ("running as root" in gateway_log) is (os.geteuid() == 0)
    assert "mqtt: connected to 127.0.0.1" in outputs["ingest.err"]
    secrets = {
        "command key (old)": OLD_KEY,
        "command key (new)": NEW_KEY,
        **{f"MQTT password of {user}": pw for user, pw in PASSWORDS.items()},
        "InfluxDB password": INFLUX_PASSWORD,
        "InfluxDB token": INFLUX_TOKEN,
        "InfluxDB basic auth": base64.b64encode(f"gridedge:{INFLUX_PASSWORD}".encode()).decode(),
    }
    leaks = [
        f"{what} in {name}"
        for name, text in outputs.items()
        for what, value in secrets.items()
        if value in text
    ]
    assert not leaks, leaks
    assert sum(len(t) for t in outputs.values()) > 1000  # the processes did log
