"""`python -m tests.faults.simrunner SITE.yaml`: `gridedge sim run` plus line faults and unplugging.

Layer: test harness (composes firmware_sim; never imported by the services). `gridedge sim run` builds
its lines with `Faults()` and offers only device faults on stdin, so the fault harness serves the same
site file itself and adds line-level commands. One command per stdin line, one answer per command
(`ok ...` / `error ...`), after the `ready` line:

    line NAME KNOB=P [KNOB=P ...]   set the line's reply faults (silence, corrupt, garbage, truncate, slow)
    noise NAME N                    a burst of N random bytes on the line now
    unplug NAME / plug NAME         close the line's pty (its link vanishes) / serve a new one on the link
    stats                           `ok {json}`: per line requests, replies and fault counts
    anything else                   firmware_sim.control (cut, restore, fault, clear)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
from pathlib import Path

from firmware_sim.clock import SimClock
from firmware_sim.control import execute
from firmware_sim.line import Line
from firmware_sim.runner import serve, stop_on_sigterm
from firmware_sim.site import LineConfig, SiteConfig, build_line
from protocols import config as conventions

KNOBS = ("silence", "corrupt", "garbage", "truncate", "slow")


class Site:
    def __init__(self, site: SiteConfig) -> None:
        self.clock = SimClock(speed=site.speed)
        self.configs = {cfg.name: cfg for cfg in site.lines}
        self.lines: dict[str, Line] = {
            name: build_line(cfg, self.clock) for name, cfg in self.configs.items()
        }
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.devices = {dev.name: dev for line in self.lines.values() for dev in line.devices}

    async def plug(self, name: str, tg: asyncio.TaskGroup) -> None:
        cfg: LineConfig = self.configs[name]
        if cfg.link:
            Path(cfg.link).parent.mkdir(parents=True, exist_ok=True)
        served = asyncio.get_running_loop().create_future()

        def ready(where: str) -> None:
            if not served.done():
                served.set_result(where)

        line = self.lines[name]
        self.tasks[name] = tg.create_task(serve(line, cfg.port, "mixed", ready, cfg.link), name=f"sim:{name}")
        await served

    async def unplug(self, name: str) -> None:
        task = self.tasks.pop(name)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def command(self, text: str, tg: asyncio.TaskGroup) -> str:
        words = text.split()
        verb, args = (words[0], words[1:]) if words else ("", [])
        try:
            if verb == "stats":
                return "ok " + json.dumps(self.stats())
            if verb in ("line", "noise", "unplug", "plug") and (not args or args[0] not in self.lines):
                return f"error {verb}: name a line ({', '.join(self.lines)})"
            if verb == "line":
                for knob, _, value in (a.partition("=") for a in args[1:]):
                    if knob not in KNOBS:
                        return f"error line: unknown knob {knob!r} ({', '.join(KNOBS)})"
                    setattr(self.lines[args[0]].faults, knob, float(value))
            elif verb == "noise":
                await self.lines[args[0]].inject_noise(int(args[1]))
            elif verb == "unplug":
                await self.unplug(args[0])
            elif verb == "plug":
                await self.plug(args[0], tg)
            else:
                return execute(self.devices, text, self.clock())
        except (IndexError, ValueError, KeyError) as exc:
            return f"error {text.strip()}: {exc}"
        return f"ok {text.strip()}"

    def stats(self) -> dict[str, object]:
        return {
            name: {
                "requests": line.stats.requests,
                "replies": line.stats.replies,
                **dataclasses.asdict(line.faults.counts),
            }
            for name, line in self.lines.items()
        }


async def main(site: Site) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        async with asyncio.TaskGroup() as tg:
            for name in site.lines:
                await site.plug(name, tg)
            print("ready", flush=True)
            while raw := await reader.readline():
                if answer := await site.command(raw.decode(errors="replace"), tg):
                    print(answer, flush=True)
            for name in list(site.tasks):
                await site.unplug(name)
    finally:
        transport.close()


if __name__ == "__main__":
    stop_on_sigterm()
    path = Path(sys.argv[1])
    config = conventions.load(SiteConfig, path.read_text(), source=str(path), environ={})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(Site(config)))
