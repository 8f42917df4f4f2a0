"""The start-up poll is not followed by a second reading moments later (issue 20 item 7).

The scheduler polls a device at once when the gateway starts (a reading within seconds, not up to an
interval later), then on the wall-clock grid. A start 0.3 s before a grid slot used to poll again at
that slot: two readings of one device 0.3 s apart, then one per interval. The wall clock is shifted
so that the gateway starts there every time; the device is a stand-in that answers at once (what is
under test is when the scheduler polls, not a protocol).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.drivers.base import Driver, PollResult, Sample
from gateway.health import DeviceHealth
from gateway.line import LineSettings
from gateway.scheduler import DeviceRunner, phase_offset

INTERVAL_S = 1.0


@dataclass(frozen=True)
class Config:
    id: str = "meter-1"
    interval_s: float = INTERVAL_S


class AnswersAtOnce(Driver):
    kind = "test"

    async def poll(self) -> PollResult:
        return PollResult(
            samples=[Sample(seq=0, ts=int(time.time() * 1000), values={"energy_import_kwh": 1.0})]
        )

    @classmethod
    def poll_airtime_s(cls, config: Any, line: LineSettings) -> float:
        return 0.0


@dataclass
class Polls:
    wall: Any
    at: list[float] = field(default_factory=list)
    third: asyncio.Event = field(default_factory=asyncio.Event)

    async def poll_result(self, driver: Driver, result: PollResult) -> None:
        self.at.append(self.wall())
        if len(self.at) >= 3:
            self.third.set()

    async def health(self, driver: Driver, dev: str, health: DeviceHealth) -> None:
        pass


async def test_the_slot_right_after_the_start_up_poll_is_skipped() -> None:
    config = Config()
    slot = 1_000_000_000.0 + phase_offset(config.id, INTERVAL_S)  # a grid slot of this device
    shift = slot - 0.3 - time.time()  # "now" is 0.3 s before it

    def wall() -> float:
        return time.time() + shift

    polls = Polls(wall)
    driver = AnswersAtOnce(config, None, None)  # type: ignore[arg-type]  # needs no bus, no context
    runner = DeviceRunner(driver, polls, wall=wall)
    task = asyncio.create_task(runner.run(), name="test:runner")
    try:
        await asyncio.wait_for(polls.third.wait(), 5 * INTERVAL_S)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    first, second, third = polls.at[:3]
    assert second - first >= INTERVAL_S / 2, f"a second reading {second - first:.2f} s after the first"
    assert abs(second - (slot + INTERVAL_S)) < 0.1, "then on the grid: the slot after the skipped one"
    assert abs(third - second - INTERVAL_S) < 0.1
