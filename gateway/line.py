"""Serial line settings and wire-time arithmetic (pure).

Honest timing: a pty delivers bytes instantly, real RS-485 does not; every timeout and the airtime
budget is computed from these figures, never from what a pty happens to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Parity = Literal["N", "E", "O"]


@dataclass(frozen=True, slots=True)
class LineSettings:
    baud: int = 9600
    bytesize: int = 8
    parity: Parity = "N"
    stopbits: int = 1

    @property
    def bits_per_char(self) -> int:
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    def char_time(self) -> float:
        """Seconds one character occupies on the wire (0 for a line without a baud rate, e.g. TCP)."""
        return self.bits_per_char / self.baud if self.baud else 0.0

    def wire_time(self, nbytes: int) -> float:
        return nbytes * self.char_time()

    def describe(self) -> str:
        return f"{self.baud} {self.bytesize}{self.parity}{self.stopbits}"


@dataclass(frozen=True, slots=True)
class Timing:
    """Per-transaction timing. `first_byte_s` counts from the moment the request's last byte has left
    the wire (its airtime is added by the bus); `inter_byte_s` is the longest silence inside a reply;
    `gap_before_s` is the quiet time the line must have had before this request (inter-frame silence);
    `quiet_after_s` holds the line quiet after the transaction (e.g. after a broadcast time sync)."""

    first_byte_s: float
    inter_byte_s: float
    gap_before_s: float = 0.0
    quiet_after_s: float = 0.0
    retries: int = 0
