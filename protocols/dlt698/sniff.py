"""DL/T 698.45 frames in a sniffed burst, and one line of text for one (`protocols.sniff`).

Layer: pure. Must not: do I/O or print. A frame is believed only with a valid HCS, its full length,
the end byte and a valid FCS (the same checks as the splitter); its span starts at its FE wake-up
preamble. The spans are found on the bytes as sent, so a scrambled frame or one whose L uses the
kilobyte unit is described exactly as it was on the wire.
"""

from __future__ import annotations

from typing import Any

from .describe import describe
from .frame import PREAMBLE_BYTE, START, frame_length_at, frame_ok_at, header_ok_at


def find_frames(data: bytes) -> list[tuple[int, int, dict[str, Any]]]:
    found: list[tuple[int, int, dict[str, Any]]] = []
    pos, i = 0, data.find(START)
    while i >= 0:
        length = frame_length_at(data, i) if header_ok_at(data, i) else 0
        if length and i + length <= len(data) and frame_ok_at(data, i, length) == (True, True):
            start = i
            while start > pos and data[start - 1] == PREAMBLE_BYTE:
                start -= 1
            found.append((start, i + length, describe(data[i : i + length])))
            pos = i + length
            i = data.find(START, pos)
        else:
            i = data.find(START, i + 1)
    return found


def summary(frame: dict[str, Any]) -> str:
    apdu = frame.get("apdu") or {}
    result = apdu.get("result") or {}
    target = result.get("oad") or (apdu.get("oad") or apdu.get("omd") or {})
    if isinstance(target, dict):
        target = target.get("oad") or target.get("omd") or ""
    what = result.get("values") or result.get("dar_name") or frame.get("error") or _listed(apdu)
    service = apdu.get("service") or (
        f"fragment {frame['fragment_sequence']}" if frame.get("fragment") else ""
    )
    who = f"{frame.get('direction', '')} {frame.get('address', '')}"
    return " ".join(part for part in ("DL/T 698.45", who, service, str(target), str(what)) if part)


def _listed(apdu: dict[str, Any]) -> str:
    """A NormalList's objects (request) or each object's values or DAR name (reply), and the DAR of a
    SET / ACTION answer: what a poll of a DL/T 698.45 meter shows on one line."""
    parts = []
    for item in apdu.get("results") or apdu.get("oads") or []:
        values = item.get("values")
        shown = " ".join(f"{k}={v}" for k, v in values.items()) if values else item.get("dar_name", "")
        parts.append(f"{item.get('oad', '')}{':' if shown else ''}{shown}")
    dar = apdu.get("dar")
    if isinstance(dar, dict) and "name" in dar:
        parts.append(str(dar["name"]))
    return " ".join(parts)
