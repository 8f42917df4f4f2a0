"""The alert role's durability steps: a batch's publishes confirmed, then the state it produced saved,
then its MQTT deliveries acknowledged — in batch order, while the engine goes on evaluating.

Layer: ingest alert service. Must not: evaluate (the engine did), publish (the outputs did), or finish
a step before an earlier one.

Why: each alert publish used to be awaited under the engine's lock (up to 10 s per change with a slow
broker), so one slow PUBACK stalled every rule. Now the role submits a batch's messages into the
publisher's window, takes the engine's `prepare()`d copy and queues a `Step`; this task finishes the
steps one by one. The durability promise is unchanged: the store holds only state whose changes the
broker acknowledged (or gave up on after `CONFIRM_TIMEOUT_S`, counted as unconfirmed, as before), and
the deliveries are acknowledged only after that, so a crash re-evaluates and re-publishes (idempotent).
The queue is bounded (`DEPTH` steps): past it the engine waits.

Steps that queued up while one was being finished, or within `LINGER_S` of it, are finished together:
their publishes confirmed, InfluxDB written, their prepared states merged into one save (`store.merge`:
the same end state as saving them one by one, in one transaction) and their deliveries acknowledged in
one call, in order. When the engine keeps up its batches are small (~85 readings at 11,000 readings/s)
and a save and an acknowledgement per batch (a transaction and a thread hop) held the queue at its
depth: the engine waited for the committer and the saved state lagged it by up to 64 steps. A save of
90 meters' parts is 0.39 ms, of 450 0.65 ms: lingering 25 ms when a step has `LINGER_MIN` deliveries
or more (the alerts are published meanwhile; only their state and acknowledgements wait) saves ~3 us
of the ~30 the engine spends per reading. A slow stream (a step of a few deliveries, a tick) does not
wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..subscriber import Delivery
from .engine import Engine, Prepared
from .outputs import CONFIRM_TIMEOUT_S, Outputs, Sent
from .store import merge

DEPTH = 64  # batches whose publishes may be in flight at once
LINGER_S = 0.025  # a step of a busy stream waits this long for the next ones, to be finished with them
LINGER_MIN = 32  # deliveries in a step that say the stream is busy (1 a second: no wait)
DRAIN_S = CONFIRM_TIMEOUT_S  # at stop: how long the queued steps may wait for their acks, in all


@dataclass
class Step:
    sent: list[Sent]
    prepared: Prepared | None
    batch: list[Delivery]
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Committer:
    def __init__(
        self,
        engine: Engine,
        outputs: Outputs,
        ack: Callable[[list[Delivery]], Awaitable[int]],
        *,
        depth: int = DEPTH,
    ) -> None:
        self.engine, self.outputs, self._ack = engine, outputs, ack
        self._queue: asyncio.Queue[Step] = asyncio.Queue(maxsize=depth)
        self._current: list[Step] = []  # taken from the queue, not finished (a cancelled run)
        self.finished = 0  # finishes (saves and acknowledgements); steps finished: `steps`
        self.steps = 0

    @property
    def queued(self) -> int:
        return self._queue.qsize() + len(self._current)

    async def put(self, sent: list[Sent], prepared: Prepared | None, batch: list[Delivery]) -> Step:
        """Queue one step (waits while `depth` steps are unfinished); await `step.done` to follow it."""
        step = Step(sent, prepared, batch)
        await self._queue.put(step)
        return step

    async def run(self) -> None:
        """Finish steps in order, those queued meanwhile together (a named task of the role)."""
        while True:
            if not self._current:
                self._current = [await self._queue.get()]
                if len(self._current[0].batch) >= LINGER_MIN:
                    await asyncio.sleep(LINGER_S)
            self._take_queued()
            await self._finish(self._current, CONFIRM_TIMEOUT_S)
            self._current = []

    async def drain(self) -> None:
        """At stop (the run task cancelled): finish what is queued, waiting `DRAIN_S` in all for acks."""
        deadline = time.monotonic() + DRAIN_S
        self._take_queued()
        if self._current:
            await self._finish(self._current, max(0.0, deadline - time.monotonic()))
            self._current = []

    def _take_queued(self) -> None:
        while not self._queue.empty():
            self._current.append(self._queue.get_nowait())

    async def _finish(self, steps: list[Step], timeout: float) -> None:
        await self.outputs.confirm([s for step in steps for s in step.sent], timeout)
        await self.outputs.flush_influx()
        self.engine.save(merge([step.prepared for step in steps]))
        batch = [d for step in steps for d in step.batch]
        if batch:
            await self._ack(batch)
        self.finished += 1
        self.steps += len(steps)
        for step in steps:
            if not step.done.done():
                step.done.set_result(None)
