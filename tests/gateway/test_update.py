"""Signed software updates on a running gateway (issue 24 item 3), end to end.

Real parts: release artifacts built by scripts/build_release.py from copies of this source tree (one
with a patched version, one whose `gateway run` exits 3 at start), signed by `gridedge release sign`,
a gateway process started from `releases/<version>/venv` through the `current` link, a Modbus meter
on a pty, the real Mosquitto. Each release's venv is a real venv with the gridedge wheel installed
offline from the artifact (`update.share_site_packages`: the dependencies are this test venv's, so
no wheel of cryptography / pydantic is built or downloaded per test; the code that runs is the
release's own wheel, as the version in the gateway's status shows).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import itertools
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml

from firmware_sim.devices.modbus import ModbusPrepaidMeter
from gateway.release import Layout, install, version_of
from gridedge.services import Mosquitto
from protocols import signing, topics
from tests.gateway.helpers import Recorder, base_config, gateway_plan, recording, sim_line
from tests.gateway.test_gateway_mqtt import modbus_bus

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BASE, GOOD, BROKEN = "1.0.0", "1.0.1", "1.0.2"
RESULT_TOPIC = topics.cmd_result_topic("gw-test", "gateway")
RELEASE_UPDATE = (sys.executable, "-m", "gridedge", "release", "update", "--gw", "gw-test")


def _source_copy(dest: Path, version: str, *, broken: bool = False) -> Path:
    """This working tree's packages with VERSION = `version` (and, broken, `gateway run` exiting 3)."""
    keep = ("pyproject.toml", "README.md", "protocols", "gateway", "gridedge", "ingest", "firmware_sim")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    dest.mkdir(parents=True)
    for name in keep:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    version_py = dest / "protocols" / "version.py"
    text = version_py.read_text()
    version_py.write_text(text.replace('VERSION = "', f'VERSION = "{version}"  # was "', 1))
    if broken:
        cli = dest / "gateway" / "cli.py"
        marker = "def run_gateway(args: argparse.Namespace) -> int:\n"
        assert marker in cli.read_text()
        cli.write_text(cli.read_text().replace(marker, marker + "    raise SystemExit(3)  # a bad build\n"))
    return dest


