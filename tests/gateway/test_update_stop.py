"""A gateway stopped (SIGTERM, or a config change restarting it) while an update installs: no trial, no
exec, and the command still gets its final result, published when the gateway runs again. In process
(`serve`, as gateway.remote_config runs it), a real broker and a pty meter; the release is a minimal
wheel built here (its code never runs: the point is what happens around its install)."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import aiomqtt
import pytest

from firmware_sim.devices.modbus import ModbusPrepaidMeter
from gateway.release import Layout, sign_artifact
from gridedge.services import Mosquitto
from protocols import signing, topics
from tests.gateway.helpers import base_config, gateway_plan, recording, sim_line
from tests.gateway.test_gateway_mqtt import modbus_bus, running

pytestmark = [pytest.mark.integration]

RESULTS = topics.cmd_result_topic("gw-test", "gateway")


def minimal_wheel(folder: Path, version: str) -> Path:
    """A valid, empty gridedge wheel (pip installs it; it holds no code)."""
    path = folder / f"gridedge-{version}-py3-none-any.whl"
    info = f"gridedge-{version}.dist-info"
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: gridedge\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        wheel.writestr(f"{info}/RECORD", "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"]))
    return path


@pytest.mark.timeout(120)
async def test_a_stop_while_the_release_installs_fails_the_update_without_a_trial(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    ops = signing.Signer.generate("ops")
    artifact = minimal_wheel(tmp_path, "9.9.9")
    sig = sign_artifact(artifact, ops)
    layout = Layout(tmp_path / "opt")
    meter = ModbusPrepaidMeter(1, seed=1, start_time=time.time())
    async with sim_line([meter]) as (path, _line), recording(mosquitto.port) as rec:
        doc = base_config(tmp_path, mosquitto.port, [modbus_bus(path, [1])])
        doc["commands"] = {"hmac": False, "public_keys": [ops.public.line()]}
        doc["update"] = {"root": str(layout.root), "share_site_packages": True}
        plan = gateway_plan(doc, tmp_path)
        params = {"url": artifact.as_uri(), "signature": sig}
        command = signing.new_command(
            "gw-test", "gateway", "update", params, key=ops, now_ms=int(time.time() * 1000), ttl_ms=60_000
        )

        def results() -> list[dict[str, object]]:
            return [p for t, p, _ in rec.messages if t == RESULTS and p["id"] == command["id"]]

        async with running(plan):
            await rec.wait_for(lambda: rec.samples("mb-1"), 10)
            async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="ops") as client:
                await client.publish(topics.cmd_topic("gw-test", "gateway"), json.dumps(command), qos=1)
            await rec.wait_for(lambda: [r["status"] for r in results()] == ["accepted"], 10)
            # leaving `running` stops the gateway now, while the venv is being made (seconds)
        assert layout.release("9.9.9").is_dir(), "the install went to its end"
        assert not layout.current.exists(), "no trial, no switch"
        async with running(plan):  # the next run publishes the result the stopped one spooled
            await rec.wait_for(lambda: len(results()) == 2, 10)
    final = results()[-1]
    assert final["status"] == "failed" and "stopped or restarted before the trial" in str(final["reason"])
