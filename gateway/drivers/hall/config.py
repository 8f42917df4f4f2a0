"""Config model of a business hall: a dispenser, counters' caller keypads and rating pads on one line."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from protocols.config import Frozen

from ..base import DeviceBase


class CounterConfig(Frozen):
    counter: int = Field(ge=1, le=31)
    keypad: int | None = Field(default=None, ge=1, le=254, description="default 1 + counter")
    rating_pad: int | None = Field(default=None, ge=1, le=254, description="default 32 + counter")
    staff: int | None = Field(default=None, ge=0, le=65535)
    businesses: list[int] = []

    def keypad_address(self) -> int:
        return self.keypad if self.keypad is not None else 1 + self.counter

    def pad_address(self) -> int:
        return self.rating_pad if self.rating_pad is not None else 32 + self.counter


class HallDevice(DeviceBase):
    kind: Literal["hall"]
    interval_s: float = 1.0
    hall: str = Field(default="", description="hall tag (defaults to the device id)")
    dispenser: int = Field(default=1, ge=1, le=254)
    counters: list[CounterConfig]
    businesses: dict[int, str] = {}
    day_end: str = "18:00"
    max_recall: int = Field(default=5, ge=0, le=20)
    reply_timeout_ms: int = Field(default=100, ge=20, le=2000)
    byte_timeout_ms: int = Field(default=20, ge=5, le=500)
    retries: int = Field(default=1, ge=0, le=3)
    turnaround_ms: int = Field(default=10, ge=0, le=50)

    @field_validator("day_end")
    @classmethod
    def _day_end(cls, value: str) -> str:
        if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
            raise ValueError("must be HH:MM")
        return value

    def addresses(self) -> list[int]:
        out = [self.dispenser]
        for c in self.counters:
            out += [c.keypad_address(), c.pad_address()]
        return out

    def bus_addresses(self) -> list[tuple[str, object]]:
        return [("hall", a) for a in self.addresses()]


CONFIG = HallDevice
