"""Config model of a Modbus meter (RTU on a serial line or RTU-over-TCP, or Modbus TCP)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import DeviceBase


class ModbusDevice(DeviceBase):
    kind: Literal["modbus"]
    unit: int = Field(ge=1, le=247, description="Modbus unit (slave) id")
    map: str = Field(default="gridedge-prepaid", description="built-in register map name or a YAML file path")
    points: list[str] | None = Field(
        default=None, description="canonical names to read (default: every point)"
    )
    framing: Literal["rtu", "tcp"] = "rtu"  # tcp = Modbus TCP (MBAP) on a tcp:// port
    max_gap: int = Field(default=8, ge=0, le=100, description="registers read across to save a request")
    per_point: bool = False  # one request per point, for meters that reject block reads
    reply_timeout_ms: int = Field(default=500, ge=10, le=10000)
    byte_timeout_ms: int = Field(default=50, ge=2, le=1000)
    retries: int = Field(default=1, ge=0, le=3)
    turnaround_ms: int = Field(default=20, ge=0, le=1000)

    def bus_addresses(self) -> list[tuple[str, object]]:
        return [("Modbus", self.unit)]


CONFIG = ModbusDevice
