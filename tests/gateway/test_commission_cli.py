"""`gridedge read` / `gridedge scan` against simulators on real ptys, run as a field engineer runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.integration


def _sim(*argv: str) -> Iterator[str]:
    """A simulator subprocess on a pty; yields the pty path (its first stdout line)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridedge", "sim", *argv], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    yield proc.stdout.readline().strip()
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def modbus_sim() -> Iterator[str]:
    yield from _sim("modbus", "--port", "pty", "--unit", "3", "--unit", "7")


@pytest.fixture
def dlt645_sim() -> Iterator[str]:
    yield from _sim("dlt645", "--port", "pty", "--meter", "000000000001", "--meter", "000000000002")


def gridedge(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridedge", *argv], capture_output=True, text=True, timeout=60, check=False
    )


def test_read_a_point_by_name_and_a_raw_register(modbus_sim: str) -> None:
    by_name = gridedge(
        "read",
        "--protocol",
        "modbus",
        "--port",
        modbus_sim,
        "--unit",
        "3",
        "--map",
        "gridedge-prepaid",
        "--point",
        "voltage_a_v",
    )
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout.startswith("voltage_a_v = ") and by_name.stdout.strip().endswith(" V")
    raw = gridedge(
        "read",
        "--protocol",
        "modbus",
        "--port",
        modbus_sim,
        "--unit",
        "7",
        "--table",
        "input",
        "--address",
        "0x0E",
        "--type",
        "u32",
        "--word-order",
        "little",
        "--json",
    )
    answer = json.loads(raw.stdout)
    assert answer["ok"] and answer["address"] == 14 and answer["value"] > 0


def test_read_from_a_silent_unit_says_so(modbus_sim: str) -> None:
    result = gridedge(
        "read",
        "--protocol",
        "modbus",
        "--port",
        modbus_sim,
        "--unit",
        "5",
        "--map",
        "gridedge-prepaid",
        "--point",
        "voltage_a_v",
        "--json",
    )
    assert result.returncode == 1
    assert json.loads(result.stdout) == {
        "ok": False,
        "error": "unit-5 on cli: no reply",
        "error_type": "ResponseTimeout",
    }


def test_scan_lists_the_units_that_answer(modbus_sim: str) -> None:
    result = gridedge("scan", "--protocol", "modbus", "--port", modbus_sim, "--units", "1-10", "--json")
    assert result.returncode == 0, result.stderr
    assert [f["unit"] for f in json.loads(result.stdout)["found"]] == [3, 7]


def test_dlt645_read_by_name_and_by_di(dlt645_sim: str) -> None:
    by_name = gridedge(
        "read",
        "--protocol",
        "dlt645",
        "--port",
        dlt645_sim,
        "--address",
        "000000000002",
        "--item",
        "voltage_a_v",
    )
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout.startswith("voltage_a_v = ") and by_name.stdout.strip().endswith(" V")
    by_di = gridedge(
        "read",
        "--protocol",
        "dlt645",
        "--port",
        dlt645_sim,
        "--address",
        "000000000001",
        "--di",
        "04000503",
        "--json",
    )
    answer = json.loads(by_di.stdout)
    assert answer["ok"] and answer["di"] == "04000503" and answer["canonical"]["relay"] == "closed"


def test_dlt645_scan_over_an_address_range(dlt645_sim: str) -> None:
    result = gridedge(
        "scan",
        "--protocol",
        "dlt645",
        "--port",
        dlt645_sim,
        "--addresses",
        "000000000001-000000000004",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert [f["address"] for f in json.loads(result.stdout)["found"]] == ["000000000001", "000000000002"]
