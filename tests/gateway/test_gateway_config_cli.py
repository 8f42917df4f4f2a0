"""`gridedge gateway check`: one clear message per config problem, non-zero exit; a good config passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def check(tmp_path: Path, doc: dict) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return subprocess.run(
        [sys.executable, "-m", "gridedge", "gateway", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def doc(port: str, devices: list[dict], **bus: object) -> dict:
    return {
        "gateway": {"id": "gw-1"},
        "buses": [{"name": "rs485-1", "port": port, "baud": 9600, "parity": "N", "devices": devices, **bus}],
    }


def meter(unit: int, **extra: object) -> dict:
    return {"kind": "modbus", "id": f"mb-{unit}", "unit": unit, "interval_s": 60, **extra}


def test_good_config_prints_the_airtime_budget(tmp_path: Path, pty_pair) -> None:
    result = check(tmp_path, doc(pty_pair.path, [meter(1), meter(2)]))
    assert result.returncode == 0, result.stderr
    assert "rs485-1" in result.stdout and "ok" in result.stdout


@pytest.mark.parametrize(
    ("devices", "bus", "expected"),
    [
        ([meter(1, colour="red")], {}, "colour"),
        ([meter(1), {**meter(1), "id": "mb-1b"}], {}, "Modbus address 1 on bus rs485-1 is used by mb-1"),
        ([meter(u, interval_s=1) for u in range(1, 40)], {"baud": 1200}, "over capacity"),
        ([meter(1, map="no-such-map")], {}, "no such map file"),
    ],
    ids=["unknown-field", "duplicate-address", "over-capacity", "unknown-map"],
)
def test_each_problem_is_named(tmp_path: Path, pty_pair, devices, bus, expected) -> None:
    result = check(tmp_path, doc(pty_pair.path, devices, **bus))
    assert result.returncode == 2
    assert expected in result.stderr, result.stderr
    assert "gateway.yaml:" in result.stderr, "the message names the file and line"
    assert result.stderr.count("\n  ") == 1, f"one message per problem: {result.stderr}"


def test_missing_port_is_named(tmp_path: Path) -> None:
    result = check(tmp_path, doc("/dev/ttyUSB-nonexistent", [meter(1)]))
    assert result.returncode == 2 and "/dev/ttyUSB-nonexistent does not exist" in result.stderr
