"""Simulated DL/T 698.45 meters behind a real pty, served by a `firmware_sim.line.Line` (baud pacing,
echo, generic faults) on an event loop in a background thread, and a pyserial client for it. The
meters' clock is a `ManualClock` the test moves on (simulated time, not a sleep), so the test knows
exactly what the meters hold when it compares."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import serial

from firmware_sim.devices.dlt698 import Dlt698Meter
from firmware_sim.line import Line, Wire
from protocols.dlt698 import Frame, Reply, ReplyMatcher, check_reply

T0 = 1_760_000_000.0  # 2025-10-09 16:53:20 CST


class ManualClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class RunningLine:
    path: str
    line: Line
    clock: ManualClock
    meters: list[Dlt698Meter]


@contextlib.contextmanager
def running_line(meters: list[Dlt698Meter], baud: int = 2400, *, echo: bool = False) -> Iterator[RunningLine]:
    clock = ManualClock()
    line = Line(meters, Wire(baud=baud, bits_per_char=11), clock=clock, echo=echo)  # 8E1
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    where: list[str] = []
    task: list[asyncio.Task[None]] = []

    def ready_at(path: str) -> None:
        where.append(path)
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        task.append(loop.create_task(line.serve_pty(ready_at), name="dlt698-sim:line"))
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task[0])
        loop.close()

    thread = threading.Thread(target=run, name="dlt698-sim-line", daemon=True)
    thread.start()
    assert ready.wait(10), "the simulated line did not start"
    try:
        yield RunningLine(where[0], line, clock, meters)
    finally:
        loop.call_soon_threadsafe(task[0].cancel)
        thread.join(10)


def open_port(path: str, baud: int = 2400, parity: str = serial.PARITY_EVEN) -> serial.Serial:
    """The client side at `baud` 8E1. A pty has no parity bit, and pyserial's 8E1 tcsetattr fails with
    EINVAL on a pty whose master this same process holds (the in-process line): pass PARITY_NONE there;
    the line still paces 11-bit characters."""
    return serial.Serial(path, baud, parity=parity, stopbits=1, bytesize=8, timeout=0.05)


@dataclass
class Exchange:
    reply: Frame
    elapsed_s: float
    sent: int  # bytes
    received: int  # bytes, the reply's preamble and any noise before it included
    skipped: int  # noise bytes the matcher skipped before the reply


def exchange(port: serial.Serial, frame: Frame, *, before: bytes = b"", deadline_s: float = 5.0) -> Exchange:
    """Send `before` (noise) and the request in one burst; the reply as the gateway's matcher finds it."""
    matcher = ReplyMatcher.for_request(frame)
    raw = before + frame.encode(preamble=4)
    port.reset_input_buffer()
    port.write(raw)
    sent = time.monotonic()
    received = b""
    while time.monotonic() - sent < deadline_s:
        chunk = port.read(port.in_waiting or 1)
        received += chunk
        reply = matcher.feed(chunk)
        if reply is not None:
            return Exchange(reply, time.monotonic() - sent, len(raw), len(received), matcher.skipped)
    raise AssertionError(f"no reply to {raw.hex(' ')} within {deadline_s} s, got {received.hex(' ')}")


def transact(port: serial.Serial, frame: Frame, **kwargs: object) -> Reply:
    return check_reply(frame, exchange(port, frame, **kwargs).reply)  # type: ignore[arg-type]
