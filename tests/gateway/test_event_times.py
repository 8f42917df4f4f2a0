"""Events of one kind of one device dated alike by a poll are kept apart by 1 ms, so InfluxDB (one point
per series and timestamp) does not overwrite all but the last: a hall's day end abandons every
unserved ticket at the same moment, and each must count in the abandonment figures."""

from __future__ import annotations

from gateway.drivers.base import DeviceEvent
from gateway.pipeline import distinct_times
from protocols.messages import EventKind

T = 1_800_000_000_000


def test_same_kind_same_device_same_ms_are_spread() -> None:
    day_end = [DeviceEvent(T, EventKind.TICKET_ABANDONED, {"ticket": n}) for n in range(1, 4)]
    other = DeviceEvent(T, EventKind.TICKET_ISSUED, {"ticket": 9})  # another kind: its own series
    keypad = DeviceEvent(T, EventKind.TICKET_ABANDONED, {"ticket": 7}, dev="hall-1-keypad-1")
    out = distinct_times([*day_end, other, keypad])
    assert [e.ts_ms for e in out] == [T, T + 1, T + 2, T, T]
    assert [e.data["ticket"] for e in out] == [1, 2, 3, 9, 7]  # nothing else changes, order kept
