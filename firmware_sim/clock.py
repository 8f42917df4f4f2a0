"""Simulated time: UNIX seconds that may run faster than the wall clock (e.g. a hall day in minutes)."""

from __future__ import annotations

import time


class SimClock:
    def __init__(self, start: float | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.start = time.time() if start is None else start
        self.speed = speed
        self._m0 = time.monotonic()

    def __call__(self) -> float:
        return self.start + (time.monotonic() - self._m0) * self.speed

    def real_seconds(self, sim_seconds: float) -> float:
        return sim_seconds / self.speed
