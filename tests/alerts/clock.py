"""The alert tests' injected clock: UNIX seconds that only move when the test says so."""

from __future__ import annotations

T0_S = 1_763_800_000.0  # 2025-11-22


class FakeClock:
    def __init__(self, t: float = T0_S) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t
