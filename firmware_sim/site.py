"""`gridedge sim run -c FILE`: every simulated line of a site at once (e.g. examples/sim.yaml).

Each line lists device groups; a group's `options` are the same options as that kind's CLI
(`meter: [...]`, `unit: [...]`, `counters: 4`, `seed: 1`, ...), parsed by the same parser, so a
YAML file and a command line can never disagree about what an option means.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from protocols import config as conventions
from protocols import kinds
from protocols.config import Frozen
from protocols.errors import ConfigError

from .clock import SimClock
from .device import SimDevice
from .faults import Faults
from .line import Line, Wire
from .runner import kind_module, run_until_stopped, say_why_quiet, serve


class GroupConfig(Frozen):
    kind: str = Field(description="a registered device kind (protocols.kinds)")
    options: dict[str, Any] = {}

    @field_validator("kind")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in kinds.KINDS:
            raise ValueError(f"unknown device kind {value!r}: expected one of {', '.join(kinds.KINDS)}")
        return value


class LineConfig(Frozen):
    name: str
    port: str = "pty"
    link: str | None = None
    baud: int = Field(default=9600, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    echo: bool = False
    devices: list[GroupConfig]


class SiteConfig(Frozen):
    speed: float = Field(default=1.0, gt=0)
    lines: list[LineConfig]


def add_run_parser(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = kinds.add_parser("run", help="run every line of a site file (examples/sim.yaml)")
    p.add_argument("-c", "--config", required=True, help="site file")
    p.set_defaults(handler=run_site)


def _argv(options: dict[str, Any]) -> list[str]:
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        for item in value if isinstance(value, list) else [value]:
            if item is True:
                argv.append(flag)
            elif item is not False and item is not None:
                argv += [flag, str(item)]
    return argv


def build_line(line: LineConfig, clock: SimClock) -> Line:
    devices: list[SimDevice] = []
    for group in line.devices:
        module = kind_module(group.kind)
        parser = argparse.ArgumentParser(prog=f"{line.name}: {group.kind} options", exit_on_error=False)
        module.add_arguments(parser)
        try:
            args = parser.parse_args(_argv(group.options))
        except (argparse.ArgumentError, SystemExit) as exc:
            raise ConfigError([f"line {line.name}: {group.kind} options: {exc}"]) from None
        args.speed = clock.speed
        devices += module.build(args, clock.start)
    wire = Wire(baud=line.baud, bits_per_char=10 + (line.parity != "N"))
    return Line(devices, wire, clock=clock, echo=line.echo, faults=Faults())


async def serve_site(site: SiteConfig) -> None:
    from .control import control_loop

    clock = SimClock(speed=site.speed)
    devices: list[SimDevice] = []
    async with asyncio.TaskGroup() as tg:
        for cfg in site.lines:
            if cfg.link:
                Path(cfg.link).parent.mkdir(parents=True, exist_ok=True)
            line = build_line(cfg, clock)
            devices += line.devices
            kind = cfg.devices[0].kind if len({g.kind for g in cfg.devices}) == 1 else "mixed"

            def ready(where: str, name: str = cfg.name) -> None:
                print(f"{name} {where}", flush=True)

            tg.create_task(serve(line, cfg.port, kind, ready, cfg.link), name=f"sim-line:{cfg.name}")
            for group in {g.kind for g in cfg.devices}:
                mine = [d for d in line.devices if d.protocol == group]
                tg.create_task(
                    say_why_quiet(group, mine, clock, _stderr), name=f"sim-quiet:{cfg.name}:{group}"
                )
        await asyncio.sleep(0.2)
        print("ready", flush=True)
        tg.create_task(control_loop(devices, clock), name="sim:control")


def run_site(args: argparse.Namespace) -> int:
    path = Path(args.config)
    try:
        site = conventions.load(SiteConfig, path.read_text(), source=str(path), environ=os.environ)
        run_until_stopped(lambda: serve_site(site))
    except ConfigError as exc:
        print(f"gridedge sim run: {exc}")
        return 2
    return 0


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
