"""Local Mosquitto, InfluxDB 1.x and Alertmanager processes for tests, the demo and the soak harness.

Each service runs on a free loopback port with its config and data in a directory of its own, is
started with `start()` (which waits until it accepts connections) and stopped by PID with `stop()`;
`stop()` + `start()` restarts it on the same port with the same data, which the fault tests use.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

REPO_ROOT = Path(__file__).resolve().parent.parent
BROKER_SETTINGS = REPO_ROOT / "deploy" / "mosquitto.conf"


class ServiceError(RuntimeError):
    """A local service could not be found or started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str, package: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceError(f"{name} not found: install Debian's '{package}' package (apt-get install {package})")


def stop_process(
    proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    """Send `sig` and wait up to `timeout`; SIGKILL what is still running then. None or exited: nothing."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise ServiceError(f"not accepting connections on port {port} after {timeout} s")


@dataclass
class _Process:
    workdir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _spawn(self, argv: list[str], log_name: str) -> None:
        log = self.workdir / log_name
        with log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc, sig, timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass
class Mosquitto(_Process):
    """A private Mosquitto broker: `deploy/mosquitto.conf` settings + a loopback listener."""

    extra_config: str = ""

    def start(self) -> None:
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        conf = self.workdir / "mosquitto.conf"
        persistence = self.workdir / "data"
        persistence.mkdir(exist_ok=True)
        lines = [
            BROKER_SETTINGS.read_text() if BROKER_SETTINGS.exists() else "",
            f"persistence_location {persistence}/",
            # started as root, mosquitto drops to the `mosquitto` user and then cannot save its
            # database (sessions, queued messages) in a root-owned directory: a restart would lose them
            "user root" if os.geteuid() == 0 and "user " not in self.extra_config else "",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true" if "password_file" not in self.extra_config else "",
            self.extra_config,
        ]
        conf.write_text("\n".join(lines) + "\n")
        self._spawn([find_binary("mosquitto", "mosquitto"), "-c", str(conf)], "mosquitto.log")
        assert self.proc is not None
        try:
            _wait_port(self.port, self.proc, self.workdir / "mosquitto.log", 10)
        except ServiceError as exc:
            self.stop()
            raise ServiceError(f"mosquitto: {exc}") from None


@dataclass
class InfluxDB(_Process):
    """A private influxd 1.x with meta/data/wal under `workdir` and reporting disabled.

    `admin=(user, password)` turns authentication on, as a production influxd has it: `start()` creates
    that admin user (influxd allows it without credentials while no user exists; a restart finds it
    there) and every `query()` / `write()` sends its credentials (the `u` / `p` parameters). Without
    `admin` there is no authentication and the requests carry no credentials.
    """

    database: str = "gridedge"
    rpc_port: int = 0
    admin: tuple[str, str] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.rpc_port = self.rpc_port or free_port()
        conf = self.workdir / "influxdb.conf"
        conf.write_text(_influx_conf(self.workdir, self.port, self.rpc_port, auth=self.admin is not None))
        self._spawn([find_binary("influxd", "influxdb"), "-config", str(conf)], "influxd.log")
        assert self.proc is not None
        try:
            _wait_port(self.port, self.proc, self.workdir / "influxd.log", 30)
            self._wait_ping()
            self._create_admin()
            self.query(f'CREATE DATABASE "{self.database}"', method="POST")
        except ServiceError as exc:
            self.stop()
            raise ServiceError(f"influxd: {exc}") from None

    def _wait_ping(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{self.url}/ping", timeout=1) as resp,
            ):
                if resp.status == 204:
                    return
            time.sleep(0.1)
        raise ServiceError("did not answer /ping")

    def _create_admin(self) -> None:
        """Create the `admin` user with all privileges. influxd accepts this one statement without
        credentials while it has no user; on a restart (same data) the user exists, our credentials are
        checked, and the statement changes nothing (same user, password and privileges)."""
        if self.admin is None:
            return
        user, password = (v.replace("\\", "\\\\") for v in self.admin)
        user, password = user.replace('"', '\\"'), password.replace("'", "\\'")
        self.query(f"CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES", method="POST")

    def _credentials(self) -> dict[str, str]:
        """`admin`'s credentials as influxd's `u` / `p` parameters; none without `admin`."""
        return {} if self.admin is None else {"u": self.admin[0], "p": self.admin[1]}

    def query(self, q: str, *, method: str = "GET", epoch: str = "ms") -> list[dict[str, object]]:
        """Run InfluxQL; return the statement results' series (raises ServiceError on an error)."""
        params = {"q": q, "db": self.database, "epoch": epoch}
        data = None
        in_url = self._credentials()  # influxd reads u / p from the URL only, never from a form body
        if method == "POST":
            data = urllib.parse.urlencode(params).encode()
        else:
            in_url = params | in_url
        url = f"{self.url}/query" + (f"?{urllib.parse.urlencode(in_url)}" if in_url else "")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise ServiceError(f"query {q!r}: HTTP {exc.code}: {exc.read()[:300]!r}") from None
        series: list[dict[str, object]] = []
        for result in body.get("results", []):
            if "error" in result:
                raise ServiceError(f"query {q!r}: {result['error']}")
            series.extend(result.get("series", []))
        return series

    def write(self, lines: str, precision: str = "ms") -> None:
        params = urllib.parse.urlencode({"db": self.database, "precision": precision, **self._credentials()})
        req = urllib.request.Request(f"{self.url}/write?{params}", data=lines.encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                if resp.status != 204:
                    raise ServiceError(f"write: HTTP {resp.status}")
        except urllib.error.HTTPError as exc:
            raise ServiceError(f"write: HTTP {exc.code}: {exc.read()[:300]!r}") from None


@dataclass
class Alertmanager(_Process):
    """A private Prometheus Alertmanager (Debian's `prometheus-alertmanager`): HA clustering off, its
    data (silences, notification log) under `workdir`, and `config` as its alertmanager.yml, by default
    one route sending every alert, ungrouped and at once, to the webhook `receiver_url` (resolutions
    too). `alerts()` and `silence()` use its v2 API."""

    receiver_url: str = ""
    config: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        conf = self.workdir / "alertmanager.yml"
        conf.write_text(self.config or _alertmanager_conf(self.receiver_url))
        argv = [
            find_binary("prometheus-alertmanager", "prometheus-alertmanager"),
            f"--config.file={conf}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # no gossip port: several may run side by side
            "--log.level=warn",
        ]
        self._spawn(argv, "alertmanager.log")
        assert self.proc is not None
        try:
            _wait_port(self.port, self.proc, self.workdir / "alertmanager.log", 20)
            self._wait_ready()
        except ServiceError as exc:
            self.stop()
            raise ServiceError(f"alertmanager: {exc}") from None

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp,
            ):
                if resp.status == 200:
                    return
            time.sleep(0.1)
        raise ServiceError("not ready (/-/ready)")

    def api(self, method: str, path: str, body: object = None) -> object:
        """One v2 API call (`path` after /api/v2); the decoded JSON answer (raises ServiceError)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/api/v2{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                answer = resp.read()
        except urllib.error.HTTPError as exc:
            raise ServiceError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:300]!r}") from None
        return json.loads(answer) if answer else None

    def alerts(self, **params: str) -> list[dict[str, object]]:
        """GET /api/v2/alerts (active, silenced and inhibited ones unless `params` say otherwise)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        answer = self.api("GET", f"/alerts{query}")
        assert isinstance(answer, list)
        return answer

    def silence(self, matchers: dict[str, str], seconds: float = 3600.0, comment: str = "test") -> str:
        """Silence the alerts whose labels equal `matchers` for `seconds`; the silence's id."""
        now = time.time()
        answer = self.api(
            "POST",
            "/silences",
            {
                "matchers": [{"name": k, "value": v, "isRegex": False} for k, v in matchers.items()],
                "startsAt": _rfc3339(now),
                "endsAt": _rfc3339(now + seconds),
                "createdBy": "gridedge",
                "comment": comment,
            },
        )
        assert isinstance(answer, dict)
        return str(answer["silenceID"])


def _rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"


def _alertmanager_conf(receiver_url: str) -> str:
    """Every alert to one webhook, each alone (group_by '...') and at once; resolutions too. Without a
    URL the receiver has no integration (Alertmanager still keeps and serves the alerts)."""
    hook = (
        f'\n    webhook_configs:\n      - url: "{receiver_url}"\n        send_resolved: true'
        if receiver_url
        else ""
    )
    return f"""route:
  receiver: hook
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook{hook}
"""


def _influx_conf(workdir: Path, port: int, rpc_port: int, *, auth: bool = False) -> str:
    """influxd's config; `auth` adds `auth-enabled = true` to [http] (otherwise unchanged)."""
    auth_line = "\n  auth-enabled = true" if auth else ""
    return f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{workdir}/meta"

[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"

[coordinator]
  write-timeout = "10s"

[retention]
  enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
  max-body-size = 0{auth_line}

[logging]
  level = "warn"

[continuous_queries]
  enabled = false
"""
