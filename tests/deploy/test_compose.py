"""docker-compose.yml: validated by docker-compose itself (offline, no daemon needed) and structurally:
every file it mounts or builds from exists, every gridedge config it mounts passes the project's own
validators as the container sees it, and the broker enforces authentication with per-gateway ACLs
(checked against a real Mosquitto).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from firmware_sim.clock import SimClock
from firmware_sim.site import SiteConfig, build_line
from gateway.config import GatewayConfig, compile_plan
from gridedge.services import Mosquitto
from ingest.config import load_config as load_ingest
from ingest.topology import Topology
from protocols import config as conventions
from protocols.config import Locator

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
MOSQUITTO = REPO / "deploy" / "compose" / "mosquitto"
_DEFAULT_RE = re.compile(r"\$\{(\w+):-([^}]*)\}")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    """The service's environment with ${VAR:-default} resolved to the defaults (as with no .env)."""
    return {
        k: _DEFAULT_RE.sub(lambda mt: mt.group(2), str(v)) for k, v in service.get("environment", {}).items()
    }


def _binds(service: dict[str, Any]) -> list[tuple[Path, str]]:
    out = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            out.append((REPO / source, target))
    return out


def _container_fs(service: dict[str, Any], root: Path) -> Path:
    """Copy the service's bind-mounted files to `root` at their container paths."""
    for source, target in _binds(service):
        dest = root / target.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest)
        else:
            shutil.copy(source, dest)
    return root


def _compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], check=False, capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    pytest.fail("neither `docker-compose` nor `docker compose` is installed: apt-get install docker-compose")


# ---- docker-compose itself ----------------------------------------------------------------------


