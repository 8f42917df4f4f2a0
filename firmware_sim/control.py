"""Driving simulated devices while they run: one command per line on the simulator's stdin.

    cut ADDR            mains off at a meter (it stops answering)     restore ADDR   mains back (+ record)
    press ADDR          the customer presses the meter's close button
    fault NAME FAULT [N]  a device fault (dlt645: silent, refuse, misoperate; modbus: busy, failure;
                        hall: silent, busy, offline)
    clear NAME [FAULT]  end device faults
    rush NAME [N]       N customers (default 10) walk into the hall of hall device NAME
    rate NAME LEVEL     the hall's next rating is LEVEL (1 very satisfied .. 4 dissatisfied)

Each command answers one line on stdout: `ok ...` or `error ...`. Tests and `gridedge demo` use this
to cut supply, restore it and press the button; a simulator whose stdin is closed or a terminal just
serves. Layer: simulator harness (no device logic here, only dispatch to the devices' methods).
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import Callable, Iterable

from .device import SimDevice


def execute(devices: dict[str, SimDevice], line: str, now: float) -> str:
    words = line.split()
    if not words:
        return ""
    verb, args = words[0], words[1:]
    if not args or args[0] not in devices:
        known = ", ".join(sorted(devices)[:5])
        return f"error {verb}: name a device ({known}{', ...' if len(devices) > 5 else ''})"
    dev = devices[args[0]]
    try:
        if verb == "cut":
            dev.cut_supply(now)  # type: ignore[attr-defined]
        elif verb == "restore":
            dev.restore_supply(now)  # type: ignore[attr-defined]
        elif verb == "press":
            if not dev.press_button(now):  # type: ignore[attr-defined]
                return f"error press {args[0]}: no close was permitted"
        elif verb == "fault" and len(args) >= 2:
            dev.inject(args[1], int(args[2]) if len(args) > 2 else None)  # type: ignore[attr-defined]
        elif verb == "clear":
            dev.clear(args[1] if len(args) > 1 else None)  # type: ignore[attr-defined]
        elif verb == "rush":
            dev.rush(int(args[1]) if len(args) > 1 else 10)  # type: ignore[attr-defined]
        elif verb == "rate" and len(args) >= 2:
            dev.rate(int(args[1]))  # type: ignore[attr-defined]
        else:
            return f"error unknown command {line.strip()!r} (cut, restore, press, fault, clear, rush, rate)"
    except AttributeError:
        return f"error {verb}: {args[0]} ({dev.protocol}) cannot do that"
    except (KeyError, ValueError) as exc:
        return f"error {verb} {args[0]}: {exc}"
    return f"ok {line.strip()}"


async def control_loop(devices: Iterable[SimDevice], clock: Callable[[], float]) -> None:
    """Serve commands from stdin until it closes (returns at once if stdin is a terminal or closed)."""
    if sys.stdin is None or sys.stdin.isatty():
        return
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return  # /dev/null, a regular file: epoll cannot watch them, and there is nothing to serve
    by_name = {d.name: d for d in devices}
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader),
            os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0),
        )
    except (OSError, ValueError):
        return  # /dev/null or a regular file: nothing to serve
    try:
        while line := await reader.readline():
            answer = execute(by_name, line.decode(errors="replace"), clock())
            if answer:
                print(answer, flush=True)
    finally:
        transport.close()
