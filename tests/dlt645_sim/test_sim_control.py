"""Driving a running simulator through its stdin: cut a meter's supply, restore it, press the button."""

from __future__ import annotations

import json
import subprocess
import sys


def gridedge_read(port: str, address: str, item: str) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gridedge",
            "read",
            "--protocol",
            "dlt645",
            "--port",
            port,
            "--address",
            address,
            "--item",
            item,
            "--reply-timeout",
            "0.3",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return json.loads(result.stdout)


def test_cut_and_restore_supply_over_stdin() -> None:
    sim = subprocess.Popen(
        [sys.executable, "-m", "gridedge", "sim", "dlt645", "--port", "pty", "--meter", "000000000001"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sim.stdin is not None and sim.stdout is not None
    try:
        port = sim.stdout.readline().strip()
        before = gridedge_read(port, "000000000001", "power_down_count")["value"]

        def command(line: str) -> str:
            sim.stdin.write(line + "\n")
            sim.stdin.flush()
            return sim.stdout.readline().strip()

        assert command("cut 000000000001") == "ok cut 000000000001"
        silent = gridedge_read(port, "000000000001", "power_down_count")
        assert silent["ok"] is False and silent["error_type"] == "ResponseTimeout"
        assert command("restore 000000000001") == "ok restore 000000000001"
        assert gridedge_read(port, "000000000001", "power_down_count")["value"] == before + 1
        assert command("press 000000000001").startswith("error press")
        assert command("cut 999999999999").startswith("error cut: name a device")
        assert command("fault 000000000001 refuse 1") == "ok fault 000000000001 refuse 1"
        assert gridedge_read(port, "000000000001", "voltage_a_v")["ok"] is False
        assert gridedge_read(port, "000000000001", "voltage_a_v")["ok"] is True
    finally:
        sim.terminate()
        sim.wait(10)
