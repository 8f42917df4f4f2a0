"""Hall frames in a sniffed burst, and one line of text for one (`protocols.sniff`).

Layer: pure. The hall frame is the strictest on a shared line (`FF 68 L L 68 ... CS 16`, both L and
the CS checked), so its kind is asked first and cuts its frames out of the burst.
"""

from __future__ import annotations

from typing import Any, Final

from .describe import describe
from .splitter import split_frames

# the decoded meaning of a hall frame, in the order a field engineer reads it
_FIELDS: Final = (
    "event", "seq", "ack_seq", "device_kind", "firmware", "business", "ticket", "waiting", "counter",
    "staff", "level", "label", "time", "code", "reason", "error",
)  # fmt: skip


def find_frames(data: bytes) -> list[tuple[int, int, dict[str, Any]]]:
    found = []
    pos = 0
    for frame in split_frames(data):
        raw = frame.encode()  # a CS-valid frame re-encodes to exactly its wire bytes
        at = data.find(raw, pos)
        if at < 0:  # cannot happen for a valid frame; the bytes stay for the next kind or as noise
            continue
        found.append((at, at + len(raw), describe(raw)))
        pos = at + len(raw)
    return found


def summary(frame: dict[str, Any]) -> str:
    who = "broadcast" if frame.get("broadcast") else f"{frame['address']} ({frame.get('role', '?')})"
    kind, function = frame.get("kind", "?"), frame.get("function_name") or f"function {frame['function']}"
    if function.replace("_", " ") not in kind:  # "acknowledgement (display)", "error reply (poll)"
        kind += f" ({function})"
    fields = " ".join(f"{k}={frame[k]}" for k in _FIELDS if frame.get(k) is not None)
    bad = "" if frame.get("cs_ok", True) and frame.get("end_ok", True) else " (bad CS or end byte)"
    return f"hall {frame['direction']} {who} {kind} {fields}".rstrip() + bad
