"""`gridedge sim ...`: run simulated devices on virtual serial lines.

    gridedge sim dlt645 --port pty|tcp://HOST:PORT --meter ADDR [--meter ADDR ...] [--baud 2400] [--seed N]
    gridedge sim modbus --port pty|tcp://HOST:PORT --unit N [--unit N ...] [--map gridedge-prepaid]
    gridedge sim hall   --port pty|tcp://HOST:PORT --counters N [--seed N] [--speed X]
    gridedge sim run -c examples/sim.yaml        (every line of a site at once)

The first stdout line is the pty path or the listening address (for `run`: one `NAME PATH` line per
line, then `ready`); then it serves until stopped. Each device kind module in `firmware_sim.devices`
provides `add_arguments(parser)` and `build(args, start_time) -> list[SimDevice]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import signal
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from protocols.errors import ConfigError

from .clock import SimClock
from .control import control_loop
from .faults import Faults
from .line import Line, Wire

KINDS: dict[str, dict[str, Any]] = {
    # default line settings per kind: DL/T 645 is 2400 8E1, Modbus and the hall bus 9600 8N1
    "dlt645": {"baud": 2400, "bits": 11, "help": "DL/T 645 meters (2007/1997)"},
    "modbus": {"baud": 9600, "bits": 10, "help": "Modbus RTU prepaid meters (Modbus TCP with tcp://)"},
    "hall": {"baud": 9600, "bits": 10, "help": "a business hall: dispenser, caller keypads, rating pads"},
}


def kind_module(kind: str) -> ModuleType:
    return importlib.import_module(f"firmware_sim.devices.{kind}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = sub.add_parser("sim", help="run device simulators on virtual serial lines")
    kinds = sim.add_subparsers(dest="sim_kind", metavar="KIND", required=True)
    for kind, meta in KINDS.items():
        if importlib.util.find_spec(f"firmware_sim.devices.{kind}") is None:
            continue  # a device kind still being written is not offered
        p = kinds.add_parser(kind, help=meta["help"])
        add_line_arguments(p, meta["baud"])
        kind_module(kind).add_arguments(p)
        p.set_defaults(handler=run_one, sim_kind=kind)
    from .site import add_run_parser

    add_run_parser(kinds)


def add_line_arguments(p: argparse.ArgumentParser, baud: int) -> None:
    p.add_argument("--port", default="pty", help="'pty' (prints its path) or tcp://HOST:PORT (serial server)")
    p.add_argument("--baud", type=int, default=baud, help=f"line speed for wire-time pacing (default {baud})")
    p.add_argument("--parity", choices=("N", "E", "O"), default=None, help="default: E for dlt645, else N")
    p.add_argument("--link", default=None, help="also make this symlink to the pty (a stable path)")
    p.add_argument("--echo", action="store_true", help="echo requests back like a 2-wire adapter")


def wire_for(kind: str, baud: int, parity: str | None) -> Wire:
    bits = KINDS[kind]["bits"] if parity is None else 10 + (parity != "N")
    return Wire(baud=baud, bits_per_char=bits)


def stop_on_sigterm() -> None:
    """SIGTERM ends the simulator like Ctrl-C, so ptys, symlinks and sockets are cleaned up."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def run_one(args: argparse.Namespace) -> int:
    stop_on_sigterm()
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
            await serve(line, args.port, kind, lambda where: print(where, flush=True), args.link)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


async def serve(
    line: Line, port: str, kind: str, ready: Callable[[str], None], link: str | None = None
) -> None:
    if port == "pty":
        await line.serve_pty(ready, link=link)
        return
    host, _, port_no = port.removeprefix("tcp://").removeprefix("socket://").rpartition(":")
    if not host or not port_no.isdigit():
        raise SystemExit(f"gridedge sim: --port must be 'pty' or tcp://HOST:PORT, not {port!r}")
    if kind == "modbus" and port.startswith("tcp://"):
        tcp = importlib.import_module("firmware_sim.devices.modbus_tcp")
        await tcp.serve_modbus_tcp(line.devices, host, int(port_no), ready, clock=line.clock)
        return
    await line.serve_tcp(host, int(port_no), ready)


def main() -> None:  # pragma: no cover - convenience for `python -m firmware_sim.cli`
    parser = argparse.ArgumentParser(prog="gridedge")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args()
    sys.exit(args.handler(args))


if __name__ == "__main__":  # pragma: no cover
    main()
