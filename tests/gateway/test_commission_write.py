"""`gridedge commission`: device templates, and a config written from what answered on real lines.

Simulators run as subprocesses on ptys (a stable `--link` path, as a `/dev/serial/by-id/` name is on a
gateway), `commission` runs as a field engineer runs it, the gateway polls the written config and
publishes to a real Mosquitto. Appending after one more meter was connected adds only that meter and
leaves every other line of the file as it was.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.commission import configtext
from gateway.commission.templates import SHIPPED, check, load_template
from gateway.config import load_config
from gridedge.services import Mosquitto
from protocols import kinds
from protocols.errors import ConfigError
from tests.gateway.helpers import Recorder, recording
from tests.gateway.test_gateway_mqtt import running

TEMPLATES = sorted(SHIPPED.glob("*.yaml"))
METERS = ["000000000001", "000000000002", "000000000003"]


def inserted(old: str, new: str) -> list[str]:
    """The lines `new` has in one block more than `old`; fails if anything else differs."""
    a, b = old.splitlines(), new.splitlines()
    ops = [op for op in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if op[0] != "equal"]
    assert len(ops) == 1 and ops[0][0] == "insert", ops
    return b[ops[0][3] : ops[0][4]]


# ---- templates -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_every_shipped_template_gives_a_device_its_kind_accepts(path: Path) -> None:
    template = load_template(str(path))  # loading checks the example against the model and the driver
    device = check(template)
    assert device.kind == template.kind and device.id
    assert template.spec.title and template.name == path.stem


def test_there_is_a_template_for_every_registered_kind() -> None:
    assert {load_template(str(p)).kind for p in TEMPLATES} == set(kinds.names())


def test_a_template_with_an_unknown_item_or_placeholder_is_refused(tmp_path: Path) -> None:
    text = (SHIPPED / "dlt645-1p-prepaid.yaml").read_text()
    bad_item = tmp_path / "bad-item.yaml"
    bad_item.write_text(text.replace("overdraft_cny", "overdraft_yen"))
    with pytest.raises(ConfigError, match="overdraft_yen"):
        load_template(str(bad_item))
    bad_placeholder = tmp_path / "bad-placeholder.yaml"
    bad_placeholder.write_text(text.replace('id: "{address}"', 'id: "m-{serial}"'))
    with pytest.raises(ConfigError, match=r"placeholder \{serial\} is not something the dlt645 scan finds"):
        load_template(str(bad_placeholder))


def test_append_keeps_every_other_line_and_comment() -> None:
    text = (Path(__file__).parents[2] / "examples" / "devices" / "dlt645.yaml").read_text()
    entry = configtext.Entry({"kind": "dlt645", "id": "000000000009", "address": "000000000009"}, "new")
    out = configtext.append(text, 0, {}, [entry], "scan")
    assert inserted(text, out) == [
        "      # new",
        "      - kind: dlt645",
        '        id: "000000000009"',
        '        address: "000000000009"',
    ]
    devices = yaml.safe_load(out)["buses"][0]["devices"]
    assert devices[-1]["id"] == "000000000009" and devices[:-1] == yaml.safe_load(text)["buses"][0]["devices"]


# ---- on real lines -----------------------------------------------------------------------------------


@contextmanager
def sim(*argv: str) -> Iterator[str]:
    """A simulator subprocess on a pty; yields its path (the `--link`, printed once it serves)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridedge", "sim", *argv], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)


def gridedge(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridedge", *argv], capture_output=True, text=True, timeout=120, check=False
    )


