"""`gridedge demo`: the whole pipeline on one machine, with a live view and scripted scenarios.

simulators on ptys (examples/sim.yaml) -> gateway (examples/gateway.yaml) -> a private Mosquitto ->
ingest, writer and alert engine (examples/demo/ingest.yaml) -> a private InfluxDB 1.x. The live view
shows per-bus reading rates, the latest readings, the hall queue and the alerts, all read back from
InfluxDB, and keys start the scenarios of examples/demo/scenarios.yaml (cut an area's power, run an
account into arrears and pay, a stuck relay, a dead meter, a hall rush, an unhappy customer, a broker
restart). `--headless --duration N` runs every scenario on a timeline instead, prints a summary (and
writes it as JSON with `--json-summary FILE`) and exits 1 when the pipeline did not do its job.

Everything runs under one work directory (default /tmp/gridedge; the demo's own state there is wiped at
start, so each run begins clean) on free loopback ports, so it never collides with services already on
the machine. Ctrl-C, `q` or the end of `--duration` stops it all; logs stay in the work directory.

Composition root: this module may start every service package (as subprocesses, exactly as a field
engineer would run them).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from .demo_scenarios import Publisher, Runner, Scenario, ScenarioError, SimControl, load_scenarios
from .demo_summary import collect, demo_devices, render
from .services import REPO_ROOT, InfluxDB, Mosquitto, ServiceError, stop_process

EXAMPLES = REPO_ROOT / "examples"
DEMO = EXAMPLES / "demo"
GATEWAY_YAML = EXAMPLES / "gateway.yaml"
# the demo's own state in the work directory: removed at start so every run begins clean
STATE = ("mosquitto", "influxdb", "state", "alerts.sqlite*", "costcontrol-ledger.sqlite*")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="simulators -> gateway -> Mosquitto -> ingest -> InfluxDB, with a live view and scenarios",
    )
    p.add_argument("--workdir", default="/tmp/gridedge", help="state, ptys, logs (default /tmp/gridedge)")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument(
        "--headless",
        action="store_true",
        help="no live view: run every scenario on a timeline, print a summary, exit 1 if the pipeline failed",
    )
    p.add_argument("--json-summary", metavar="FILE", help="also write the summary as JSON (with --headless)")
    p.add_argument("--scenarios", default=str(DEMO / "scenarios.yaml"), help="scenarios file")
    p.add_argument(
        "--no-live",
        action="store_true",
        help="print the view every 10 s instead of a live table (logs, pipes)",
    )
    p.set_defaults(handler=run_demo)


def _available_site(workdir: Path) -> tuple[Path, list[str]]:
    """examples/sim.yaml without the device kinds whose simulator is not in this build, its pty links
    in `workdir` (two demos at once, e.g. two test workers, must not take each other's lines)."""
    from importlib.util import find_spec

    site = yaml.safe_load((EXAMPLES / "sim.yaml").read_text())
    missing: list[str] = []
    for line in site["lines"]:
        if line.get("link"):
            line["link"] = str(workdir / Path(line["link"]).name)
        keep = []
        for group in line["devices"]:
            if find_spec(f"firmware_sim.devices.{group['kind']}") is None:
                missing.append(f"{line['name']}:{group['kind']}")
            else:
                keep.append(group)
        line["devices"] = keep
    site["lines"] = [line for line in site["lines"] if line["devices"]]
    path = workdir / "sim.yaml"
    path.write_text(yaml.safe_dump(site, sort_keys=False))
    return path, missing


@dataclass
class Demo:
    workdir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: list[IO[bytes]] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        self.logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridedge", *argv],
            stdin=subprocess.PIPE if name == "sim" else subprocess.DEVNULL,  # sim: control channel
            stdout=subprocess.PIPE if name == "sim" else log,
            stderr=log,
            env={**os.environ, **(env or {})},
            cwd=REPO_ROOT,
            start_new_session=True,  # Ctrl-C reaches the demo only; it stops the rest in order
        )
        self.procs[name] = proc
        return proc

    def stop(self) -> None:
        for name in ("gateway", "ingest", "sim"):
            stop_process(self.procs.get(name), signal.SIGTERM, 15)
        for log in self.logs:
            log.close()

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise ServiceError(
                    f"{name} exited with {proc.returncode}: see {self.workdir / (name + '.log')}"
                )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _clean(workdir: Path) -> None:
    for pattern in STATE:
        for path in workdir.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def _gateway_config(workdir: Path) -> Path:
    """examples/gateway.yaml with its ports on the pty links `_available_site` put in `workdir`."""
    doc = yaml.safe_load(GATEWAY_YAML.read_text())
    for bus in doc["buses"]:
        if str(bus["port"]).startswith("/tmp/gridedge/"):
            bus["port"] = str(workdir / Path(bus["port"]).name)
    path = workdir / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _buses() -> dict[str, list[str]]:
    doc = yaml.safe_load(GATEWAY_YAML.read_text())
    return {bus["name"]: [str(d["id"]) for d in bus["devices"]] for bus in doc["buses"]}


