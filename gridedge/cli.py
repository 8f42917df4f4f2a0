"""The `gridedge` command line: one entry point, sub-commands contributed by each package.

Sub-commands are registered by small `register(subparsers)` functions so that each service package
owns its own options; this module only wires them together.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from gridedge import __version__

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _registrars(command: str | None = None) -> list[Register]:
    if command == "gateway":
        # the gateway runs for months on a small board: only its own sub-command is loaded, not the
        # simulators, the ingest or the demo (~6 MB of RSS; bench/gateway_footprint.py)
        from gateway import cli as gateway_only

        return [gateway_only.register]
    from firmware_sim import cli as sim_cli
    from gateway import cli as gateway_cli
    from gateway.commission import cli as commission_cli
    from gridedge import alerts_cmd, cmd, decode_cmd, demo, keys, release_cmd
    from ingest import cli as ingest_cli
    from ingest.report import cli as report_cli

    return [
        gateway_cli.register,
        commission_cli.register,
        ingest_cli.register,
        decode_cmd.register,
        sim_cli.register,
        demo.register,
        cmd.register,
        keys.register,
        release_cmd.register,
        report_cli.register,
        alerts_cmd.register,
    ]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gridedge",
        description="gridedge: DL/T 645 / Modbus meters and hall devices -> MQTT -> InfluxDB + alerts",
    )
    parser.add_argument("--version", action="version", version=f"gridedge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _registrars(command):
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(next((w for w in words if not w.startswith("-")), None))
    args = parser.parse_args(words)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        result: int = handler(args)
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
