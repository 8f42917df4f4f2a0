"""Running simulated lines: a kind's devices built from its options, a `Line`, served on a pty or TCP.

Layer: simulator I/O (the machinery under `gridedge sim KIND` and `gridedge sim run`). Must not: parse
the command line of `gridedge` (cli.py) or read site files (site.py); both call down into this.

Each registered device kind (`protocols.kinds`) has a module `firmware_sim.devices.NAME` providing
`add_arguments(parser)`, `build(args, start_time) -> list[SimDevice]` and, for a kind with a TCP
protocol of its own (Modbus TCP), `serve_tcp(devices, host, port, ready, clock=...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any

from protocols import kinds

from .line import Line, Wire

PORT_SCHEMES = ("pty", "socket://", "tcp://")


def kind_module(kind: str) -> ModuleType:
    kinds.get(kind)
    return importlib.import_module(f"firmware_sim.devices.{kind}")


def has_tcp_protocol(kind: str) -> bool:
    return hasattr(kind_module(kind), "serve_tcp")


def port_help(kind: str | None) -> str:
    tcp = (
        "serves Modbus TCP (MBAP)"
        if kind is not None and has_tcp_protocol(kind)
        else "same as socket:// (this kind has no TCP protocol of its own)"
    )
    return (
        "'pty' (prints its path), socket://HOST:PORT (a serial device server: the line's bytes, paced at "
        f"the baud rate, e.g. RTU over TCP), or tcp://HOST:PORT ({tcp})"
    )


def wire_for(kind: str, baud: int, parity: str | None) -> Wire:
    bits = kinds.get(kind).bits_per_char if parity is None else 10 + (parity != "N")
    return Wire(baud=baud, bits_per_char=bits)


async def say_why_quiet(
    kind: str,
    devices: list[Any],
    clock: Callable[[], float],
    say: Callable[[str], None],
    every_s: float = 30.0,
) -> None:
    """Tell a person watching a silent simulator why it is silent (a hall outside its opening hours),
    on stderr, at start and whenever the reasons change. A kind says why through its module's optional
    `quiet_reasons(devices) -> [str]`; requests are answered whatever it says."""
    module = kind_module(kind)
    if not hasattr(module, "quiet_reasons"):
        return
    said: list[str] = []
    while True:
        for device in devices:
            device.tick(clock())  # as a request would: the hall's clock moves even if nobody polls
        reasons: list[str] = module.quiet_reasons(devices)
        heads = [r.split(":")[0] for r in reasons]
        if heads != said:
            for reason in reasons:
                say(f"gridedge sim {kind}: {reason}")
            if said and not reasons:
                say(f"gridedge sim {kind}: no longer quiet ({', '.join(said)} is over)")
            said = heads
        await asyncio.sleep(every_s)


def run_until_stopped(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `main()` until SIGTERM or SIGINT, which cancel it: every task's cleanup runs (ptys, links,
    sockets) and the call returns. A signal handler that raised KeyboardInterrupt (what
    `stop_on_sigterm` does) can land inside a task's own code, and a TaskGroup shut down that way was
    seen to hang with its pty already closed, until a second SIGTERM."""

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        await main()

    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):  # the stop asked for
        asyncio.run(guarded())


def stop_on_sigterm() -> None:
    """SIGTERM ends a synchronous simulator like Ctrl-C (KeyboardInterrupt); asyncio ones use
    `run_until_stopped`."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def tcp_endpoint(port: str) -> tuple[str, int]:
    scheme = next((s for s in PORT_SCHEMES[1:] if port.startswith(s)), None)
    host, _, port_no = port.removeprefix(scheme or "").rpartition(":")
    if scheme is None or not host or not port_no.isdigit():
        raise SystemExit(
            f"gridedge sim: --port must be 'pty', socket://HOST:PORT or tcp://HOST:PORT, not {port!r}"
        )
    return host, int(port_no)


async def serve(
    line: Line, port: str, kind: str, ready: Callable[[str], None], link: str | None = None
) -> None:
    """Serve one line until cancelled: on a pty, as a serial device server, or in the kind's TCP protocol."""
    if port == "pty":
        await line.serve_pty(ready, link=link)
        return
    host, port_no = tcp_endpoint(port)
    if port.startswith("tcp://") and kind in kinds.KINDS and has_tcp_protocol(kind):
        await kind_module(kind).serve_tcp(line.devices, host, port_no, ready, clock=line.clock)
        return
    await line.serve_tcp(host, port_no, ready)
