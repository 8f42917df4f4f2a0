"""`gridedge gateway check -c FILE` and `gridedge gateway run -c FILE`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from protocols.errors import ConfigError

from .config import Plan, load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gw = sub.add_parser("gateway", help="the gateway service: poll devices, spool, publish to MQTT")
    cmds = gw.add_subparsers(dest="gateway_command", metavar="COMMAND", required=True)
    check = cmds.add_parser("check", help="validate a config and print each bus's airtime budget")
    check.add_argument("-c", "--config", required=True)
    check.set_defaults(handler=run_check)
    run = cmds.add_parser("run", help="run the gateway (SIGTERM drains and stops it)")
    run.add_argument("-c", "--config", required=True)
    run.set_defaults(handler=run_gateway)


def _load(path: str) -> Plan | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"gridedge gateway: {len(exc.problems)} problem(s) in the config:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def run_check(args: argparse.Namespace) -> int:
    plan = _load(args.config)
    if plan is None:
        return 2
    print_budget(plan)
    from . import config_doc

    # what config_apply and the retained status call this config (gateway.config_doc)
    try:
        print(f"config hash {config_doc.config_hash(config_doc.read(Path(args.config)))}")
    except config_doc.DocumentError as exc:  # valid for the gateway, yet not JSON data (a YAML date)
        print(f"no config hash: {exc}: remote configuration cannot replace it")
    return 0


def print_budget(plan: Plan) -> None:
    from rich.console import Console
    from rich.table import Table

    cfg = plan.config
    table = Table(title=f"gateway {cfg.gateway.id}: airtime budget per bus")
    for col in ("bus", "port", "line", "devices", "one cycle", "utilisation", "limit", "verdict"):
        table.add_column(col)
    for bus, budget in zip(cfg.buses, plan.budgets, strict=True):
        table.add_row(
            budget.bus,
            bus.port,
            budget.line,
            str(budget.devices),
            f"{budget.cycle_airtime_s:.2f} s",
            f"{budget.utilisation:.1%}",
            f"{budget.limit:.0%}",
            "over capacity" if budget.over else "ok",
        )
    Console().print(table)


def run_gateway(args: argparse.Namespace) -> int:
    from .config_stage import recover
    from .remote_config import run

    # a config left on trial by a gateway that died during it is rolled back before it is loaded
    recovered = recover(Path(args.config))
    plan = _load(args.config)
    if plan is None:
        return 2
    return run(Path(args.config), plan, recovered)
