"""`gridedge sim ...`: run simulated devices on virtual serial lines.

    gridedge sim dlt645 --port pty|socket://HOST:PORT --meter ADDR [--meter ADDR ...] [--baud 2400] [--seed N]
    gridedge sim modbus --port pty|socket://H:P|tcp://H:P --unit N [--unit N ...] [--map gridedge-prepaid]
    gridedge sim hall   --port pty|socket://HOST:PORT --counters N [--seed N] [--speed X] [--start-at HH:MM]
    gridedge sim run -c examples/sim.yaml        (every line of a site at once)

One subcommand per registered device kind (`protocols.kinds`). The first stdout line is the pty path or
the listening address (for `run`: one `NAME PATH` line per line, then `ready`); then it serves until
stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
from types import ModuleType

from protocols import kinds
from protocols.errors import ConfigError

from .clock import SimClock
from .control import control_loop
from .faults import Faults
from .line import Line
from .runner import kind_module, port_help, run_until_stopped, say_why_quiet, serve, wire_for
from .site import add_run_parser


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = sub.add_parser("sim", help="run device simulators on virtual serial lines")
    sub_kinds = sim.add_subparsers(dest="sim_kind", metavar="KIND", required=True)
    for kind in kinds.KINDS.values():
        module = _written(kind.name)
        if module is None:
            continue  # a kind whose simulator is not written yet is not offered (the registry test says so)
        p = sub_kinds.add_parser(kind.name, help=kind.title)
        add_line_arguments(p, kind)
        module.add_arguments(p)
        p.set_defaults(handler=run_one, sim_kind=kind.name)
    add_run_parser(sub_kinds)


def _written(kind: str) -> ModuleType | None:
    if importlib.util.find_spec(f"firmware_sim.devices.{kind}") is None:
        return None
    module = kind_module(kind)
    return module if hasattr(module, "add_arguments") and hasattr(module, "build") else None


def add_line_arguments(p: argparse.ArgumentParser, kind: kinds.DeviceKind) -> None:
    p.add_argument("--port", default="pty", help=port_help(kind.name))
    p.add_argument(
        "--baud", type=int, default=kind.baud, help=f"line speed for wire-time pacing (default {kind.baud})"
    )
    p.add_argument("--parity", choices=("N", "E", "O"), default=None, help=f"default: {kind.parity}")
    p.add_argument("--link", default=None, help="also make this symlink to the pty (a stable path)")
    p.add_argument("--echo", action="store_true", help="echo requests back like a 2-wire adapter")


def run_one(args: argparse.Namespace) -> int:
    kind: str = args.sim_kind
    clock = SimClock(speed=getattr(args, "speed", 1.0) or 1.0)
    try:
        devices = kind_module(kind).build(args, clock.start)
    except ConfigError as exc:
        print(f"gridedge sim {kind}: {exc}", file=sys.stderr)
        return 2
    line = Line(devices, wire_for(kind, args.baud, args.parity), clock=clock, echo=args.echo, faults=Faults())

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(control_loop(line.devices, clock), name="sim:control")
            tg.create_task(say_why_quiet(kind, line.devices, clock, _stderr), name="sim:quiet")
            await serve(line, args.port, kind, lambda where: print(where, flush=True), args.link)

    run_until_stopped(main)
    return 0


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
