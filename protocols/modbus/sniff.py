"""Modbus RTU frames in a sniffed burst, and one line of text for one (`protocols.sniff`).

Layer: pure. RTU has no start byte or length to search by, so only a whole stretch is believed: one
frame, or a request and its reply back to back (a fast slave answering within 3.5 characters), each
with a valid CRC. Anything else in the stretch is left for noise.
"""

from __future__ import annotations

from typing import Any, Final

from ..errors import ProtocolError
from .crc import crc16
from .describe import describe

_MIN: Final = 4  # unit, function, CRC


def find_frames(data: bytes) -> list[tuple[int, int, dict[str, Any]]]:
    whole = _frame(data)
    if whole is not None:
        return [(0, len(data), whole)]
    for cut in range(_MIN, len(data) - _MIN + 1):
        first = _frame(data[:cut])
        second = _frame(data[cut:]) if first is not None else None
        if first is not None and second is not None:
            return [(0, cut, first), (cut, len(data), second)]
    return []


def _frame(data: bytes) -> dict[str, Any] | None:
    if len(data) < _MIN or crc16(data[:-2]).to_bytes(2, "little") != data[-2:]:
        return None
    try:
        found = describe(data)
    except ProtocolError:
        return None
    return {"protocol": "modbus", **found} if found.get("crc_ok") else None


def summary(frame: dict[str, Any]) -> str:
    keys = ("unit", "function_name", "kind", "address", "count", "registers", "exception")
    return "Modbus " + " ".join(f"{k}={frame[k]}" for k in keys if k in frame)
