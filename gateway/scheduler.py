"""Poll scheduling: one named task per device, intervals aligned to wall-clock boundaries.

Layer: gateway core. Readings of many gateways line up in dashboards because every device polls at
multiples of its interval (plus a small, stable per-device offset so a bus does not get every request
at once); each poll is timestamped when it was acquired, not per batch. A failed poll publishes no
values (never an old value with a fresh timestamp); it updates the device's health instead, and a
quarantined device is skipped until its probe time so it cannot slow the live devices on its bus.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .drivers.base import Driver, PollResult
from .errors import GatewayError, PortUnavailable
from .health import DeviceHealth, HealthPolicy

log = logging.getLogger(__name__)


class Sink(Protocol):
    async def poll_result(self, driver: Driver, result: PollResult) -> None: ...

    async def health(self, driver: Driver, dev: str, health: DeviceHealth) -> None: ...


def phase_offset(device_id: str, interval_s: float) -> float:
    """A stable offset in [0, min(5 % of the interval, 2 s)) derived from the device id."""
    digest = hashlib.blake2b(device_id.encode(), digest_size=4).digest()
    return (int.from_bytes(digest, "big") / 2**32) * min(0.05 * interval_s, 2.0)


def next_slot(now: float, interval_s: float, offset: float) -> float:
    """The next wall-clock time that is a multiple of the interval, plus the offset."""
    return (math.floor((now - offset) / interval_s) + 1) * interval_s + offset


@dataclass
class DeviceRunner:
    driver: Driver
    sink: Sink
    policy: HealthPolicy = field(default_factory=HealthPolicy)
    wall: Callable[[], float] = time.time
    # shared by the devices of one bus: a poll runs its transactions back to back instead of
    # interleaving with every other device's, so each reading is complete (and published) in the
    # time of its own poll, not of the whole bus cycle; commands do not take it and still go first
    turn: asyncio.Lock | None = None
    health: DeviceHealth = field(init=False)
    overruns: int = 0
    acquired: float = 0.0  # wall time the last poll began talking to the device (its bus turn taken)

    def __post_init__(self) -> None:
        self.health = DeviceHealth(self.policy)

    async def run(self, *, first_poll_delay_s: float = 0.0) -> None:
        interval = self.driver.config.interval_s
        offset = phase_offset(self.driver.id, interval)
        await asyncio.sleep(first_poll_delay_s)
        due: float | None = None
        while True:
            await self.poll_once()
            now = self.wall()
            if due is None:
                # the start-up poll runs at once, off the grid: the slot right after it would publish a
                # second reading of the device moments later, so the first slot is half an interval on
                due = next_slot(max(now, self.acquired + interval / 2), interval, offset)
            else:
                if now - due > interval:
                    self.overruns += 1
                due = next_slot(now, interval, offset)
            await asyncio.sleep(max(due - now, 0.0))

    async def poll_once(self) -> None:
        if not self.health.may_poll(time.monotonic()):
            return
        self.driver.probing = self.health.state == "probing"
        started, self.acquired = time.monotonic(), self.wall()
        try:
            if self.turn is None:
                result = await self.driver.poll()
            else:
                async with self.turn:
                    started, self.acquired = time.monotonic(), self.wall()
                    result = await self.driver.poll()
        except PortUnavailable as exc:
            self.health.port_down(type(exc).__name__)  # the bus logs the port loss and its reconnects
            log.debug("%s: poll skipped: %s", self.driver.id, exc)
        except GatewayError as exc:
            first = self.health.consecutive_failures == 0
            self.health.failure(time.monotonic(), type(exc).__name__)
            (log.warning if first else log.debug)(
                "%s: poll failed (%s): %s", self.driver.id, self.health.state, exc
            )
        else:
            latency_ms = (time.monotonic() - started) * 1000
            if self.health.consecutive_failures:
                log.warning("%s: answering again", self.driver.id)
            self.health.success(int(self.wall() * 1000), latency_ms)
            await self.sink.poll_result(self.driver, result)
            for dev, sub in result.health.items():
                sub.changed = False
                await self.sink.health(self.driver, dev, sub)
        if self.health.changed:
            self.health.changed = False
            await self.sink.health(self.driver, self.driver.id, self.health)
