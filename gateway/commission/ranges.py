"""Id lists given on the command line: `1-32`, `1,5,9`, `0x10-0x1F` (shared by the scan commands).

Layer: gateway commissioning, pure.
"""

from __future__ import annotations

from ..errors import DeviceError


def parse_ids(spec: str, lo: int, hi: int, option: str, what: str) -> list[int]:
    """The ids in `spec`; DeviceError naming `option` when any lies outside lo..hi."""
    out: list[int] = []
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        out += range(int(first, 0), int(last or first, 0) + 1)
    bad = [i for i in out if not lo <= i <= hi]
    if bad:
        raise DeviceError(f"{option}: {what} outside {lo}..{hi}: {bad[:5]}")
    return out