def run_demo(args: argparse.Namespace) -> int:
    # Ctrl-C and `kill` both stop everything in order (gateway first, so its spool drains)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        scenarios = load_scenarios(Path(args.scenarios))
    except ScenarioError as exc:
        print(f"gridedge demo: {exc}", file=sys.stderr)
        return 2
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    _clean(workdir)
    broker = Mosquitto(workdir / "mosquitto")
    influx = InfluxDB(workdir / "influxdb", database="gridedge")
    demo = Demo(workdir)
    runner: Runner | None = None
    publisher: Publisher | None = None
    started = time.time()
    failed = False
    try:
        broker.start()
        influx.start()
        print(f"mosquitto on 127.0.0.1:{broker.port}, influxd on {influx.url} (database gridedge)")
        site, missing = _available_site(workdir)
        if missing:
            print(f"simulators not in this build yet, skipped: {', '.join(missing)}")
        sim = demo.spawn("sim", ["sim", "run", "-c", str(site)])
        assert sim.stdout is not None
        for raw in sim.stdout:
            line = raw.decode().strip()
            print(f"sim: {line}")
            if line == "ready":
                break
        else:
            raise ServiceError(f"the simulators did not start: see {workdir / 'sim.log'}")
        mqtt = {"GRIDEDGE_MQTT__PORT": str(broker.port)}
        key_file = workdir / "command.key"
        if not key_file.exists():
            key_file.write_text(secrets.token_hex(16) + "\n")
        key_file.chmod(0o600)
        gateway_env = {
            **mqtt,
            "GRIDEDGE_COMMANDS__KEY_FILE": str(key_file),
            "GRIDEDGE_GATEWAY__STATE_DIR": str(workdir / "state"),
            "GRIDEDGE_SPOOL__PATH": str(workdir / "state" / "spool.sqlite3"),
        }
        ingest_cfg = DEMO / "ingest.yaml"
        ingest_env = {
            **mqtt,
            "GRIDEDGE_INFLUX__URL": influx.url,
            # alert state (and the cost-control ledger beside it) in the demo's own directory
            "GRIDEDGE_ALERTS__STATE_PATH": str(workdir / "alerts.sqlite"),
        }
        billing = subprocess.run(
            [sys.executable, "-m", "gridedge", "ingest", "billing", "import", str(EXAMPLES / "billing.csv"),
             "-c", str(ingest_cfg)],
            env={**os.environ, **ingest_env}, cwd=REPO_ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if billing.returncode != 0:
            raise ServiceError(f"billing import failed: {billing.stderr.strip()}")
        demo.spawn("ingest", ["-v", "ingest", "run", "-c", str(ingest_cfg)], ingest_env)
        # the ingest's sessions exist from their first SUBSCRIBE on: readings published before would be lost
        _wait_logged(demo, "ingest", "mqtt: subscribed to", 2)  # the writer and the alert engine
        demo.spawn("gateway", ["-v", "gateway", "run", "-c", str(_gateway_config(workdir))], gateway_env)
        print(f"gateway and ingest running; logs in {workdir}/. Ctrl-C stops everything.")
        print(
            f"send a signed command: gridedge cmd --port {broker.port} --key-file {key_file} "
            "--gw gw-demo-01 --dev 000000000001 --action trip"
        )
        _wait_logged(demo, "gateway", "mqtt: connected to", 1)
        time.sleep(1.0)  # its command subscription follows the connection
        publisher = Publisher(broker.port, "gw-demo-01", key_file.read_text().splitlines()[0].encode())
        assert demo.procs["sim"].stdout is not None
        sim_control = SimControl(demo.procs["sim"], workdir / "sim.log")
        runner = Runner(sim_control, publisher, broker, influx, since_ms=int(started * 1000))
        if args.headless:
            failed = not _headless(
                demo=demo, influx=influx, runner=runner, scenarios=scenarios, args=args, started=started
            )
        else:
            _watch(demo, influx, runner, scenarios, args.duration, live=not args.no_live, since=started)
    except KeyboardInterrupt:
        pass
    except ServiceError as exc:
        print(f"gridedge demo: {exc}", file=sys.stderr)
        failed = True
    finally:
        if runner is not None:
            runner.stopping.set()
            runner.join(5)
        if publisher is not None:
            publisher.close()
        demo.stop()
        influx.stop()
        broker.stop()
    return 1 if failed else 0


def _wait_logged(demo: Demo, name: str, marker: str, count: int, timeout: float = 60.0) -> None:
    """Until process `name` has logged `marker` `count` times (its MQTT connections or subscriptions: a
    command, billing message or reading sent earlier would find no session and be lost)."""
    deadline = time.monotonic() + timeout
    log = demo.workdir / f"{name}.log"
    while log.read_text(errors="replace").count(marker) < count:
        demo.check_alive()
        if time.monotonic() > deadline:
            raise ServiceError(f"{name} did not log {marker!r} within {timeout:.0f} s: see {log}")
        time.sleep(0.2)


def _headless(
    *,
    demo: Demo,
    influx: InfluxDB,
    runner: Runner,
    scenarios: dict[str, Scenario],
    args: argparse.Namespace,
    started: float,
) -> bool:
    """Run the timeline; True when the pipeline did its job."""
    duration = args.duration or 120.0
    timeline = sorted(
        ((sc.headless_at, sc) for sc in scenarios.values() if sc.headless_at is not None), key=lambda x: x[0]
    )
    begin = time.time()  # the scenarios' clock (and the duration) start once everything is connected
    deadline = begin + duration
    last_print = 0.0
    while time.time() < deadline:
        demo.check_alive()
        now = time.time() - begin
        while timeline and timeline[0][0] is not None and timeline[0][0] <= now:
            _, sc = timeline.pop(0)
            runner.start(sc)
            print(f"[{now:5.0f} s] scenario {sc.name}: {sc.title}", flush=True)
        if time.time() - last_print >= 10:
            last_print = time.time()
            states = ", ".join(f"{p.scenario} {p.status} ({p.note})" for p in runner.progress.values())
            print(f"[{now:5.0f} s] {states or 'starting'}", flush=True)
        time.sleep(0.5)
    runner.stopping.set()
    runner.join(5)
    summary = collect(
        influx,
        started_at=started,
        ended_at=time.time(),
        devices=demo_devices(GATEWAY_YAML),
        scenarios={n: sc for n, sc in scenarios.items() if sc.headless_at is not None},
        progress=runner.progress,
    )
    print(render(summary), flush=True)
    if args.json_summary:
        summary.write(Path(args.json_summary))
    return summary.ok


@contextlib.contextmanager
def _keys() -> Iterator[bool]:
    """Single key presses from a terminal (cbreak mode, restored on exit); False when not a terminal."""
    if not sys.stdin.isatty():
        yield False
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _watch(
    demo: Demo,
    influx: InfluxDB,
    runner: Runner,
    scenarios: dict[str, Scenario],
    duration: float,
    *,
    live: bool,
    since: float,
) -> None:
    from rich.console import Console
    from rich.live import Live

    from .demo_view import view

    by_key = {sc.key: sc for sc in scenarios.values()}
    pressed: list[str] = []
    quit_ = threading.Event()
    deadline = time.monotonic() + duration if duration else float("inf")
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # a log file or a pipe: do not cut the 12-digit meter addresses
    buses = _buses()
    with _keys() as interactive:
        if interactive and live:
            threading.Thread(target=_read_keys, args=(pressed, quit_), name="demo:keys", daemon=True).start()
        ctx: Any = (
            Live(console=console, refresh_per_second=1, screen=False) if live else contextlib.nullcontext()
        )
        last_print = 0.0
        with ctx as live_view:
            while time.monotonic() < deadline and not quit_.is_set():
                demo.check_alive()
                while pressed:
                    sc = by_key.get(pressed.pop(0))
                    if sc is not None:
                        runner.start(sc)
                shown = view(influx, int(since * 1000), buses, scenarios, runner.progress, fit=live)
                if live:
                    live_view.update(shown)
                elif time.monotonic() - last_print >= 10:
                    console.print(shown)
                    last_print = time.monotonic()
                quit_.wait(1)


def _read_keys(pressed: list[str], quit_: threading.Event) -> None:
    while not quit_.is_set():
        ch = sys.stdin.read(1)
        if not ch or ch in ("q", "Q"):
            quit_.set()
            return
        pressed.append(ch)
