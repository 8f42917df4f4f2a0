"""The gateway bus against the simulator line on a real pty: honest timing, echo, faults, priorities."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from firmware_sim.device import SimReply
from firmware_sim.faults import Faults
from firmware_sim.line import Line, Wire
from gateway.bus import Bus, Priority
from gateway.errors import BusFrameError, PortUnavailable, ResponseTimeout
from gateway.line import LineSettings, Timing
from protocols.errors import ChecksumError


@dataclass
class Doubler:
    """A toy device: answers [addr, len, payload..., sum] with each payload byte doubled."""

    addr: int
    name: str = ""
    protocol: str = "toy"
    turnaround_s: float = 0.03

    def __post_init__(self) -> None:
        self.name = self.name or f"toy{self.addr}"

    def respond(self, request: bytes, now: float) -> SimReply | None:
        if len(request) < 2 or request[0] != self.addr:
            return None
        body = bytes([self.addr, len(request) - 1, *((b * 2) & 0xFF for b in request[1:])])
        return SimReply(body + bytes([sum(body) & 0xFF]), self.turnaround_s)

    def tick(self, now: float) -> None:
        pass


class ToyMatcher:
    def __init__(self, addr: int) -> None:
        self.addr, self.buf = addr, bytearray()

    def feed(self, data: bytes) -> bytes | None:
        self.buf += data
        while self.buf and self.buf[0] != self.addr:
            del self.buf[0]
        if len(self.buf) < 2 or len(self.buf) < self.buf[1] + 3:
            return None
        frame = bytes(self.buf[: self.buf[1] + 3])
        if sum(frame[:-1]) & 0xFF != frame[-1]:
            raise ChecksumError("toy checksum")
        return frame


WIRE = Wire(baud=2400, bits_per_char=11)
SETTINGS = LineSettings(baud=2400, parity="E")
TIMING = Timing(first_byte_s=0.5, inter_byte_s=0.1)


@contextlib.asynccontextmanager
async def running_line(line: Line) -> AsyncIterator[str]:
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(line.serve_pty(ready.set_result), name="test-line")
    try:
        yield await ready
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_transaction_time_matches_wire_time() -> None:
    line = Line([Doubler(1), Doubler(2)], WIRE)
    async with running_line(line) as path, Bus("b1", path, SETTINGS) as bus:
        request = bytes([2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
        durations = []
        for _ in range(5):
            t0 = time.monotonic()
            reply = await bus.transact(request, lambda: ToyMatcher(2), TIMING)
            durations.append(time.monotonic() - t0)
        assert reply[:3] == bytes([2, 19, 2])
        expected = WIRE.airtime(len(request)) + 0.03 + WIRE.airtime(len(reply))
        mean = sum(durations) / len(durations)
        assert abs(mean - expected) / expected < 0.10, (mean, expected)


async def test_echo_is_stripped_and_counted() -> None:
    line = Line([Doubler(1)], WIRE, echo=True)
    async with running_line(line) as path, Bus("b1", path, SETTINGS, echo=True) as bus:
        reply = await bus.transact(bytes([1, 5]), lambda: ToyMatcher(1), TIMING)
        assert reply == bytes([1, 1, 10, 12])
        assert bus.stats.echo_bytes == 2


async def test_silent_device_times_out_and_other_device_still_answers() -> None:
    line = Line([Doubler(1), Doubler(2)], WIRE, faults=Faults(dead={"toy1"}))
    async with running_line(line) as path, Bus("b1", path, SETTINGS) as bus:
        with pytest.raises(ResponseTimeout, match="no reply"):
            await bus.transact(bytes([1, 5]), lambda: ToyMatcher(1), Timing(0.2, 0.05, retries=1))
        assert bus.stats.timeouts == 2 and bus.stats.retries == 1
        assert await bus.transact(bytes([2, 5]), lambda: ToyMatcher(2), TIMING) == bytes([2, 1, 10, 13])


async def test_corrupt_reply_is_a_frame_error_then_recovers() -> None:
    faults = Faults(corrupt=1.0)
    line = Line([Doubler(1)], WIRE, faults=faults)
    async with running_line(line) as path, Bus("b1", path, SETTINGS) as bus:
        with pytest.raises(BusFrameError, match="toy checksum"):
            await bus.transact(bytes([1, 5]), lambda: ToyMatcher(1), TIMING)
        faults.corrupt = 0.0
        assert await bus.transact(bytes([1, 5]), lambda: ToyMatcher(1), TIMING) == bytes([1, 1, 10, 12])
        assert bus.stats.frame_errors == 1


async def test_commands_jump_the_queue() -> None:
    line = Line([Doubler(1)], WIRE)
    order: list[str] = []

    async def job(tag: str, priority: Priority) -> None:
        await bus.transact(bytes([1, 1]), lambda: ToyMatcher(1), TIMING, priority=priority)
        order.append(tag)

    async with running_line(line) as path, Bus("b1", path, SETTINGS) as bus:
        await bus.wait_connected(5)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(job("first-poll", Priority.POLL), name="p0")
            await asyncio.sleep(0.01)  # first poll is on the wire now
            for i in range(3):
                tg.create_task(job(f"poll{i}", Priority.POLL), name=f"p{i + 1}")
            tg.create_task(job("command", Priority.COMMAND), name="cmd")
    assert order[:2] == ["first-poll", "command"]


async def test_missing_port_fails_fast_and_bus_keeps_trying() -> None:
    async with Bus("gone", "/dev/does-not-exist", SETTINGS, reconnect_min_s=0.05) as bus:
        with pytest.raises(PortUnavailable, match="does-not-exist"):
            await asyncio.wait_for(bus.transact(b"\x01\x01", lambda: ToyMatcher(1), TIMING), 2)
        assert bus.state == "reconnecting"
