"""`gridedge demo`: the whole pipeline on one machine, with a live view.

simulators on ptys (examples/sim.yaml) -> gateway (examples/gateway.yaml) -> a private Mosquitto ->
ingest (examples/ingest.yaml) -> a private InfluxDB 1.x; the terminal shows the latest readings from
InfluxDB and the gateway's status from MQTT. Everything runs under one work directory (default
/tmp/gridedge) on free loopback ports, so it never collides with services already on the machine.
Ctrl-C (or `--duration`) stops it all; logs stay in the work directory.

Composition root: this module may start every service package (as subprocesses, exactly as a field
engineer would run them).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from .services import REPO_ROOT, InfluxDB, Mosquitto, ServiceError

EXAMPLES = REPO_ROOT / "examples"
SIM_KINDS_AVAILABLE = ("dlt645", "modbus", "hall")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo", help="simulators -> gateway -> Mosquitto -> ingest -> InfluxDB, with a live view"
    )
    p.add_argument("--workdir", default="/tmp/gridedge", help="state, ptys, logs (default /tmp/gridedge)")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument(
        "--no-live", action="store_true", help="print a summary every 10 s instead of a live table"
    )
    p.set_defaults(handler=run_demo)


def _available_site(workdir: Path) -> tuple[Path, list[str]]:
    """examples/sim.yaml without the device kinds whose simulator is not in this build."""
    from importlib.util import find_spec

    site = yaml.safe_load((EXAMPLES / "sim.yaml").read_text())
    missing: list[str] = []
    for line in site["lines"]:
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
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for log in self.logs:
            log.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(args: argparse.Namespace) -> int:
    # Ctrl-C and `kill` both stop everything in order (gateway first, so its spool drains)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(workdir / "mosquitto")
    influx = InfluxDB(workdir / "influxdb", database="gridedge")
    demo = Demo(workdir)
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
        gateway_env = {**mqtt, "GRIDEDGE_COMMANDS__KEY_FILE": str(key_file)}
        demo.spawn("gateway", ["-v", "gateway", "run", "-c", str(EXAMPLES / "gateway.yaml")], gateway_env)
        ingest_env = {
            **mqtt,
            "GRIDEDGE_INFLUX__URL": influx.url,
            # alert state (and the cost-control ledger beside it) in the demo's own directory
            "GRIDEDGE_ALERTS__STATE_PATH": str(workdir / "alerts.sqlite"),
        }
        demo.spawn("ingest", ["-v", "ingest", "run", "-c", str(EXAMPLES / "ingest.yaml")], ingest_env)
        print(f"gateway and ingest running; logs in {workdir}/. Ctrl-C stops everything.")
        print(
            f"send a signed command: gridedge cmd --port {broker.port} --key-file {key_file} "
            "--gw gw-demo-01 --dev 000000000001 --action trip"
        )
        _watch(demo, influx, args.duration, live=not args.no_live)
    except KeyboardInterrupt:
        pass
    except ServiceError as exc:
        print(f"gridedge demo: {exc}", file=sys.stderr)
        return 1
    finally:
        demo.stop()
        influx.stop()
        broker.stop()
    return 0


def _watch(demo: Demo, influx: InfluxDB, duration: float, *, live: bool) -> None:
    from rich.console import Console
    from rich.live import Live

    deadline = time.monotonic() + duration if duration else float("inf")
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # a log file or a pipe: do not cut the 12-digit meter addresses
    ctx: Any = Live(console=console, refresh_per_second=1) if live else contextlib.nullcontext()
    last_print = 0.0
    with ctx as view:
        while time.monotonic() < deadline:
            for name, proc in demo.procs.items():
                if proc.poll() is not None:
                    raise ServiceError(
                        f"{name} exited with {proc.returncode}: see {demo.workdir / (name + '.log')}"
                    )
            table = _table(influx)
            if live:
                view.update(table)
            elif time.monotonic() - last_print >= 10:
                console.print(table)
                last_print = time.monotonic()
            time.sleep(1)


def _table(influx: InfluxDB) -> Any:
    from rich.table import Table

    table = Table(title="gridedge demo: latest readings in InfluxDB (database gridedge)")
    for col in ("device", "time", "voltage A (V)", "power (kW)", "energy (kWh)", "balance (CNY)", "relay"):
        table.add_column(col, no_wrap=True, justify="left" if col in ("device", "relay") else "right")
    try:
        series = influx.query(
            'SELECT last("voltage_a_v"), last("power_active_kw"), last("energy_import_kwh"), '
            'last("balance_cny"), last("relay") FROM "meter" WHERE time > now() - 10m GROUP BY "dev"'
        )
        # with several selectors InfluxQL returns the range start as the time: ask for it on its own
        times = influx.query(
            'SELECT last("voltage_a_v") FROM "meter" WHERE time > now() - 10m GROUP BY "dev"'
        )
        health = influx.query('SELECT last("messages_in"), last("deadletters") FROM "ingest"')
    except ServiceError as exc:
        table.caption = f"InfluxDB: {exc}"
        return table
    when_of = {s["tags"]["dev"]: s["values"][0][0] for s in times}  # type: ignore[index]
    for s in series:
        _, v, p, e, b, r = s["values"][0]  # type: ignore[index]
        tags: dict[str, str] = s.get("tags", {})  # type: ignore[assignment]
        t = when_of.get(tags.get("dev", ""))
        when = time.strftime("%H:%M:%S", time.localtime(t / 1000)) if t else "-"
        table.add_row(
            tags.get("dev", "?"),
            when,
            *(_number(x) for x in (v, p, e, b, r)),
        )
    if health:
        _, messages, dead = health[0]["values"][0]  # type: ignore[index]
        table.caption = f"ingest: {messages} message(s) in, {dead} dead letter(s)"
    return table


def _number(x: object) -> str:
    if isinstance(x, int | float) and not isinstance(x, bool):
        return f"{x:.2f}"
    return "-" if x is None else str(x)
