"""One shell, several programs (issue 20, item 1): environment overrides for the sections of the other
programs' configs do not stop a program; a wrong key inside a section it has is an error naming the
variable. Every program's own loader, on the example files."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_sim.site import SiteConfig
from gateway.config import load_config as load_gateway
from ingest.config import load_config as load_ingest
from protocols import config as conventions
from protocols.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# what the README's convention invites: everything exported once, in one shell
SHARED_SHELL = {
    "GRIDEDGE_MQTT__PORT": "1884",
    "GRIDEDGE_SPOOL__PATH": "/tmp/gridedge-test/spool.sqlite3",  # the gateway's
    "GRIDEDGE_COMMANDS__KEY": "0123456789abcdef0123456789abcdef",  # the gateway's
    "GRIDEDGE_GATEWAY__STATE_DIR": "/tmp/gridedge-test/state",  # the gateway's
    "GRIDEDGE_INFLUX__URL": "http://127.0.0.1:8087",  # the ingest's
    "GRIDEDGE_ALERTS__STATE_PATH": "/tmp/gridedge-test/alerts.sqlite",  # the ingest's
    "GRIDEDGE_METRICS__INTERVAL_S": "5",  # the ingest's
    "GRIDEDGE_LOG_LEVEL": "debug",  # not an override (no section): never looked at
    "PATH": "/usr/bin",
}


def gateway_yaml(where: Path) -> Path:
    """examples/gateway.yaml with its serial ports (the simulators' pty links) present under `where`:
    the loader checks that each port exists."""
    text = (EXAMPLES / "gateway.yaml").read_text().replace("/tmp/gridedge/tty-", f"{where}/tty-")
    for name in re.findall(r"/tmp/gridedge/tty-([\w-]+)", (EXAMPLES / "gateway.yaml").read_text()):
        (where / f"tty-{name}").touch()
    path = where / "gateway.yaml"
    path.write_text(text)
    return path


def test_the_gateway_ignores_the_ingest_sections_and_applies_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="protocols.config"):
        plan = load_gateway(gateway_yaml(tmp_path), SHARED_SHELL)
    assert plan.config.mqtt.port == 1884
    assert str(plan.config.spool.path) == "/tmp/gridedge-test/spool.sqlite3"
    ignored = [r.getMessage() for r in caplog.records if "ignoring" in r.getMessage()]
    assert len(ignored) == 1, ignored  # said once, naming every variable left aside
    for name in ("GRIDEDGE_INFLUX__URL", "GRIDEDGE_ALERTS__STATE_PATH", "GRIDEDGE_METRICS__INTERVAL_S"):
        assert name in ignored[0]
    assert "GRIDEDGE_MQTT__PORT" not in ignored[0]


def test_the_ingest_ignores_the_gateway_sections_and_applies_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="protocols.config"):
        cfg = load_ingest(EXAMPLES / "ingest.yaml", SHARED_SHELL)
    assert cfg.mqtt.port == 1884
    assert cfg.influx.url == "http://127.0.0.1:8087"
    assert cfg.metrics.interval_s == 5
    ignored = " ".join(r.getMessage() for r in caplog.records if "ignoring" in r.getMessage())
    for name in ("GRIDEDGE_SPOOL__PATH", "GRIDEDGE_COMMANDS__KEY", "GRIDEDGE_GATEWAY__STATE_DIR"):
        assert name in ignored


def test_the_site_file_ignores_every_service_section() -> None:
    path = EXAMPLES / "sim.yaml"
    site = conventions.load(SiteConfig, path.read_text(), source=str(path), environ=SHARED_SHELL)
    assert site.lines


def test_the_simulators_start_in_a_shell_holding_the_services_overrides(tmp_path: Path) -> None:
    """`gridedge sim run` itself (its loader reads os.environ): it used to stop at
    `sim.yaml:1: mqtt: Extra inputs are not permitted`."""
    site = tmp_path / "sim.yaml"
    site.write_text(
        "lines:\n  - name: one\n    baud: 9600\n"
        "    devices: [{kind: dlt645, options: {meter: ['000000000001']}}]\n"
    )
    env = {**os.environ, **{k: v for k, v in SHARED_SHELL.items() if k != "PATH"}}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridedge", "sim", "run", "-c", str(site)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # ends at "ready", or at EOF when the process gave up
            seen.append(line.strip())
            if line.strip() == "ready":
                break
        assert "ready" in seen, "\n".join(seen)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("name", "program"),
    [
        ("GRIDEDGE_MQTT__PROT", "gateway"),
        ("GRIDEDGE_SPOOL__PAHT", "gateway"),
        ("GRIDEDGE_MQTT__PROT", "ingest"),
        ("GRIDEDGE_INFLUX__ULR", "ingest"),
    ],
)
def test_a_typo_inside_a_section_the_program_has_names_the_variable(
    tmp_path: Path, name: str, program: str
) -> None:
    env = {**SHARED_SHELL, name: "1"}
    with pytest.raises(ConfigError) as caught:
        if program == "gateway":
            load_gateway(gateway_yaml(tmp_path), env)
        else:
            load_ingest(EXAMPLES / "ingest.yaml", env)
    text = str(caught.value)
    assert f"(from environment {name})" in text, text
    assert "Extra inputs are not permitted" in text


def test_a_value_forced_into_a_mapping_names_the_variable() -> None:
    """GRIDEDGE_MQTT__PORT__X turns `mqtt.port` into a mapping: the error is the variable's, not the
    file's line."""
    with pytest.raises(ConfigError, match=r"from environment GRIDEDGE_MQTT__PORT__X\): mqtt\.port"):
        load_ingest(EXAMPLES / "ingest.yaml", {"GRIDEDGE_MQTT__PORT__X": "1"})
