"""Generic fault injection on a simulated line, applied to any protocol's reply bytes.

Each knob is a probability (0..1) or a set of device names that always suffer it; tests and the demo
change them at run time. Checksums of DL/T 645 and hall frames sit in the last-but-one byte and the
Modbus RTU CRC in the last two, so corrupting byte -2 breaks every protocol's check.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class FaultCounts:
    silenced: int = 0
    corrupted: int = 0
    garbage: int = 0
    truncated: int = 0
    slowed: int = 0
    echoed: int = 0
    collisions: int = 0
    noise_bursts: int = 0


@dataclass
class Faults:
    silence: float = 0.0
    corrupt: float = 0.0
    garbage: float = 0.0
    truncate: float = 0.0
    slow: float = 0.0
    slow_extra_s: float = 1.0
    dead: set[str] = field(default_factory=set)  # devices that never answer
    seed: int = 0
    counts: FaultCounts = field(default_factory=FaultCounts)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def apply(self, device: str, reply: bytes) -> tuple[bytes | None, float]:
        """Return (bytes to send or None for silence, extra delay in seconds)."""
        rng = self._rng
        if device in self.dead or rng.random() < self.silence:
            self.counts.silenced += 1
            return None, 0.0
        data = bytearray(reply)
        if len(data) >= 2 and rng.random() < self.corrupt:
            data[-2] ^= 0x5A
            self.counts.corrupted += 1
        if len(data) >= 3 and rng.random() < self.truncate:
            del data[rng.randrange(1, len(data)) :]
            self.counts.truncated += 1
        if rng.random() < self.garbage:
            data[:0] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
            self.counts.garbage += 1
        extra = 0.0
        if rng.random() < self.slow:
            extra = self.slow_extra_s
            self.counts.slowed += 1
        return bytes(data), extra

    def noise(self, n: int) -> bytes:
        self.counts.noise_bursts += 1
        return bytes(self._rng.randrange(256) for _ in range(n))


def take_fault(faults: dict[str, int | None]) -> str | None:
    """The device fault that applies to this request (the first injected one), counting it down: a
    fault injected for N requests is removed after the Nth; one injected with None stays until cleared."""
    for fault, remaining in list(faults.items()):
        if remaining is not None:
            if remaining <= 1:
                del faults[fault]
            else:
                faults[fault] = remaining - 1
        return fault
    return None
