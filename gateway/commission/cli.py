"""`gridedge read` and `gridedge scan`: one value from one device, or who is on this line.

`gridedge commission` (scan with device templates, write the config) is in `provision_cli`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from protocols.errors import ProtocolError

from ..bus import Bus
from ..errors import GatewayError
from .common import check_port, line_for, one_line, protocol_module, protocols


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    read = sub.add_parser("read", help="read one value from one device and print it decoded")
    _common(read)
    read.add_argument("--address", help="DL/T 645 meter address, or Modbus register address for raw reads")
    read.add_argument("--raw", action="store_true", help="also print the request and reply bytes")
    for name in protocols():
        protocol_module(name).add_read_arguments(read)
    read.set_defaults(handler=lambda args: _run(args, _read))
    scan = sub.add_parser("scan", help="find the devices that answer on a line")
    _common(scan)
    for name in protocols():
        protocol_module(name).add_scan_arguments(scan)
    scan.set_defaults(handler=lambda args: _run(args, _scan))
    from . import provision_cli, sniff

    sniff.register(sub)
    provision_cli.register(sub)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", required=True, choices=protocols())
    p.add_argument(
        "--port", required=True, help="/dev/ttyUSB0, /dev/pts/N, socket://HOST:PORT, tcp://HOST:PORT"
    )
    p.add_argument("--baud", type=int, default=None, help="default: the protocol's usual speed")
    p.add_argument("--parity", choices=("N", "E", "O"), default=None)
    p.add_argument("--stopbits", type=int, choices=(1, 2), default=None)
    p.add_argument("--echo", action="store_true", help="the adapter echoes what it sends")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def _run(args: argparse.Namespace, action: Callable[[Bus, argparse.Namespace, ModuleType], Any]) -> int:
    module = protocol_module(args.protocol)
    line = line_for(args)

    async def main() -> int:
        async with Bus("cli", args.port, line, echo=args.echo, reconnect_min_s=0.2) as bus:
            if not await bus.wait_connected(5):
                raise GatewayError(f"cannot open {args.port}")
            return int(await action(bus, args, module))

    try:
        check_port(args.port)
        return asyncio.run(main())
    except (GatewayError, ProtocolError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        if args.json:
            print(json.dumps({"ok": False, "error": one_line(exc), "error_type": type(exc).__name__}))
        else:
            print(f"gridedge {args.command}: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        return 1


async def _read(bus: Bus, args: argparse.Namespace, module: ModuleType) -> int:
    result: dict[str, Any] = await module.read(bus, args)
    if args.json:
        print(json.dumps({"ok": True, **result}, ensure_ascii=False, default=str))
        return 0
    value, unit = result.get("value"), result.get("unit", "")
    print(f"{result.get('name', '')} = {value}{(' ' + unit) if unit else ''}".strip(" ="))
    for key in ("request", "reply"):
        if key in result:
            print(f"{key:8} {result[key]}")
    return 0


async def _scan(bus: Bus, args: argparse.Namespace, module: ModuleType) -> int:
    from rich.progress import Progress

    with Progress(transient=True, disable=args.json or not sys.stderr.isatty()) as bar:
        task = bar.add_task("scanning", total=None)

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label)

        found: list[dict[str, Any]] = await module.scan(bus, args, progress)
    if args.json:
        print(json.dumps({"ok": True, "protocol": args.protocol, "port": args.port, "found": found}))
        return 0
    _print_table(found, f"{len(found)} device(s) answered on {args.port} ({args.protocol})")
    return 0


def _print_table(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    Console().print(table)