def _build(work: Path, version: str, *, broken: bool = False) -> Path:
    source = _source_copy(work / f"src-{version}", version, broken=broken)
    argv = [sys.executable, str(ROOT / "scripts" / "build_release.py"), "--source", str(source)]
    out = subprocess.run(
        [*argv, "--out", str(work / "dist"), "--platform", "native", "--no-deps"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("releases")
    return {
        BASE: _build(work, BASE),
        GOOD: _build(work, GOOD),
        BROKEN: _build(work, BROKEN, broken=True),
    }


def _sign(artifact: Path, key: Path) -> dict[str, Any]:
    """`gridedge release sign` (the operator's tool), returning the .sig document."""
    subprocess.run(
        [sys.executable, "-m", "gridedge", "release", "sign", str(artifact), "--private-key", str(key)],
        check=True,
        capture_output=True,
    )
    return json.loads(artifact.with_name(artifact.name + ".sig").read_text())


def _key(where: Path, name: str) -> tuple[Path, signing.Signer]:
    path = where / f"{name}.key"
    subprocess.run(
        [sys.executable, "-m", "gridedge", "keys", "generate", "--out", str(path), "--label", name],
        check=True,
        capture_output=True,
    )
    return path, signing.Signer.from_bytes(path.read_bytes(), str(path), name)


@contextlib.contextmanager
def http_server(folder: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="test:http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


async def _send(port: int, signer: signing.Signer, params: dict[str, Any]) -> str:
    now = int(time.time() * 1000)
    command = signing.new_command(
        "gw-test", "gateway", "update", params, key=signer, now_ms=now, ttl_ms=600_000
    )
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"ops-{command['id']}") as client:
        await client.publish(topics.cmd_topic("gw-test", "gateway"), json.dumps(command), qos=1)
    return str(command["id"])


def _results(rec: Recorder, cmd_id: str) -> list[dict[str, Any]]:
    return [p for t, p, _ in rec.messages if t == RESULT_TOPIC and p.get("id") == cmd_id]


async def _final(rec: Recorder, cmd_id: str, timeout: float) -> dict[str, Any]:
    final = ("done", "failed", "rejected")
    await rec.wait_for(lambda: any(r["status"] in final for r in _results(rec, cmd_id)), timeout)
    return next(r for r in _results(rec, cmd_id) if r["status"] in final)


def _status(rec: Recorder) -> dict[str, Any]:
    statuses = [p for t, p, _ in rec.messages if t == topics.status_topic("gw-test")]
    return statuses[-1] if statuses else {"state": "", "version": ""}


async def _publishing_as(rec: Recorder, version: str, timeout: float) -> None:
    """The gateway is online as `version` and a reading taken after that arrives."""
    await rec.wait_for(
        lambda: _status(rec)["state"] == "online" and _status(rec)["version"] == version, timeout
    )
    since = _status(rec)["ts"]
    await rec.wait_for(lambda: any(s["ts"] > since for s in rec.samples("mb-1")), 10)


@pytest.mark.timeout(360)
async def test_signed_update_installs_then_a_broken_one_is_rolled_back(
    mosquitto: Mosquitto, tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    ops_key, ops = _key(tmp_path, "ops")
    _stranger_key, stranger = _key(tmp_path, "stranger")
    layout = Layout(tmp_path / "opt")
    # the first install, as install.sh does it: a release venv from the artifact, then `current`
    base = install(artifacts[BASE], layout, BASE, share_site_packages=True)
    layout.switch(base)
    served = tmp_path / "served"
    served.mkdir()
    for version in (GOOD, BROKEN):
        shutil.copy2(artifacts[version], served / artifacts[version].name)
    sigs = {v: _sign(served / artifacts[v].name, ops_key) for v in (GOOD, BROKEN)}

    meter = ModbusPrepaidMeter(1, seed=1, start_time=time.time())
    async with sim_line([meter]) as (path, _line), recording(mosquitto.port) as rec:
        doc = base_config(tmp_path, mosquitto.port, [modbus_bus(path, [1])])
        doc["commands"] = {"hmac": False, "public_keys": [ops.public.line()]}
        doc["update"] = {"root": str(layout.root), "trial_s": 20, "share_site_packages": True}
        gateway_plan(doc, tmp_path)  # validates
        config = tmp_path / "gateway.yaml"
        config.write_text(yaml.safe_dump(doc))
        exe = layout.gridedge(layout.current)
        log = (tmp_path / "gateway.log").open("ab")
        proc = subprocess.Popen([str(exe), "-v", "gateway", "run", "-c", str(config)], stdout=log, stderr=log)
        try:
            await _publishing_as(rec, BASE, 30)
            await _refusals(rec, mosquitto.port, ops, stranger, served, sigs[GOOD], layout)

            # a good release, fetched over HTTP, sent with the operator's tool (which waits for the end):
            # on trial, healthy, switched, running in the same process
            good = served / artifacts[GOOD].name
            operator = ["--private-key", str(ops_key), "--port", str(mosquitto.port), "--json"]
            with http_server(served) as url:
                sent = await asyncio.to_thread(
                    subprocess.run,
                    [*RELEASE_UPDATE, "--url", f"{url}/{good.name}", "--signature", f"{good}.sig", *operator],
                    capture_output=True,
                    text=True,
                    timeout=150,
                )
            assert sent.returncode == 0, sent.stdout + sent.stderr
            cmd_id = json.loads(sent.stdout.splitlines()[-1])["id"]
            result = await _final(rec, cmd_id, 10)
            assert result["status"] == "done", result
            assert result["state"] == {"version": GOOD, "previous": BASE}
            assert [r["status"] for r in _results(rec, cmd_id)] == ["accepted", "done"]
            await _publishing_as(rec, GOOD, 30)
            assert proc.poll() is None, "the old process execs the new release: same PID for systemd"
            assert layout.current.resolve() == layout.release(GOOD).resolve()
            assert layout.previous.resolve() == base.resolve()

            # a release that exits at start: its trial fails, current stays, the running one serves on
            broken = served / artifacts[BROKEN].name
            cmd_id = await _send(mosquitto.port, ops, {"url": broken.as_uri(), "signature": sigs[BROKEN]})
            result = await _final(rec, cmd_id, 120)
            assert result["status"] == "failed", result
            assert "exited with 3" in result["reason"] and f"{GOOD} running again" in result["reason"]
            assert result["state"] == {"version": GOOD, "previous": GOOD}
            await _publishing_as(rec, GOOD, 30)
            assert layout.current.resolve() == layout.release(GOOD).resolve()
            assert not layout.release(BROKEN).exists(), "a failed release is removed"
            assert layout.release(BASE).exists(), "previous is kept (an operator's way back)"
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    # readings went on through both handovers (1 s polls; measured: 0.9-1.2 s without a poll at each)
    taken = sorted({s["ts"] for s in rec.samples("mb-1")})
    assert max(b - a for a, b in itertools.pairwise(taken)) < 5000, taken
    for topic, payload, _ in rec.messages:  # everything published decodes with the contract
        topics.decode_payload(topics.parse_topic(topic), json.dumps(payload).encode())


async def _refusals(
    rec: Recorder,
    port: int,
    ops: signing.Signer,
    stranger: signing.Signer,
    served: Path,
    good_sig: dict[str, Any],
    layout: Layout,
) -> None:
    """Refused before anything is unpacked or installed: a signature by a key the gateway does not
    hold (nothing even fetched), an HMAC-signed artifact, one byte changed in the artifact."""
    good = served / good_sig["artifact"]
    downloads = Path(layout.root).parent / "state" / "updates"
    by_stranger = stranger.signed({k: v for k, v in good_sig.items() if k not in ("alg", "kid", "sig")})
    cmd_id = await _send(port, ops, {"url": good.as_uri(), "signature": by_stranger})
    result = await _final(rec, cmd_id, 20)
    assert result["status"] == "rejected" and result["reason"].startswith("unknown_key"), result
    assert not list(downloads.glob("*")) if downloads.exists() else True

    hmac_doc = signing.signed(
        {k: v for k, v in good_sig.items() if k not in ("alg", "kid", "sig")}, b"k" * 32
    )
    cmd_id = await _send(port, ops, {"url": good.as_uri(), "signature": hmac_doc})
    result = await _final(rec, cmd_id, 20)
    assert result["status"] == "rejected" and result["reason"].startswith("alg_not_accepted"), result
    assert "HMAC" in result["reason"]

    tampered = served / "tampered" / good.name
    tampered.parent.mkdir()
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    cmd_id = await _send(port, ops, {"url": tampered.as_uri(), "signature": good_sig})
    result = await _final(rec, cmd_id, 20)
    assert result["status"] == "rejected" and result["reason"].startswith("hash_mismatch"), result
    assert not layout.release(version_of(good.name)).exists(), "nothing installed"
    assert not list(downloads.glob("*")), "the tampered download is removed"