def test_docker_compose_config_accepts_the_file() -> None:
    cmd = [*_compose_command(), "-f", str(COMPOSE), "config"]
    done = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stderr}"
    normalised = yaml.safe_load(done.stdout)
    assert set(normalised["services"]) == {"mosquitto", "influxdb", "grafana", "ingest", "gateway"}
    env = normalised["services"]["ingest"]["environment"]
    assert (
        env["GRIDEDGE_INFLUX__TOKEN"]
        == normalised["services"]["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
    )


# ---- structure: always runs ---------------------------------------------------------------------


def test_every_referenced_file_exists() -> None:
    services = _compose()["services"]
    assert set(services) == {"mosquitto", "influxdb", "grafana", "ingest", "gateway"}
    for name, service in services.items():
        for source, _ in _binds(service):
            assert source.exists(), f"{name}: mounts {source}, which does not exist"
    for name in ("ingest", "gateway"):
        assert services[name]["build"] == "."
    dockerfile = (REPO / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for copied in line.split()[1:-1]:
                assert (REPO / copied).exists(), f"Dockerfile copies {copied}, which does not exist"


def test_ingest_config_is_valid_as_mounted(tmp_path: Path) -> None:
    service = _compose()["services"]["ingest"]
    root = _container_fs(service, tmp_path)
    config = root / service["command"][service["command"].index("-c") + 1].lstrip("/")
    cfg = load_ingest(config, environ=_env(service))
    assert cfg.influx.version == 2 and cfg.influx.org and cfg.influx.bucket and cfg.influx.token
    assert cfg.influx.url == "http://influxdb:8086" and cfg.mqtt.host == "mosquitto"
    assert cfg.mqtt.username == "gridedge-ingest" and cfg.mqtt.secret()
    influx = _env(_compose()["services"]["influxdb"])
    assert (cfg.influx.org, cfg.influx.bucket) == (
        influx["DOCKER_INFLUXDB_INIT_ORG"],
        influx["DOCKER_INFLUXDB_INIT_BUCKET"],
    )
    assert cfg.topology is not None
    assert Topology.load(cfg.topology).gateway_areas("gw-demo-01")


def test_gateway_and_simulator_configs_are_valid_as_mounted(tmp_path: Path) -> None:
    service = _compose()["services"]["gateway"]
    env = _env(service)
    root = _container_fs(service, tmp_path)
    sim_text = (root / env["SIM_CONFIG"].lstrip("/")).read_text()
    # gateway-sim.sh strips the gateway's GRIDEDGE_* overrides before starting the simulators
    assert "unset" in (REPO / "deploy" / "compose" / "gateway-sim.sh").read_text()
    sim_env = {k: v for k, v in env.items() if not k.startswith("GRIDEDGE_")}
    site = conventions.load(SiteConfig, sim_text, source="sim.yaml", environ=sim_env)
    lines = [build_line(line, SimClock(speed=site.speed)) for line in site.lines]
    assert all(line.devices for line in lines)

    gw_text = (root / env["GATEWAY_CONFIG"].lstrip("/")).read_text()
    cfg = conventions.load(GatewayConfig, gw_text, source="gateway.yaml", environ=env)
    # the ptys exist only while the simulators run: check_ports is what gateway-sim.sh waits for
    plan = compile_plan(cfg, Locator(gw_text, "gateway.yaml"), check_ports=False)
    assert not any(b.over for b in plan.budgets)
    assert {b.port for b in cfg.buses} <= {line.link for line in site.lines}
    assert cfg.mqtt.host == "mosquitto" and cfg.mqtt.username == cfg.gateway.id  # ACL patterns use %u
    assert cfg.mqtt.secret() == _env(_compose()["services"]["mosquitto"])["MQTT_GATEWAY_PASSWORD"]
    assert cfg.commands.keys()
    assert (REPO / "deploy" / "compose" / "gateway-sim.sh").stat().st_mode & 0o111


def test_grafana_provisioning_matches_the_mounts() -> None:
    service = _compose()["services"]["grafana"]
    targets = {target: source for source, target in _binds(service)}
    provider = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/gridedge.yaml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert targets[path] == REPO / "deploy" / "grafana" / "dashboards"
    datasource = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/gridedge.yaml").read_text())
    ds = datasource["datasources"][0]
    assert ds["type"] == "influxdb" and ds["jsonData"]["version"] == "InfluxQL"
    assert ds["jsonData"]["dbName"] == _env(_compose()["services"]["influxdb"])["INFLUXQL_DATABASE"]
    assert ds["secureJsonData"]["httpHeaderValue1"] == "Token $INFLUX_TOKEN"
    assert "INFLUX_TOKEN" in service["environment"]


def test_mosquitto_config_enforces_auth() -> None:
    conf = (MOSQUITTO / "mosquitto.conf").read_text().splitlines()
    assert "allow_anonymous false" in conf
    assert any(line.startswith("password_file ") for line in conf)
    assert any(line.startswith("acl_file ") for line in conf)
    service = _compose()["services"]["mosquitto"]
    assert service["entrypoint"][-1] == "/mosquitto/start.sh"


# ---- the ACL file against a real broker ---------------------------------------------------------


_IDS = itertools.count()


class _Client:
    """A paho MQTT v5 client: a refused publish gets PUBACK "not authorised" instead of silence."""

    def __init__(self, port: int, user: str | None, password: str | None) -> None:
        self.connected = threading.Event()
        self.refused = threading.Event()
        self.subscribed = threading.Event()
        self.acks: dict[int, bool] = {}
        self.acked = threading.Condition()
        self.received: list[str] = []
        self.arrived = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"t-{user}-{next(_IDS)}",
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        if user:
            self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        (self.refused if reason.is_failure else self.connected).set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.arrived:
            self.received.append(msg.topic)
            self.arrived.notify_all()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self.acked:
            self.acks[mid] = not reason.is_failure
            self.acked.notify_all()

    def publish(self, topic: str) -> bool:
        """Publish QoS 1 and return whether the broker accepted it."""
        mid = self.client.publish(topic, b"{}", qos=1).mid
        with self.acked:
            assert self.acked.wait_for(lambda: mid in self.acks, 5), f"no PUBACK for {topic}"
            return self.acks[mid]

    def wait_for(self, topic: str) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: topic in self.received, 5), f"{topic} never arrived"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.integration
def test_broker_acl_confines_each_gateway(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.touch(mode=0o600)
    users = {"gw-demo-01": "p1", "gw-other": "p2", "gridedge-ingest": "p3"}
    for user, password in users.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
    acl = tmp_path / "acl"
    shutil.copy(MOSQUITTO / "acl", acl)
    # as root, mosquitto drops to its own user, which cannot read pytest's private temporary directory
    keep_user = "user root\n" if os.geteuid() == 0 else ""
    broker = Mosquitto(
        tmp_path / "broker", extra_config=f"{keep_user}password_file {passwd}\nacl_file {acl}\n"
    )
    with broker:
        clients = [
            _Client(broker.port, None, None),
            _Client(broker.port, "gridedge-ingest", "p3"),
            _Client(broker.port, "gw-demo-01", "p1"),
            _Client(broker.port, "gw-demo-01", "wrong"),
        ]
        anonymous, ingest, gw, impostor = clients
        try:
            assert anonymous.refused.wait(5) and impostor.refused.wait(5)
            assert ingest.connected.wait(5) and gw.connected.wait(5)
            ingest.client.subscribe("gridedge/v1/#", qos=1)
            gw.client.subscribe("gridedge/v1/gw-demo-01/+/cmd", qos=1)
            assert ingest.subscribed.wait(5) and gw.subscribed.wait(5)
            # a refused publish ends that connection (mosquitto 2.0 + paho), so each gets its own client
            for topic in (
                "gridedge/v1/gw-other/status",  # another gateway's subtree
                "gridedge/v1/alerts/area_outage/area-a01",  # only the ingest raises alerts
                "gridedge/v1/gw-demo-01/m1/cmd",  # nor can a gateway command its own devices
            ):
                probe = _Client(broker.port, "gw-demo-01", "p1")
                clients.append(probe)
                assert probe.connected.wait(5)
                assert not probe.publish(topic), f"the broker accepted {topic} from gw-demo-01"
            assert gw.publish("gridedge/v1/gw-demo-01/status")
            assert gw.publish("gridedge/v1/gw-demo-01/m1/reading")
            assert ingest.publish("gridedge/v1/gw-demo-01/m1/cmd")
            ingest.wait_for("gridedge/v1/gw-demo-01/m1/reading")
            gw.wait_for("gridedge/v1/gw-demo-01/m1/cmd")
            assert not any("gw-other" in t or "alerts" in t for t in ingest.received)
        finally:
            for client in clients:
                client.close()
