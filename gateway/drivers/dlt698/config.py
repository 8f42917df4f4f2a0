"""Config model of a DL/T 698.45 meter (one entry under a bus's `devices`).

Layer: gateway driver config. Must not: touch the bus or import the driver (the gateway imports every
kind's config at start-up, a driver only when a device of its kind is configured).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from protocols.dlt698 import Oad, find
from protocols.errors import DecodeError

from ..base import DeviceBase

# a prepaid meter's everyday values: one GET-Request-NormalList of 9 objects per poll
DEFAULT_OBJECTS = (
    "energy_import_kwh",
    "voltage_a_v",
    "current_a_a",
    "power_active_kw",
    "power_factor",
    "balance_cny",
    "overdraft_cny",
    "relay",
    "keep_power",
)
_HEX_OAD = re.compile(r"[0-9A-Fa-f]{8}")


def object_oad(key: str) -> Oad:
    """The OAD an `objects` entry reads: 8 hex digits (OI, attribute, index) or a value name of the
    catalogue (`energy_import_t1_kwh` -> 00100202). Raises ValueError naming the entry."""
    if _HEX_OAD.fullmatch(key):
        try:
            return Oad.parse(key)
        except DecodeError as exc:  # not reachable for 8 hex digits, kept so nothing escapes unnamed
            raise ValueError(str(exc)) from None
    found = find(key)
    if found is None:
        raise ValueError(
            f"{key!r} is neither an OAD (8 hex digits, e.g. 00100200) nor a value name of the DL/T 698.45 "
            "catalogue (e.g. energy_import_kwh, voltage_a_v, balance_cny, relay)"
        )
    return found[1]


class Dlt698Device(DeviceBase):
    kind: Literal["dlt698"]
    address: str = Field(description="meter address (SA) as on the nameplate, hex digits, e.g. 000000000001")
    objects: list[str] = Field(
        default=list(DEFAULT_OBJECTS),
        min_length=1,
        description="value names of the catalogue or OADs (8 hex digits: 00100200 = import energy, total "
        "and T1..T4); read together with GET-Request-NormalList",
    )
    secured_objects: list[str] = Field(
        default=[],
        description="objects read each poll as plaintext + RN: their values go in the reading, the meter's "
        "MAC over them in a secured_read event for the master station to check (the gateway has no ESAM)",
    )
    list_max: int = Field(
        default=10, ge=1, le=32, description="objects per NormalList request (no negotiated APDU size)"
    )
    client_address: int = Field(default=0, ge=0, le=255, description="CA, echoed by the meter")
    preamble: int = Field(default=4, ge=0, le=4, description="FE wake-up bytes before each request")
    reply_timeout_ms: int = Field(default=800, ge=20, le=5000, description="first byte, after our request")
    byte_timeout_ms: int = Field(default=120, ge=5, le=500, description="longest gap inside a reply")
    retries: int = Field(default=1, ge=0, le=3)
    turnaround_ms: int = Field(default=60, ge=0, le=500, description="expected reply delay (airtime budget)")
    control: bool = Field(
        default=False, description="accept trip / close / alarm / keep-power commands (plaintext ACTION)"
    )
    time_sync: bool = Field(default=True, description="correct the meter's clock when it drifts too far")
    clock_check_s: float = Field(default=3600, ge=0, description="read the meter clock this often (0: never)")
    time_sync_threshold_s: float = Field(default=60, gt=0, description="correct beyond this skew")
    backfill: bool = Field(
        default=True,
        description="after a gap in the polls, publish the meter's daily freezes (5004) of the gap",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        text = value.strip().upper()
        if "A" in text:
            raise ValueError(
                "a wildcard address (A digits) may answer for any meter of a line: give the meter's own "
                "address (`gridedge scan --protocol dlt698` reads it)"
            )
        if not re.fullmatch(r"(?:[0-9]{2}){1,16}", text):
            raise ValueError("must be an even number of 2..32 decimal digits, e.g. 000000000001")
        return text

    @field_validator("objects", "secured_objects")
    @classmethod
    def _objects(cls, value: list[str]) -> list[str]:
        problems = []
        for key in value:
            try:
                object_oad(key)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
        return value

    def bus_addresses(self) -> list[tuple[str, object]]:
        return [("DL/T 698.45", self.address)]


CONFIG = Dlt698Device
