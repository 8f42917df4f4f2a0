"""Ed25519-signed commands end to end: a real Mosquitto, the gateway, a simulated DL/T 645 prepaid meter
on a pty, and the operator's `gridedge cmd --private-key` as a real process.

A gateway configured with public keys only runs an Ed25519-signed trip; refuses, each with its reason
in the result, counted, and without touching the bus: another key, another key's signature under a
listed key id, a tampered command, a replay, an HMAC-signed command, an unsigned one, an expired one
and one for another gateway. Rotation: with two public keys both sign; after the old one is removed
(restart) its commands are `unknown_key`. A gateway keeping HMAC beside Ed25519 accepts both. No log
line, and no output of the operator's tool, holds the private key."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from firmware_sim.devices.dlt645 import Dlt645Meter
from gateway.commands import key_id
from gateway.config import load_config
from gridedge.keys import generate
from gridedge.services import Mosquitto
from protocols.signing import Signer, new_command
from tests.gateway.helpers import base_config, recording, sim_line
from tests.gateway.test_commands import final, results, send
from tests.gateway.test_gateway_mqtt import running
from tests.security.test_key_rotation import online
from tests.security.test_tls_auth import ADDR, dlt645_bus

pytestmark = pytest.mark.integration

HMAC_KEY = b"hmac-command-key-5e21b07c9d"


def cmd(key: bytes | Signer, action: str = "alarm_on", gw: str = "gw-test", **over: Any) -> dict[str, Any]:
    fields = new_command(gw, ADDR, action, {}, key=key, now_ms=int(time.time() * 1000), ttl_ms=60_000)
    return {**fields, **over}


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


def write_config(tmp_path: Path, port: int, pty: str, commands: dict[str, Any]) -> Path:
    doc = base_config(tmp_path, port, [dlt645_bus(pty)])
    doc["gateway"]["require_ntp"] = False
    doc["buses"][0]["devices"][0].update(control=True, password="123456", interval_s=60)
    doc["commands"] = commands
    path = tmp_path / "gateway-ed25519.yaml"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def private_forms(signer: Signer) -> list[str]:
    """Every way the private key could be written into a log: PEM body, raw bytes in hex and base64."""
    from cryptography.hazmat.primitives import serialization

    pem = signer.pem().decode()
    key = serialization.load_pem_private_key(signer.pem(), password=None)
    raw = key.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    body = "".join(pem.splitlines()[1:-1])
    return [body, raw.hex(), base64.b64encode(raw).decode()]


async def operator_tool(port: int, key_file: Path, action: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gridedge",
        "-vv",
        "cmd",
        "--private-key",
        str(key_file),
        "--gw",
        "gw-test",
        "--dev",
        ADDR,
        "--action",
        action,
        "--port",
        str(port),
        "--json",
        env={k: v for k, v in os.environ.items() if k != "GRIDEDGE_COMMAND_KEY"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_ed25519_only_gateway_runs_signed_commands_and_refuses_the_rest(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice_file, bob_file = tmp_path / "ops" / "alice.key", tmp_path / "ops" / "bob.key"
    alice, bob = generate(alice_file, "alice"), generate(bob_file, "bob")
    mallory = Signer.generate("mallory")  # a key no gateway lists
    meter = Dlt645Meter(ADDR, seed=7, start_time=time.time())
    async with sim_line([meter], baud=9600, parity="E") as (pty, _line), recording(mosquitto.port) as rec:
        commands = {"hmac": False, "public_keys": [alice.public.line(), bob.public.line()]}
        config = write_config(tmp_path, mosquitto.port, pty, commands)
        async with running(load_config(config, environ={})) as gw:
            await rec.wait_for(lambda: rec.samples(ADDR), 10)  # subscribed to its commands

            trip = cmd(alice, "trip")
            await send(mosquitto.port, trip)
            done = await final(rec, trip)
            assert [r["status"] for r in results(rec, trip["id"])] == ["accepted", "done"]
            assert done["state"]["relay_commanded"] == "open"
            await until(lambda: meter.physics.actual_closed is False, 10)

            # the operator's tool, signing with the second listed key (a rotation under way)
            code, out = await operator_tool(mosquitto.port, bob_file, "alarm_on")
            assert code == 0, out
            assert [json.loads(line)["status"] for line in out.splitlines() if line.startswith("{")] == [
                "accepted",
                "done",
            ]
            assert meter.alarm is True

            # --- refused, each with its reason, none on the bus -------------------------------------
            tampered = {**cmd(alice, "alarm_off"), "action": "close"}
            forged = {**cmd(mallory, "close"), "kid": alice.kid}
            expired = cmd(alice, issued_at=int(time.time() * 1000) - 120_000)
            expired = alice.signed({**expired, "expires_at": expired["issued_at"] + 60_000})
            refused = [
                (cmd(mallory, "close"), f"unknown_key: key {mallory.kid!r} is not among"),
                (forged, f"bad_signature: bad signature for ed25519 key {alice.kid}"),
                (tampered, "bad_signature: bad signature for ed25519 key"),
                (
                    cmd(HMAC_KEY, "close"),
                    "alg_not_accepted: signed with hmac-sha256, this gateway accepts only",
                ),
                ({**cmd(alice, "close"), "sig": ""}, "bad_signature: unsigned"),
                (expired, "expired"),
                (cmd(alice, "close", gw="gw-other"), "wrong_gateway"),
            ]
            requests_before = meter.stats["requests"]
            for bad, _ in refused:
                await send(mosquitto.port, bad)
            await send(mosquitto.port, trip)  # the very same signed trip again
            for bad, reason in refused:
                got = await final(rec, bad)
                assert got["status"] == "rejected" and got["reason"].startswith(reason), (reason, got)
            await rec.wait_for(lambda: len(results(rec, trip["id"])) >= 3, 10)
            assert results(rec, trip["id"])[-1]["reason"].startswith("replayed")
            assert meter.stats["requests"] == requests_before, "a refused command reached the meter"
            assert gw.commands is not None
            assert gw.commands.stats.reasons == Counter(
                unknown_key=1, bad_signature=3, alg_not_accepted=1, expired=1, wrong_gateway=1, replayed=1
            )

    audit = [r.getMessage() for r in caplog.records if r.name == "gateway.audit"]
    assert any(
        trip["id"] in line and f"signed with key ed25519 {alice.kid} (alice)" in line for line in audit
    )
    assert any(f"signed with key ed25519 {bob.kid} (bob)" in line for line in audit), audit
    logged = "\n".join(r.getMessage() for r in caplog.records) + out
    for signer in (alice, bob):
        for form in private_forms(signer):
            assert form not in logged


async def test_rotation_and_hmac_beside_ed25519(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    old, new = Signer.generate("ops-2024"), Signer.generate("ops-2025")
    key_file = tmp_path / "command.key"
    key_file.write_bytes(HMAC_KEY + b"\n")
    key_file.chmod(0o600)
    keys_file = tmp_path / "command-keys.pub"
    meter = Dlt645Meter(ADDR, seed=8, start_time=time.time())

    async def accepted(signer: bytes | Signer, action: str) -> None:
        sent = cmd(signer, action)
        await send(mosquitto.port, sent)
        assert (await final(rec, sent))["status"] == "done", results(rec, sent["id"])

    async def refused(signer: bytes | Signer) -> str:
        sent = cmd(signer, "alarm_on")
        await send(mosquitto.port, sent)
        got = await final(rec, sent)
        assert got["status"] == "rejected"
        return str(got["reason"])

    async with sim_line([meter], baud=9600, parity="E") as (pty, _line), recording(mosquitto.port) as rec:
        # 1. a gateway with its HMAC key and the old public key: both accepted
        keys_file.write_text(f"{old.public.line()}\n")
        commands = {"key_file": str(key_file), "public_keys_file": str(keys_file)}
        config = write_config(tmp_path, mosquitto.port, pty, commands)
        async with running(load_config(config, environ={})):
            await rec.wait_for(lambda: rec.samples(ADDR), 10)
            await accepted(HMAC_KEY, "alarm_on")
            await accepted(old, "alarm_off")
            assert (await refused(new)).startswith(f"unknown_key: key {new.kid!r}")

        # 2. rotation under way: the new key added, HMAC retired from this gateway
        keys_file.write_text(f"{old.public.line()}\n{new.public.line()}\n")
        config = write_config(
            tmp_path, mosquitto.port, pty, {"hmac": False, "public_keys_file": str(keys_file)}
        )
        async with running(load_config(config, environ={})):
            await rec.wait_for(lambda: online(rec) >= 2, 10)  # its persistent session kept the subscription
            await accepted(old, "alarm_on")
            await accepted(new, "alarm_off")
            assert (await refused(HMAC_KEY)).startswith("alg_not_accepted: signed with hmac-sha256")

        # 3. rotation finished: the old key removed
        keys_file.write_text(f"{new.public.line()}\n")
        async with running(load_config(config, environ={})):
            await rec.wait_for(lambda: online(rec) >= 3, 10)
            assert (await refused(old)).startswith(f"unknown_key: key {old.kid!r}")
            await accepted(new, "alarm_on")

    audit = "\n".join(r.getMessage() for r in caplog.records if r.name == "gateway.audit")
    assert f"signed with key {key_id(HMAC_KEY)}" in audit
    assert f"signed with key ed25519 {old.kid} (ops-2024)" in audit
    assert f"signed with key ed25519 {new.kid} (ops-2025)" in audit
    assert HMAC_KEY.decode() not in "\n".join(r.getMessage() for r in caplog.records)
    assert meter.alarm is True
