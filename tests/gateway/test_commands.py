"""Signed commands end to end: a real broker, the gateway, a simulated DL/T 645 prepaid meter on a pty.

Signed trip / close / allow_close / keep-power run on the meter and report `done` with status word 3
read back; keep-power makes the meter refuse a trip and the result says so. Unsigned, wrongly signed,
expired, replayed, wrong-device and unsupported commands are rejected with distinct reasons, and none
of them reaches the bus."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from firmware_sim.devices.dlt645 import Dlt645Meter
from firmware_sim.prepaid import RELAY_SETTLE_S
from gridedge.services import Mosquitto
from protocols.signing import signed
from tests.gateway.helpers import base_config, gateway_plan, recording, sim_line
from tests.gateway.test_gateway_mqtt import running

pytestmark = pytest.mark.integration

KEY = b"test-command-key-0123456789"
ADDR = "000000000001"


def command(
    action: str, *, dev: str = ADDR, key: bytes | None = KEY, ttl_ms: int = 60_000, **over: Any
) -> dict:
    now = int(time.time() * 1000)
    fields: dict[str, Any] = {
        "id": uuid.uuid4().hex[:12],
        "gw": "gw-test",
        "dev": dev,
        "action": action,
        "params": {},
        "issued_at": now,
        "expires_at": now + ttl_ms,
        "nonce": uuid.uuid4().hex,
        **over,
    }
    return signed(fields, key) if key else {**fields, "sig": ""}


async def send(port: int, cmd: dict, topic_dev: str | None = None) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"operator-{uuid.uuid4().hex[:6]}") as client:
        await client.publish(f"gridedge/v1/gw-test/{topic_dev or cmd['dev']}/cmd", json.dumps(cmd), qos=1)


def results(rec, cmd_id: str) -> list[dict]:
    return [p for p in rec.of("/cmd/result") if p.get("id") == cmd_id]


async def final(rec, cmd: dict, timeout: float = 15) -> dict:
    await rec.wait_for(
        lambda: any(r["status"] in ("done", "failed", "rejected") for r in results(rec, cmd["id"])), timeout
    )
    return results(rec, cmd["id"])[-1]


async def test_signed_commands_run_and_bad_ones_are_refused(mosquitto: Mosquitto, tmp_path: Path) -> None:
    meter = Dlt645Meter(ADDR, seed=2, start_time=time.time())
    async with sim_line([meter], baud=2400, parity="E") as (path, _line), recording(mosquitto.port) as rec:
        bus = {
            "name": "area-1",
            "port": path,
            "baud": 2400,
            "parity": "E",
            "devices": [
                {
                    "kind": "dlt645",
                    "id": ADDR,
                    "address": ADDR,
                    "interval_s": 60,
                    "control": True,
                    "password": "123456",
                    "items": ["energy_import_kwh"],
                }
            ],
        }
        doc = base_config(tmp_path, mosquitto.port, [bus])
        doc["commands"] = {"key": KEY.decode()}
        plan = gateway_plan(doc, tmp_path)
        async with running(plan) as gw:
            await rec.wait_for(lambda: rec.samples(ADDR), 10)

            trip = command("trip")
            await send(mosquitto.port, trip)
            done = await final(rec, trip)
            assert [r["status"] for r in results(rec, trip["id"])] == ["accepted", "done"]
            assert done["state"]["relay_commanded"] == "open" and "status_word_3" in done["state"]
            await asyncio.sleep(RELAY_SETTLE_S + 0.2)
            assert meter.physics.actual_closed is False, "the relay opened in the simulator"

            allow = command("allow_close")
            await send(mosquitto.port, allow)
            assert (await final(rec, allow))["status"] == "done"
            assert meter.press_button(time.time()) is True
            close = command("close")
            await send(mosquitto.port, close)
            assert (await final(rec, close))["status"] == "done"

            # the operator's tool: signs, publishes, waits for the final result, exit 0 for done
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gridedge",
                "cmd",
                "--gw",
                "gw-test",
                "--dev",
                ADDR,
                "--action",
                "alarm_on",
                "--port",
                str(mosquitto.port),
                "--json",
                env={**os.environ, "GRIDEDGE_COMMAND_KEY": KEY.decode()},
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0, out
            assert [json.loads(line)["status"] for line in out.splitlines()] == ["accepted", "done"]
            assert meter.alarm is True

            keep = command("keep_power_on")
            await send(mosquitto.port, keep)
            assert (await final(rec, keep))["state"]["keep_power"] is True
            refused_trip = command("trip")
            await send(mosquitto.port, refused_trip)
            failed = await final(rec, refused_trip)
            assert failed["status"] == "failed" and "refused" in failed["reason"]
            assert failed["state"]["relay_commanded"] == "closed", "still commanded closed"

            # --- commands that must never reach the bus -------------------------------------------
            requests_before = meter.stats["requests"]
            replay = command("close")
            expired = command("trip", issued_at=int(time.time() * 1000) - 120_000, ttl_ms=-60_000)
            bad = [
                (command("trip", key=None), "bad_signature: unsigned"),
                (command("trip", key=b"another key"), "bad_signature: bad signature"),
                (expired, "expired"),
                (command("trip", dev="000000000009"), "wrong_device"),
                (command("reboot"), "unsupported"),
            ]
            await send(mosquitto.port, replay)
            await final(rec, replay)
            requests_before = meter.stats["requests"]
            for cmd, _ in bad:
                await send(mosquitto.port, cmd)
            await send(mosquitto.port, replay)  # the very same signed command again
            wrong_topic = command("trip")
            await send(mosquitto.port, wrong_topic, topic_dev="000000000002")
            for cmd, reason in bad:
                got = await final(rec, cmd)
                assert got["status"] == "rejected" and got["reason"].startswith(reason), got
            await rec.wait_for(lambda: len(results(rec, replay["id"])) >= 3, 10)  # accepted, done, rejected
            assert results(rec, replay["id"])[-1]["reason"].startswith("replayed")
            got = await final(rec, wrong_topic)
            assert got["reason"].startswith("wrong_device: payload device")
            assert meter.stats["requests"] == requests_before, "a refused command reached the meter"
            assert gw.commands is not None and gw.commands.stats.rejected == len(bad) + 2
