"""One Bus per serial line: the only owner of its port.

Layer: gateway I/O core. Every request on a line goes through `Bus.transact` (or `Bus.send` for
broadcasts); a single worker task executes them one at a time from a priority queue (commands before
event/alarm reads before routine polls), keeps the inter-frame silence each protocol needs, strips the
echo of half-duplex adapters, applies first-byte and inter-byte timeouts computed from the line's
wire time, retries what may be retried, and reconnects a lost port with jittered exponential back-off
while failing queued work fast (so callers never hang on a dead port).

A transaction's reply is recognised by a `ReplyMatcher` supplied by the driver: the bus feeds it every
byte read after the request until it returns the reply (it may skip noise, other devices' frames or
our echo on its own) or raises a `protocols.FrameError`. A matcher that also knows how many bytes
the reply still needs (`SizedReply`) lets the bus leave the rest of a frame in the OS buffer for its
wire time and read it at once, instead of waking up for every character; the reply still ends the
moment its last byte is in (never on an inter-byte timeout).

Must not: know any protocol's frame format, or be bypassed by a driver opening the port itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, Self, TypeVar, runtime_checkable

from protocols.errors import FrameError

from .errors import BusFrameError, PortUnavailable, ResponseTimeout
from .line import LineSettings, Timing
from .transport import Transport

log = logging.getLogger(__name__)

_MAX_QUIET_WAIT_S = 1.0  # strays restart the inter-frame silence, but never delay a request longer
# a hold shorter than this is not worth a timer; and a hold ends this much before the last awaited
# character is due, so the event loop's timer granularity never delays the end of a reply
_MIN_HOLD_S = 0.002
_HOLD_MARGIN_S = 0.001

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Priority(enum.IntEnum):
    COMMAND = 0
    EVENT = 1
    POLL = 2
    PROBE = 3


class ReplyMatcher(Protocol[T_co]):
    def feed(self, data: bytes) -> T_co | None:
        """Consume bytes; return the reply once complete, None while more are needed."""
        ...


@runtime_checkable
class Finishing(Protocol):
    """Optional on a ReplyMatcher: told that the line went quiet, it raises `FrameError` naming what
    part of a frame is still buffered (a reply cut short), and returns if nothing is."""

    def finish(self) -> None: ...


@runtime_checkable
class SizedReply(Protocol):
    """Optional on a ReplyMatcher: how many more bytes the reply needs at least (0: unknown). With it
    the bus reads a frame of known length in a few reads instead of waking up for every character."""

    def bytes_needed(self) -> int: ...


@dataclass
class BusStats:
    transactions: int = 0
    ok: int = 0
    timeouts: int = 0
    frame_errors: int = 0
    port_errors: int = 0
    retries: int = 0
    stray_bytes: int = 0
    echo_bytes: int = 0
    reconnects: int = 0
    busy_s: float = 0.0  # time the line spent in transactions
    last_duration_s: float = 0.0


@dataclass
class Transaction(Generic[T]):
    request: bytes
    matcher_factory: Callable[[], ReplyMatcher[T]] | None  # None: broadcast, no reply
    timing: Timing
    device: str
    future: asyncio.Future[T | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _EchoFilter:
    """Drops the copy of our own request that half-duplex adapters read back."""

    def __init__(self, request: bytes) -> None:
        self._expected = request
        self._matched = 0

    def strip(self, data: bytes) -> tuple[bytes, int]:
        n = 0
        while self._matched < len(self._expected) and n < len(data):
            if data[n] != self._expected[self._matched]:
                self._matched = len(self._expected)  # not an echo after all: stop filtering
                break
            n += 1
            self._matched += 1
        return data[n:], n


class Bus:
    """`async with Bus(name, url, line) as bus: reply = await bus.transact(...)`."""

    def __init__(
        self,
        name: str,
        url: str,
        line: LineSettings,
        *,
        echo: bool = False,
        transport_factory: Callable[[str, LineSettings], Transport] = Transport,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        min_gap_s: float = 0.0,
    ) -> None:
        self.name = name
        self.url = url
        self.line = line
        self.echo = echo
        self.stats = BusStats()
        # the bytes of the last transaction as they were on the wire (after echo removal), for
        # `gridedge read --raw`: what was sent and what came back, not a re-encoding of either
        self.last_request = b""
        self.last_reply = bytearray()
        self.state = "closed"
        self._transport = transport_factory(url, line)
        self._queue: asyncio.PriorityQueue[tuple[int, int, Transaction[Any]]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._quiet_until = 0.0
        self._last_activity = 0.0
        self._reconnect = (reconnect_min_s, reconnect_max_s)
        self.min_gap_s = min_gap_s  # the bus's `gap_ms`: slow adapters / meters need more than the protocol
        self._task_group: asyncio.TaskGroup | None = None
        self._worker: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._started = time.monotonic()

    async def __aenter__(self) -> Self:
        self._task_group = asyncio.TaskGroup()
        await self._task_group.__aenter__()
        self._worker = self._task_group.create_task(self._run(), name=f"bus:{self.name}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._worker is not None:
            self._worker.cancel()
        assert self._task_group is not None
        try:
            await self._task_group.__aexit__(None, None, None)
        finally:
            await self._transport.close()
            self.state = "closed"
            self._fail_queued(PortUnavailable(f"bus {self.name} closed"))

    async def wait_connected(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        return self._connected.is_set()

    def utilisation(self) -> float:
        return self.stats.busy_s / max(time.monotonic() - self._started, 1e-9)

    async def transact(
        self,
        request: bytes,
        matcher_factory: Callable[[], ReplyMatcher[T]],
        timing: Timing,
        *,
        priority: Priority = Priority.POLL,
        device: str = "",
    ) -> T:
        """Send `request` and return the matched reply. Raises ResponseTimeout, BusFrameError,
        PortUnavailable; whatever the matcher raises that is not a FrameError propagates unchanged."""
        job: Transaction[T] = Transaction(request, matcher_factory, timing, device)
        self._queue.put_nowait((int(priority), next(self._order), job))
        result = await job.future
        assert result is not None
        return result

    async def send(self, request: bytes, timing: Timing, *, priority: Priority = Priority.COMMAND) -> None:
        """Send a frame nobody answers (a broadcast) and keep the line quiet for timing.quiet_after_s."""
        job: Transaction[Any] = Transaction(request, None, timing, "broadcast")
        self._queue.put_nowait((int(priority), next(self._order), job))
        await job.future

    # ---- worker ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self._reconnect[0]
        failures = 0
        while True:
            try:
                await self._transport.open()
            except PortUnavailable as exc:
                failures += 1
                self.state = "reconnecting"
                (log.warning if failures == 1 else log.debug)("bus %s: %s", self.name, exc)
                await self._fail_until(time.monotonic() + random.uniform(0, delay), exc)
                delay = min(delay * 2, self._reconnect[1])
                continue
            if failures:
                self.stats.reconnects += 1
                log.warning(
                    "bus %s: port %s open again after %d failed attempt(s)", self.name, self.url, failures
                )
            failures, delay = 0, self._reconnect[0]
            self.state = "open"
            self._connected.set()
            try:
                await self._serve()
            except PortUnavailable as exc:
                log.warning("bus %s: lost port: %s", self.name, exc)
                failures = 1
            finally:
                self._connected.clear()
                await self._transport.close()
            self.state = "reconnecting"

    async def _fail_until(self, deadline: float, exc: Exception) -> None:
        """While the port is down, fail queued work immediately instead of letting it pile up."""
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    _, _, job = await self._queue.get()
            except TimeoutError:
                return
            if not job.future.done():
                self.stats.port_errors += 1
                job.future.set_exception(PortUnavailable(f"bus {self.name}: {exc}"))

    def _fail_queued(self, exc: Exception) -> None:
        while not self._queue.empty():
            _, _, job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(exc)

    async def _serve(self) -> None:
        while True:
            _, _, job = await self._queue.get()
            if job.future.done():  # the caller gave up while queued
                continue
            try:
                result = await self._execute(job)
            except PortUnavailable as exc:
                self.stats.port_errors += 1
                if not job.future.done():
                    job.future.set_exception(exc)
                raise
            except (ResponseTimeout, BusFrameError, Exception) as exc:
                if not job.future.done():
                    job.future.set_exception(exc)
                continue
            if not job.future.done():
                job.future.set_result(result)

    async def _execute(self, job: Transaction[T]) -> T | None:
        attempts = 1 + (job.timing.retries if job.matcher_factory is not None else 0)
        for attempt in range(attempts):
            if attempt:
                self.stats.retries += 1
            try:
                return await self._once(job)
            except (ResponseTimeout, BusFrameError):
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    async def _once(self, job: Transaction[T]) -> T | None:
        timing = job.timing
        gap = max(timing.gap_before_s, self.min_gap_s)
        # the inter-frame silence is spent listening: strays heard meanwhile are dropped (and restart
        # the silence), and the request goes out as soon as the line has been quiet long enough
        quiet = max(self._quiet_until, self._last_activity + gap)
        self.stats.stray_bytes += await self._transport.discard_input(
            quiet, gap, max(quiet, time.monotonic()) + _MAX_QUIET_WAIT_S
        )
        started = time.monotonic()
        self.stats.transactions += 1
        try:
            self.last_request = job.request
            self.last_reply = bytearray()
            await self._transport.write(job.request)
            sent_at = time.monotonic()
            tx_done = sent_at + self.line.wire_time(len(job.request))
            if job.matcher_factory is None:
                self._quiet_until = tx_done + timing.quiet_after_s
                return None
            reply = await self._receive(job, job.matcher_factory(), tx_done + timing.first_byte_s)
            self.stats.ok += 1
            return reply
        finally:
            now = time.monotonic()
            self._last_activity = now
            self.stats.last_duration_s = now - started
            self.stats.busy_s += now - started
            self._quiet_until = max(self._quiet_until, now + timing.quiet_after_s)

    async def _receive(self, job: Transaction[T], matcher: ReplyMatcher[T], first_deadline: float) -> T:
        echo = _EchoFilter(job.request) if self.echo else None
        sized = matcher if isinstance(matcher, SizedReply) else None
        deadline = first_deadline
        received = 0
        while True:
            chunk = await self._transport.read(deadline - time.monotonic())
            if not chunk:
                self.stats.timeouts += 1
                what = "no reply" if received == 0 else f"incomplete reply ({received} bytes{_cut(matcher)})"
                raise ResponseTimeout(f"{job.device or 'device'} on {self.name}: {what}")
            if echo is not None:
                chunk, n = echo.strip(chunk)
                self.stats.echo_bytes += n
                if not chunk:
                    deadline = max(deadline, time.monotonic() + job.timing.inter_byte_s)
                    continue
            received += len(chunk)
            self.last_reply += chunk
            try:
                reply = matcher.feed(chunk)
            except FrameError as exc:
                self.stats.frame_errors += 1
                await self._settle(job.timing.inter_byte_s)
                raise BusFrameError(f"{job.device or 'device'} on {self.name}: {exc}") from exc
            if reply is not None:
                return reply
            if sized is not None:
                # the rest of the frame cannot arrive before its wire time: do not wake up per byte
                hold = self.line.wire_time(sized.bytes_needed() - 1) - _HOLD_MARGIN_S
                if hold >= _MIN_HOLD_S:
                    await self._transport.hold(hold)
            deadline = time.monotonic() + job.timing.inter_byte_s

    async def _settle(self, quiet_s: float) -> None:
        """After a garbled reply, wait until the line has been quiet for `quiet_s`."""
        while await self._transport.read(quiet_s):
            pass


def _cut(matcher: object) -> str:
    """What the matcher says was cut short when the line went quiet mid-reply (its `finish()`)."""
    if not isinstance(matcher, Finishing):
        return ""
    try:
        matcher.finish()
    except FrameError as exc:
        return f": {exc}"
    return ""
