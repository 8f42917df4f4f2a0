"""Config model of a DL/T 645 meter (one entry under a bus's `devices`)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from ..base import DeviceBase

DEFAULT_ITEMS = (
    "energy_import_kwh",
    "voltage_a_v",
    "current_a_a",
    "power_active_kw",
    "power_factor",
    "balance_cny",
    "overdraft_cny",
    "status_word_3",
)


class Dlt645Device(DeviceBase):
    kind: Literal["dlt645"]
    address: str = Field(description="12-digit nameplate address, e.g. 000000000001")
    version: Literal["2007", "1997"] = "2007"
    items: list[str] = Field(
        default=list(DEFAULT_ITEMS),
        description="canonical names, catalogue item names or data identifiers; a block DI (e.g. 0201FF00, "
        "all phase voltages) is one request for several values",
    )
    preamble: int = Field(default=4, ge=0, le=4, description="FE wake-up bytes before each request")
    reply_timeout_ms: int = Field(default=600, ge=20, le=5000, description="first byte, after our request")
    byte_timeout_ms: int = Field(default=120, ge=5, le=500, description="longest gap inside a reply")
    retries: int = Field(default=1, ge=0, le=3)
    turnaround_ms: int = Field(default=60, ge=0, le=500, description="expected reply delay (airtime budget)")
    password_level: int = Field(default=2, ge=0, le=99)
    password: str = "000000"
    operator: str = "00000000"
    control: bool = False  # allow 0x1C remote control commands to this meter
    time_sync: bool = Field(default=True, description="correct the meter's clock when it drifts too far")
    clock_check_s: float = Field(default=3600, ge=0, description="read the meter clock this often (0: never)")
    time_sync_threshold_s: float = Field(default=60, gt=0, description="correct beyond this skew")
    backfill: bool = Field(
        default=True,
        description="after a gap in the polls, publish the meter's daily freezes and power-down records "
        "of the gap (2007 meters)",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9]{12}", value):
            raise ValueError("must be the 12-digit nameplate address (digits only, e.g. 000000000001)")
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9]{6}", value):
            raise ValueError("must be 6 digits")
        return value

    @field_validator("operator")
    @classmethod
    def _operator(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9]{8}", value):
            raise ValueError("must be 8 digits")
        return value

    def bus_addresses(self) -> list[tuple[str, object]]:
        return [("DL/T 645", self.address)]


CONFIG = Dlt645Device
