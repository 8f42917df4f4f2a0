"""InfluxDB line protocol, millisecond precision (writers send `precision=ms`).

Layer: pure encoding for the ingest (no I/O, no clock). Used by the writer and the alert engine.

Escaping follows the line-protocol reference (1.x and 2.x agree):
  measurement       `,` and space
  tag keys/values   `,` `=` and space           (empty tag values are skipped: Influx rejects them)
  field keys        `,` `=` and space
  string fields     `"` and `\\`, inside double quotes
A newline cannot appear anywhere in a line; it is written as the two characters `\\n` (a backslash
that escapes nothing is kept literally by InfluxDB), so one hostile value cannot split a batch.
Integers get the `i` suffix; booleans are `true`/`false`; floats must be finite.

Hot path: escaped keys are memoised (bounded) and values without special characters are returned as is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

__all__ = ["escape_field_key", "escape_measurement", "escape_tag", "field_set", "point", "series"]

_MEAS_TABLE: Final = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r"})
_TAG_TABLE: Final = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\r": r"\r"})
_STR_TABLE: Final = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": r"\n", "\r": r"\r"})
_TAG_SPECIAL: Final = frozenset(",= \n\r")
_MEMO_LIMIT: Final = 65_536
_tag_memo: dict[str, str] = {}


def escape_measurement(name: str) -> str:
    return name.translate(_MEAS_TABLE)


def escape_tag(text: str) -> str:
    """Escape a tag key, tag value or field key (same rules). Memoised: the vocabulary is small."""
    cached = _tag_memo.get(text)
    if cached is not None:
        return cached
    escaped = text.translate(_TAG_TABLE) if not _TAG_SPECIAL.isdisjoint(text) else text
    if len(_tag_memo) >= _MEMO_LIMIT:
        _tag_memo.clear()
    _tag_memo[text] = escaped
    return escaped


escape_field_key = escape_tag


def series(measurement: str, tags: Mapping[str, str]) -> str:
    """`measurement,k=v,...` with tags sorted by key (InfluxDB's preferred order), empty values skipped."""
    parts = [escape_measurement(measurement)]
    for key in sorted(tags):
        value = tags[key]
        if value:
            parts.append(f"{escape_tag(key)}={escape_tag(value)}")
    return ",".join(parts)


def field_set(values: Mapping[str, float | int | bool | str]) -> str:
    """`k=v,...`; raise ValueError naming the field for a non-finite float or an unsupported type."""
    out = []
    for key, value in values.items():
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):  # type: ignore[arg-type]
                raise ValueError(f"field {key!r}: {value!r} is not a finite number")
            text = repr(value)
        elif kind is bool:
            text = "true" if value else "false"
        elif kind is int:
            text = f"{value}i"
        elif kind is str:
            text = f'"{value.translate(_STR_TABLE)}"'  # type: ignore[union-attr]
        elif isinstance(value, bool | int | float | str):  # subclasses (IntEnum, StrEnum): rare path
            return field_set({k: _plain(v) for k, v in values.items()})
        else:
            raise ValueError(f"field {key!r}: unsupported type {kind.__name__}")
        out.append(f"{escape_tag(key)}={text}")
    return ",".join(out)


def point(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, float | int | bool | str],
    ts_ms: int,
) -> str:
    """One line (no trailing newline). Raises ValueError when there is no field to write."""
    if not fields:
        raise ValueError(f"{measurement}: a point needs at least one field")
    return f"{series(measurement, tags)} {field_set(fields)} {int(ts_ms)}"


def _plain(value: float | int | bool | str) -> float | int | bool | str:
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    return value
