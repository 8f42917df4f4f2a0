"""The gateway's side of the device-kind registry (`protocols.kinds`): config models and drivers.

Layer: gateway core. Each registered kind NAME has `gateway.drivers.NAME.config.CONFIG` (its pydantic
model, discriminated by `kind`) and `gateway.drivers.NAME.driver.DRIVER`; nothing here lists kinds.
Only the config models are imported at start-up: a driver module is imported when a device of its kind
is configured (a gateway polling only DL/T 645 meters never loads the hall's queue logic).
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import reduce
from operator import or_
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from protocols import kinds

from .base import DeviceBase, Driver


def config_model(kind: str) -> type[DeviceBase]:
    model: type[DeviceBase] = importlib.import_module(f"gateway.drivers.{kind}.config").CONFIG
    return model


def driver_class(kind: str) -> type[Driver]:
    kinds.get(kind)  # an unregistered kind is a KeyError that lists the registered ones
    cls: type[Driver] = importlib.import_module(f"gateway.drivers.{kind}.driver").DRIVER
    return cls


def has_part(kind: str, part: str) -> bool:
    """Whether `gateway.drivers.KIND.PART` is written: a kind being added is not offered by a command
    until its part is (tests/foundation/test_kind_registry.py fails while any part is missing)."""
    try:
        return importlib.util.find_spec(f"gateway.drivers.{kind}.{part}") is not None
    except ModuleNotFoundError:  # not even the kind's folder yet
        return False


def written(kind: str, part: str, *names: str) -> bool:
    """`has_part`, and the part defines `names` (a module being written may exist before it does)."""
    if not has_part(kind, part):
        return False
    module = importlib.import_module(f"gateway.drivers.{kind}.{part}")
    return all(hasattr(module, name) for name in names)


def configurable() -> tuple[str, ...]:
    """The registered kinds whose config model is written."""
    return tuple(name for name in kinds.names() if written(name, "config", "CONFIG"))


def device_config_type() -> Any:
    """The discriminated union of every registered kind's model, as a pydantic field type."""
    models = [config_model(name) for name in configurable()]
    if len(models) == 1:  # pydantic needs a union for a discriminator
        return models[0]
    return Annotated[reduce(or_, models), Field(discriminator="kind")]


if TYPE_CHECKING:
    DeviceConfig = DeviceBase
else:
    DeviceConfig = device_config_type()
