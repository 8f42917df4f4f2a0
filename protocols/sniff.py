"""Decoding one sniffed burst for `gridedge sniff`: the frames of every registered kind, or noise.

Layer: pure (bytes in, JSON-serialisable dicts out). Must not: do I/O, read clocks or print; the
gateway's `sniff` command owns the port and formats the output.

One burst (bytes between line silences) may carry frames of several kinds when meters and hall devices
share a line, e.g. a hall POLL and its reply, or a Modbus reply followed at once by a hall request.
Each kind's codec offers `find_frames(stretch) -> [(start, end, description)]`; kinds are asked in
the order of their `sniff_rank` (`protocols.kinds`), strictest framing first, and each stretch of bytes
that one kind does not explain is offered to the next. What no kind explains is reported as noise, so
a burst of pure noise stays one noise entry. Frames come out in the order they were on the wire.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from . import kinds

Found = tuple[int, int, dict[str, Any]]


class Codec(Protocol):
    def find_frames(self, data: bytes) -> list[Found]: ...

    def summary(self, frame: dict[str, Any]) -> str: ...


def codec(kind: str) -> Codec:
    module: Codec = importlib.import_module(f"protocols.{kinds.get(kind).name}")
    return module


def _sniffable(kind: str) -> bool:
    """A kind whose codec offers `find_frames` yet (a kind being added is left out until it does)."""
    return hasattr(codec(kind), "find_frames")


def choices() -> tuple[str, ...]:
    return ("auto", *(name for name in kinds.names() if _sniffable(name)))


def decode_burst(burst: bytes, protocol: str = "auto") -> list[dict[str, Any]]:
    """Every frame found in one burst, decoded; unrecognised bytes are reported as noise."""
    if protocol not in choices():
        raise ValueError(f"protocol {protocol!r}: expected one of {', '.join(choices())}")
    order = sorted(kinds.KINDS.values(), key=lambda k: k.sniff_rank)
    names = [k.name for k in order if k.name in choices()] if protocol == "auto" else [protocol]
    return _explain(burst, names) if burst else [_noise(burst)]


def _explain(data: bytes, names: list[str]) -> list[dict[str, Any]]:
    if not names:
        return [_noise(data)]
    first, rest = names[0], names[1:]
    out: list[dict[str, Any]] = []
    pos = 0
    for start, end, frame in codec(first).find_frames(data):
        if start > pos:
            out += _explain(data[pos:start], rest)
        out.append(frame)
        pos = end
    if pos < len(data):
        out += _explain(data[pos:], rest)
    return out


def _noise(data: bytes) -> dict[str, Any]:
    return {"protocol": "unknown", "noise": data.hex(" ")}


def summary(frame: dict[str, Any]) -> str:
    """One line of text for one decoded frame."""
    if frame["protocol"] in kinds.KINDS:
        return codec(frame["protocol"]).summary(frame)
    return f"noise {frame['noise']}"
