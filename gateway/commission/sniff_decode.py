"""Decoding of one sniffed burst for `gridedge sniff`: DL/T 645, Modbus RTU and hall bus frames, or noise.

Layer: gateway commissioning, pure (bytes in, JSON-serialisable dicts out). Must not: do I/O, read
clocks or print; `sniff` owns the port and formats the output.

One burst (bytes between line silences) may carry frames of several protocols when meters and hall
devices share a line, e.g. a hall POLL and its reply, or a Modbus reply followed at once by a hall
request. The hall frame is the strictest (`FF 68 L L 68 ... CS 16`, with both L and the CS checked), so
hall frames are taken out first; each stretch of bytes between them is then read as DL/T 645 (several
frames, preambles and noise) or else as Modbus RTU (the whole stretch, or a request and its reply back
to back: both CRCs must hold). A stretch that none of them explains is reported as noise, so a burst of
pure noise stays one noise entry. Frames come out in the order they were on the wire.
"""

from __future__ import annotations

from typing import Any, Final

from protocols import dlt645, hall, modbus
from protocols.errors import ProtocolError

PROTOCOLS: Final = ("auto", "dlt645", "modbus", "hall")
_MODBUS_MIN: Final = 4  # unit, function, CRC
# the decoded meaning of a hall frame, in the order a field engineer reads it
_HALL_FIELDS: Final = (
    "event", "seq", "ack_seq", "device_kind", "firmware", "business", "ticket", "waiting", "counter",
    "staff", "level", "label", "time", "code", "reason", "error",
)  # fmt: skip


def decode_burst(burst: bytes, protocol: str = "auto") -> list[dict[str, Any]]:
    """Every frame found in one burst, decoded; unrecognised bytes are reported as noise."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    frames: list[dict[str, Any]] = []
    for piece in _hall_pieces(burst) if protocol in ("auto", "hall") else [burst]:
        if isinstance(piece, hall.Frame):
            frames.append(hall.describe(piece.encode()))
        else:
            frames.extend(_decode_stretch(piece, protocol))
    if not frames:
        frames.append(_noise(burst))
    return frames


def _hall_pieces(burst: bytes) -> list[hall.Frame | bytes]:
    """The burst cut into hall frames and the (non-empty) byte stretches between them, in order."""
    pieces: list[hall.Frame | bytes] = []
    pos = 0
    for frame in hall.split_frames(burst):
        # a CS-valid frame re-encodes to exactly its wire bytes, so its position is where they are
        at = burst.find(frame.encode(), pos)
        if at < 0:  # cannot happen for a valid frame; keep the bytes rather than lose them
            continue
        if at > pos:
            pieces.append(burst[pos:at])
        pieces.append(frame)
        pos = at + len(frame.encode())
    if pos < len(burst):
        pieces.append(burst[pos:])
    return pieces


def _decode_stretch(data: bytes, protocol: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if protocol in ("auto", "dlt645"):
        found = [dlt645.describe(frame.encode()) for frame in dlt645.split_frames(data)]
    if not found and protocol in ("auto", "modbus"):
        found = _modbus(data)
    return found or [_noise(data)]


def _modbus(data: bytes) -> list[dict[str, Any]]:
    """The stretch as one RTU frame, or as two back to back (a reply that followed within 3.5 chars)."""
    whole = _modbus_frame(data)
    if whole is not None:
        return [whole]
    for cut in range(_MODBUS_MIN, len(data) - _MODBUS_MIN + 1):
        first = _modbus_frame(data[:cut])
        second = _modbus_frame(data[cut:]) if first is not None else None
        if first is not None and second is not None:
            return [first, second]
    return []


def _modbus_frame(data: bytes) -> dict[str, Any] | None:
    if len(data) < _MODBUS_MIN or modbus.crc16(data[:-2]).to_bytes(2, "little") != data[-2:]:
        return None
    try:
        found = modbus.describe(data)
    except ProtocolError:
        return None
    return {"protocol": "modbus", **found} if found.get("crc_ok") else None


def _noise(data: bytes) -> dict[str, Any]:
    return {"protocol": "unknown", "noise": data.hex(" ")}


def summary(frame: dict[str, Any]) -> str:
    """One line of text for one decoded frame."""
    if frame["protocol"] == "dlt645":
        what = frame.get("canonical") or frame.get("values") or frame.get("error") or frame.get("data", "")
        return (
            f"DL/T 645 {frame.get('direction', '')} {frame.get('address', '')} {frame.get('kind', '')} "
            + (f"{frame.get('di', '')} {what}")
        )
    if frame["protocol"] == "modbus":
        keys = ("unit", "function_name", "kind", "address", "count", "registers", "exception")
        return "Modbus " + " ".join(f"{k}={frame[k]}" for k in keys if k in frame)
    if frame["protocol"] == "hall":
        return _hall_summary(frame)
    return f"noise {frame['noise']}"


def _hall_summary(frame: dict[str, Any]) -> str:
    who = "broadcast" if frame.get("broadcast") else frame["address"]
    kind, function = frame.get("kind", "?"), frame.get("function_name") or f"function {frame['function']}"
    if function.replace("_", " ") not in kind:  # "acknowledgement (display)", "error reply (poll)"
        kind += f" ({function})"
    fields = " ".join(f"{k}={frame[k]}" for k in _HALL_FIELDS if frame.get(k) is not None)
    bad = "" if frame.get("cs_ok", True) and frame.get("end_ok", True) else " (bad CS or end byte)"
    return f"hall {frame['direction']} {who} {kind} {fields}".rstrip() + bad
