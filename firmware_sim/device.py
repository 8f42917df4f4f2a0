"""The interface every simulated device implements; a `firmware_sim.line.Line` hosts them.

Layer: simulator device model. A device is pure logic: it sees one request burst (the bytes the
master sent, gathered by the line until the wire went quiet) and returns its reply and turnaround.
The line does everything physical: pty/TCP I/O, baud-rate pacing (request airtime before the device
"hears" it, reply airtime byte by byte), echo, and the generic faults (silence, corrupt checksum,
garbage, truncation, slow replies). Must not: do I/O, sleep, or read the wall clock (use `now`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class SimReply:
    data: bytes
    turnaround_s: float  # quiet time between the end of the request and the first reply byte


@runtime_checkable
class SimDevice(Protocol):
    protocol: str  # "dlt645" | "modbus" | "hall"
    name: str  # stable id used for fault injection and control, e.g. "000000000001" or "unit-3"

    def respond(self, request: bytes, now: float) -> SimReply | None:
        """Answer one request burst (may contain leading noise or frames for other devices).
        Return None to stay silent (not addressed to me, broadcast, or a frame I cannot parse)."""
        ...

    def tick(self, now: float) -> None:
        """Advance physics/state to simulated time `now` (UNIX seconds, possibly compressed)."""
        ...
