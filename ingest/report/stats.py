"""Small statistics the figures share, written out so each figure's definition can say exactly what it
computes.

Layer: ingest reporting (pure).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["ident", "natural", "quantile"]


def quantile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks (numpy's default): position (n - 1) x q of the
    sorted values. None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def ident(value: Any) -> str:
    """A ticket or staff number as one text whichever way it was stored: 7, 7.0 and '7.0' are '7'
    (the hall events keep them as fields, where numbers become floats; the ratings as tags)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() and math.isfinite(number) else text


def natural(key: object) -> tuple[tuple[int, int | str], ...]:
    """Sort key that puts area-2 before area-10 and counter 9 before 10 (tuples: each part in turn)."""
    parts = key if isinstance(key, tuple) else (key,)
    out: list[tuple[int, int | str]] = []
    for part in parts:
        for chunk in re.split(r"(\d+)", str(part)):
            out.append((0, int(chunk)) if chunk.isdigit() else (1, chunk))
        out.append((2, ""))
    return tuple(out)
