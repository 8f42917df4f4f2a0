"""Command key rotation: the key file lists one key per line; during a rotation it holds the old and
the new key and a command signed with either is accepted, the audit log naming the key by its
fingerprint (never the key). Once the old key is removed (and the gateway restarted), a command
signed with it is rejected as `bad_signature`."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from firmware_sim.devices.dlt645 import Dlt645Meter
from gateway.commands import key_id
from gateway.config import load_config
from gridedge.services import Mosquitto
from tests.gateway.helpers import base_config, recording, sim_line
from tests.gateway.test_commands import command, final, results, send
from tests.gateway.test_gateway_mqtt import running
from tests.security.test_tls_auth import ADDR, dlt645_bus

pytestmark = pytest.mark.integration

OLD = b"old-command-key-4f1d2a9c7e"
NEW = b"new-command-key-b83e05d6a1"


def write_keys(path: Path, *keys: bytes) -> None:
    path.write_bytes(b"".join(k + b"\n" for k in keys))
    path.chmod(0o600)


def online(rec: Any) -> int:
    return sum(1 for p in rec.of("gw-test/status") if p["state"] == "online")


def test_key_id_is_short_stable_and_not_the_key() -> None:
    assert key_id(OLD) == key_id(OLD) != key_id(NEW)
    assert len(key_id(OLD)) == 8 and key_id(OLD) not in OLD.decode()


async def test_both_keys_work_during_a_rotation_and_the_old_one_stops_after(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    meter = Dlt645Meter(ADDR, seed=5, start_time=time.time())
    key_file = tmp_path / "command.key"
    config = tmp_path / "gateway-rotation.yaml"
    async with sim_line([meter], baud=9600, parity="E") as (path, _line), recording(mosquitto.port) as rec:
        doc = base_config(tmp_path, mosquitto.port, [dlt645_bus(path)])
        doc["gateway"]["require_ntp"] = False
        doc["buses"][0]["devices"][0].update(control=True, password="123456", interval_s=60)
        doc["commands"] = {"key_file": str(key_file)}
        config.write_text(yaml.safe_dump(doc))

        write_keys(key_file, OLD, NEW)  # rotation under way: both valid
        async with running(load_config(config, environ={})):
            # readings are pumped only once the gateway subscribed to its commands
            await rec.wait_for(lambda: rec.samples(ADDR), 10)
            by_old = command("alarm_on", key=OLD)
            await send(mosquitto.port, by_old)
            assert (await final(rec, by_old))["status"] == "done"
            by_new = command("alarm_off", key=NEW)
            await send(mosquitto.port, by_new)
            assert (await final(rec, by_new))["status"] == "done"

        write_keys(key_file, NEW)  # rotation finished: the old key is gone
        async with running(load_config(config, environ={})):
            await rec.wait_for(lambda: online(rec) >= 2, 10)  # its persistent session kept the subscription
            stale = command("alarm_on", key=OLD)
            await send(mosquitto.port, stale)
            refused = await final(rec, stale)
            assert [r["status"] for r in results(rec, stale["id"])] == ["rejected"]
            assert refused["reason"] == "bad_signature: bad signature"
            fresh = command("alarm_on", key=NEW)
            await send(mosquitto.port, fresh)
            assert (await final(rec, fresh))["status"] == "done"

    audit = [r.getMessage() for r in caplog.records if r.name == "gateway.audit"]
    accepted = [line for line in audit if "accepted" in line]
    assert any(by_old["id"] in line and f"key {key_id(OLD)}" in line for line in accepted), accepted
    assert any(by_new["id"] in line and f"key {key_id(NEW)}" in line for line in accepted), accepted
    assert any(fresh["id"] in line and f"key {key_id(NEW)}" in line for line in accepted), accepted
    assert any(stale["id"] in line and "rejected (bad_signature)" in line for line in audit), audit
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert OLD.decode() not in logged and NEW.decode() not in logged
    assert meter.alarm is True
