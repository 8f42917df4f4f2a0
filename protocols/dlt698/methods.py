"""DL/T 698.45 methods (OMD) the catalogue knows: their names and how an ACTION parameter reads, for
`describe` (a field engineer reading a captured ACTION sees "trip" and its relay, not 8000/129 and a bare
tree).

Layer: pure data (protocols). Must not: do I/O, or build requests (the driver's `control` does).

dlt698.md §4: 4000 m127 broadcast time (date_time_s); 8000 m127/128 alarm on/off (NULL), m129 trip
`array{structure{relay OAD, alarm delay unsigned min, outage long-unsigned min (0 = until closed),
auto-close bool}}`, m130 close `array{structure{relay OAD, enum 0 allow close / 1 close now}}`; 8001 m127
keep-power on, m128 off, m129 cancel auto keep-power (NULL); 8002 m127 arrears alarm on {periods, text},
m128 off. All but 4000 m127 are from one source (and a master app): `verified` False.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from .axdr import Data
from .datatypes import Oad
from .objects import to_python
from .tags import DataType


@dataclass(frozen=True, slots=True)
class Method:
    """An OMD the catalogue knows: its name and how its ACTION parameter reads. `fields` names the
    members of the structure (`layout` "structure", or "array" of such structures) or the one value
    ("value"); "none": the parameter is NULL. `enums` names the values of enum members."""

    oi: int
    method: int
    name: str
    description: str
    layout: str = "none"
    fields: tuple[str, ...] = ()
    enums: tuple[tuple[str, dict[int, str]], ...] = ()
    verified: bool = True


_TRIP = ("relay", "alarm_delay_min", "outage_min", "auto_close")  # outage 0 = until closed
_CLOSE_MODES: Final = {0: "allow close (the customer closes it)", 1: "close now"}
METHODS: Final[dict[tuple[int, int], Method]] = {
    (m.oi, m.method): m
    for m in (
        Method(0x4000, 127, "broadcast_time", "set the clock, broadcast", "value", ("time",)),
        Method(0x8000, 127, "alarm_on", "remote control: alarm on", verified=False),
        Method(0x8000, 128, "alarm_off", "remote control: alarm off", verified=False),
        Method(0x8000, 129, "trip", "remote control: trip (open the relay)", "array", _TRIP, verified=False),
        Method(
            0x8000,
            130,
            "close",
            "remote control: close or allow closing",
            "array",
            ("relay", "mode"),
            (("mode", _CLOSE_MODES),),
            verified=False,
        ),
        Method(0x8001, 127, "keep_power_on", "keep-power on (no trip)", verified=False),
        Method(0x8001, 128, "keep_power_off", "keep-power off", verified=False),
        Method(0x8001, 129, "cancel_auto_keep_power", "cancel automatic keep-power", verified=False),
        Method(
            0x8002,
            127,
            "arrears_alarm_on",
            "arrears alarm on",
            "structure",
            ("periods", "text"),
            verified=False,
        ),
        Method(0x8002, 128, "arrears_alarm_off", "arrears alarm off", verified=False),
    )
}


def method(oi: int, number: int) -> Method | None:
    return METHODS.get((oi, number))


def method_parameters(entry: Method, data: Data) -> Any:
    """`data` (an ACTION parameter) by the names of `entry`: a dict per structure, the value itself
    for "value", None for "none". A parameter of another shape gives None (shown as Data only)."""
    if entry.layout == "none":
        return None
    if entry.layout == "value":
        return {entry.fields[0]: to_python(data)}
    if entry.layout == "structure":
        return _named(entry, data)
    if data.type != DataType.ARRAY:
        return None
    rows = [_named(entry, item) for item in data.items()]
    return None if any(r is None for r in rows) else rows


def _named(entry: Method, data: Data) -> dict[str, Any] | None:
    if data.type != DataType.STRUCTURE or len(data.items()) != len(entry.fields):
        return None
    enums = dict(entry.enums)
    out: dict[str, Any] = {}
    for name, item in zip(entry.fields, data.items(), strict=True):
        value = to_python(item)
        if name in enums and isinstance(value, int):
            value = f"{value} {enums[name].get(value, 'unknown')}"
        elif item.type == DataType.OAD and isinstance(item.value, Oad) and item.value.oi == 0xF205:
            value = f"{value} (relay {item.value.index})"
        out[name] = value
    return out
