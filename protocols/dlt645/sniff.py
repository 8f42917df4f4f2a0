"""DL/T 645 frames in a sniffed burst, and one line of text for one (`protocols.sniff`).

Layer: pure. A frame's span starts at its wake-up preamble (the FE bytes a master sends before the
frame, DL/T 645-2007 §7.2): they are part of the frame on the wire, not noise.
"""

from __future__ import annotations

from typing import Any

from .describe import describe
from .splitter import split_frames

_WAKE = 0xFE


def find_frames(data: bytes) -> list[tuple[int, int, dict[str, Any]]]:
    found = []
    pos = 0
    for frame in split_frames(data):
        raw = frame.encode()
        at = data.find(raw, pos)
        if at < 0:
            continue
        start = at
        while start > pos and data[start - 1] == _WAKE:
            start -= 1
        found.append((start, at + len(raw), describe(raw)))
        pos = at + len(raw)
    return found


def summary(frame: dict[str, Any]) -> str:
    what = frame.get("canonical") or frame.get("values") or frame.get("error") or frame.get("data", "")
    return f"DL/T 645 {frame.get('direction', '')} {frame.get('address', '')} {frame.get('kind', '')} " + (
        f"{frame.get('di', '')} {what}"
    )
