"""`gridedge ingest run -c ingest.yaml` (and `gridedge ingest check -c ingest.yaml`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable

from protocols.errors import ConfigError

from .billing_cli import register_billing
from .config import IngestConfig, load_config
from .errors import IngestError
from .service import Ingest
from .topology import Topology

log = logging.getLogger("ingest")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ingest", help="the ingest service: MQTT -> InfluxDB (+ dead letters, self-metrics)")
    cmds = p.add_subparsers(dest="ingest_command", metavar="COMMAND", required=True)
    run = cmds.add_parser(
        "run", help="run the writer and/or the alert engine (SIGHUP reloads the topology, SIGTERM stops)"
    )
    run.add_argument("-c", "--config", required=True)
    run.add_argument(
        "--role",
        choices=("writer", "alerts", "all"),
        default="all",
        help="writer: MQTT -> InfluxDB; alerts: the alert engine; all (default): both in this process "
        "(the engine only when alerts.enabled)",
    )
    run.set_defaults(handler=run_ingest)
    check = cmds.add_parser("check", help="validate a config and its topology file")
    check.add_argument("-c", "--config", required=True)
    check.set_defaults(handler=run_check)
    register_billing(cmds)


def _load(path: str) -> tuple[IngestConfig, Topology] | None:
    try:
        cfg = load_config(path)
        topology = Topology.load(cfg.topology) if cfg.topology is not None else Topology.empty()
    except ConfigError as exc:
        print(f"gridedge ingest: {len(exc.problems)} problem(s) in the config:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None
    return cfg, topology


def run_check(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return 2
    cfg, topology = loaded
    print(
        f"ok: mqtt {cfg.mqtt.host}:{cfg.mqtt.port} {cfg.mqtt.filters()} -> influx {cfg.influx.url} "
        f"(v{cfg.influx.version}); topology: {len(topology.devices)} device(s)"
    )
    if cfg.alerts.enabled:
        print(
            f"alerts: state {cfg.alerts.state_path}, tick {cfg.alerts.tick_s} s, rule sets configured: "
            f"{', '.join(sorted(cfg.alerts.rules)) or 'none (all defaults)'}"
        )
    return 0


def run_ingest(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return 2
    cfg, topology = loaded

    role = getattr(args, "role", "all")
    writer = role in ("writer", "all")
    alerts = role == "alerts" or (role == "all" and cfg.alerts.enabled)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # SIGHUP must never kill the process (its default); it reloads the topology of every role
        reloaders: list[Callable[[], None]] = []
        loop.add_signal_handler(signal.SIGHUP, lambda: [reload() for reload in reloaders])
        async with asyncio.TaskGroup() as tg:
            if writer:
                ingest = Ingest(cfg, topology)
                reloaders.append(ingest.reload_topology)
                tg.create_task(ingest.run(stop), name="ingest:writer")
            if alerts:
                from .alerts.role import AlertsRole

                role = AlertsRole(cfg, topology)
                reloaders.append(role.reload_topology)
                tg.create_task(role.run(stop), name="ingest:alerts")

    failed = False
    try:
        asyncio.run(main())
    except* IngestError as group:  # said once, plainly; the exit status makes systemd restart us
        failed = True
        for exc in group.exceptions:
            log.error("gridedge ingest: %s", exc)
    return 1 if failed else 0
