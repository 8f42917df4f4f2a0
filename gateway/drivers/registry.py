"""Device kinds: one line each. A kind is its config model (discriminated by `kind`) and its driver."""

from __future__ import annotations

import importlib
from typing import Annotated

from pydantic import Field

from .base import Driver
from .dlt645_config import Dlt645Device
from .hall_config import HallDevice
from .modbus_config import ModbusDevice

DeviceConfig = Annotated[Dlt645Device | ModbusDevice | HallDevice, Field(discriminator="kind")]

_DRIVER_MODULES = {
    "dlt645": "gateway.drivers.dlt645",
    "modbus": "gateway.drivers.modbus",
    "hall": "gateway.drivers.hall",
}


def driver_class(kind: str) -> type[Driver]:
    module = importlib.import_module(_DRIVER_MODULES[kind])
    cls: type[Driver] = module.DRIVER
    return cls
