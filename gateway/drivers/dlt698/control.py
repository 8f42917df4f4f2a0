"""The DL/T 698.45 command objects: which ACTION (OMD + parameter) each plaintext command is, the
objects read back after it, and the checks of a relayed master-station security APDU.

Layer: gateway driver helper, pure (no I/O, no clock: times are arguments). Must not: touch the bus.

dlt698.md §4: 8000 remote control, m127/m128 alarm on/off (NULL), m129 trip
`array{structure{relay OAD F2050201, alarm delay unsigned min, outage long-unsigned min (0 = until
closed), auto-close bool}}`, m130 close `array{structure{relay OAD, enum 0 allow / 1 close now}}`;
8001 keep-power m127 on, m128 off. Utility meters accept these only as the master's ciphertext + MAC
(`raw_control` / `raw_apdu`, relayed unchanged); plaintext works on test and commercial meters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from protocols.dlt698 import NULL, Data, DataType, DateTimeS, Oad, Omd, SecurityRequest, parse_apdu
from protocols.errors import ProtocolError

RELAY_1: Final = Oad(0xF205, 2, 1)  # relay output 1
CLOCK: Final = Oad(0x4000, 2)
BROADCAST_TIME: Final = Omd(0x4000, 127)
READ_BACK: Final = (Oad(0x8000, 3), Oad(0x8000, 5), Oad(0x8001, 2))  # relay, command state, keep-power


@dataclass(frozen=True, slots=True)
class Action:
    omd: Omd
    data: Data


def _trip() -> Data:
    unit = Data.structure(
        Data(DataType.OAD, RELAY_1),
        Data(DataType.UNSIGNED, 0),  # no alarm delay
        Data(DataType.LONG_UNSIGNED, 0),  # open until closed by command
        Data(DataType.BOOL, False),  # no automatic close
    )
    return Data.array(unit)


def _close(now: bool) -> Data:
    return Data.array(Data.structure(Data(DataType.OAD, RELAY_1), Data(DataType.ENUM, 1 if now else 0)))


ACTIONS: Final[dict[str, Action]] = {
    "trip": Action(Omd(0x8000, 129), _trip()),
    "close": Action(Omd(0x8000, 130), _close(now=True)),
    "allow_close": Action(Omd(0x8000, 130), _close(now=False)),
    "alarm_on": Action(Omd(0x8000, 127), NULL),
    "alarm_off": Action(Omd(0x8000, 128), NULL),
    "keep_power_on": Action(Omd(0x8001, 127), NULL),
    "keep_power_off": Action(Omd(0x8001, 128), NULL),
}
TIME_ACTIONS: Final = frozenset({"time_sync", "set_time"})
RAW_ACTIONS: Final = frozenset({"raw_control", "raw_apdu"})
OTHER_ACTIONS: Final = TIME_ACTIONS | RAW_ACTIONS | {"read"}


def clock_data(now: dt.datetime) -> Data:
    """The meter's local wall time (China Standard Time, naive) as date_time_s."""
    return Data(DataType.DATE_TIME_S, DateTimeS.of(now))


def relayed_apdu(params: Mapping[str, Any]) -> bytes:
    """The master station's SECURITY-Request from `params.apdu` (hex), checked to be one, and never
    altered. Raises ValueError naming the parameter."""
    text = params.get("apdu")
    if not isinstance(text, str):
        raise ValueError("needs params.apdu: the master station's SECURITY-Request APDU in hex (10 01 ...)")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError("params.apdu is not hex") from None
    try:
        apdu = parse_apdu(raw, "params.apdu")
    except ProtocolError as exc:
        raise ValueError(f"params.apdu does not decode: {exc}") from None
    if not isinstance(apdu, SecurityRequest):
        raise ValueError(f"params.apdu is not a SECURITY-Request (tag 10): {raw[:4].hex(' ')}")
    return raw