def commission(*argv: str) -> dict[str, Any]:
    result = gridedge("commission", *argv, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def dlt645_line(link: Path, meters: list[str]) -> list[str]:
    return ["dlt645", "--port", "pty", "--link", str(link), *(a for m in meters for a in ("--meter", m))]


async def write_and_poll(
    config: Path, dlt: Path, mb: Path, mosquitto: Mosquitto, tmp_path: Path
) -> tuple[str, Recorder]:
    """Three meters on the DL/T 645 line: `--write`; the Modbus line: `--append`; `gateway check`
    accepts the result and the gateway on it publishes a reading of every device."""
    with sim(*dlt645_line(dlt, METERS)):
        written = await asyncio.to_thread(
            commission,
            "--port",
            str(dlt),
            "--template",
            "dlt645-1p-prepaid",
            "--addresses",
            "000000000001-000000000006",
            "--write",
            str(config),
            "--gateway-id",
            "gw-test",
            "--mqtt-host",
            "127.0.0.1",
            "--mqtt-port",
            str(mosquitto.port),
            "--state-dir",
            str(tmp_path / "state"),
        )
        assert written["written"] == str(config) and written["added"] == 3
        appended = await asyncio.to_thread(
            commission,
            "--port",
            str(mb),
            "--template",
            "modbus-gridedge-prepaid",
            "--units",
            "1-8",
            "--append",
            str(config),
        )
        assert [d["device"] for d in appended["devices"]] == ["mb-3", "mb-7"] and appended["added"] == 2
        check = await asyncio.to_thread(gridedge, "gateway", "check", "-c", str(config))
        assert check.returncode == 0 and check.stdout.count(" ok ") == 2, check.stdout + check.stderr
        text = config.read_text()
        assert "# 000000000002: found " in text and "by template dlt645-1p-prepaid: ok" in text
        devices = [*METERS, "mb-3", "mb-7"]
        async with recording(mosquitto.port) as rec, running(load_config(config)):
            await rec.wait_for(lambda: all(rec.samples(d) for d in devices), 30)
    return text, rec


@pytest.mark.integration
async def test_commission_writes_a_config_that_polls_every_device_and_append_adds_only_the_new_meter(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config, dlt, mb = tmp_path / "gateway.yaml", tmp_path / "rs485-1", tmp_path / "rs485-2"
    with sim("modbus", "--port", "pty", "--link", str(mb), "--unit", "3", "--unit", "7"):
        text, rec = await write_and_poll(config, dlt, mb, mosquitto, tmp_path)
        assert {"energy_import_kwh", "balance_cny"} <= set(rec.samples("000000000003")[0]["values"])
        # one more meter on the DL/T 645 line: re-running with --append adds it and nothing else
        with sim(*dlt645_line(dlt, [*METERS, "000000000004"])):
            again = await asyncio.to_thread(
                commission,
                "--port",
                str(dlt),
                "--template",
                "dlt645-1p-prepaid",
                "--addresses",
                "000000000001-000000000006",
                "--append",
                str(config),
            )
    results = {d["device"]: d["result"] for d in again["devices"]}
    assert results == {**{m: f"already configured ({m})" for m in METERS}, "000000000004": "added"}
    after = config.read_text()
    new_lines = inserted(text, after)
    assert (
        new_lines[0].startswith("      # 000000000004: found ") and '        id: "000000000004"' in new_lines
    )
    buses = yaml.safe_load(after)["buses"]
    assert [d["id"] for d in buses[0]["devices"]] == [*METERS, "000000000004"]
    assert [d["id"] for d in buses[1]["devices"]] == ["mb-3", "mb-7"]


@pytest.mark.integration
def test_nothing_new_leaves_the_file_alone_and_a_missing_meter_is_listed(tmp_path: Path) -> None:
    config, dlt = tmp_path / "gateway.yaml", tmp_path / "rs485-1"
    with sim(*dlt645_line(dlt, METERS)):
        commission(
            "--port",
            str(dlt),
            "--template",
            "dlt645-1p-prepaid",
            "--addresses",
            "000000000001-000000000003",
            "--write",
            str(config),
            "--gateway-id",
            "gw-test",
            "--state-dir",
            str(tmp_path / "state"),
        )
    before = config.read_bytes()
    with sim(*dlt645_line(dlt, METERS[:2])):
        answer = commission(
            "--port",
            str(dlt),
            "--template",
            "dlt645-1p-prepaid",
            "--addresses",
            "000000000001-000000000003",
            "--append",
            str(config),
        )
        refused = gridedge(
            "commission",
            "--port",
            str(dlt),
            "--template",
            "dlt645-1p-prepaid",
            "--write",
            str(config),
            "--gateway-id",
            "gw-test",
        )
    assert answer["added"] == 0 and answer["written"] is None and config.read_bytes() == before
    assert {d["device"]: d["result"] for d in answer["devices"]}[
        "000000000003"
    ] == "configured, not found by this scan"
    assert refused.returncode == 2 and f"use --append {config}" in refused.stderr


@pytest.mark.integration
def test_a_config_over_its_airtime_budget_is_not_written(tmp_path: Path) -> None:
    template = tmp_path / "too-often.yaml"
    template.write_text(
        (SHIPPED / "dlt645-1p-prepaid.yaml").read_text().replace("interval_s: 300", "interval_s: 1")
    )
    config, dlt = tmp_path / "gateway.yaml", tmp_path / "rs485-1"
    with sim(*dlt645_line(dlt, METERS)):
        result = gridedge(
            "commission",
            "--port",
            str(dlt),
            "--template",
            str(template),
            "--addresses",
            "000000000001-000000000003",
            "--write",
            str(config),
            "--gateway-id",
            "gw-test",
        )
    assert result.returncode == 2 and "over capacity" in result.stderr and str(config) in result.stderr
    assert not config.exists() and not list(tmp_path.glob(".gateway.yaml.*"))


@pytest.mark.integration
def test_a_hall_is_one_device_and_dlt698_meters_are_found_through_the_registry(tmp_path: Path) -> None:
    config, hall, d698 = tmp_path / "gateway.yaml", tmp_path / "hall-line", tmp_path / "rs485-698"
    with (
        sim("hall", "--port", "pty", "--link", str(hall), "--counters", "2"),
        sim("dlt698", "--port", "pty", "--baud", "2400", "--link", str(d698), "--meter", "000000000011"),
    ):
        commission(
            "--port",
            str(hall),
            "--template",
            "hall",
            "--hall-addresses",
            "1-40",
            "--write",
            str(config),
            "--gateway-id",
            "gw-test",
            "--state-dir",
            str(tmp_path / "state"),
        )
        answer = commission(
            "--port",
            str(d698),
            "--template",
            "dlt698-1p-prepaid",
            "--addresses",
            "000000000010-000000000012",
            "--append",
            str(config),
        )
    assert [(d["device"], d["result"]) for d in answer["devices"]] == [("000000000011", "added")]
    buses = yaml.safe_load(config.read_text())["buses"]
    (hall_device,) = buses[0]["devices"]
    assert hall_device["dispenser"] == 1 and hall_device["counters"] == [
        {"counter": 1, "keypad": 2, "rating_pad": 33},
        {"counter": 2, "keypad": 3, "rating_pad": 34},
    ]
    assert buses[1]["devices"][0]["kind"] == "dlt698" and buses[1]["devices"][0]["control"] is True
