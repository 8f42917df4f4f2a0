"""The one list of device kinds: a kind is registered here, once, and every layer finds its parts.

Layer: contract (pure data, no I/O). Must not: import any service package or the kinds' code.

A registered kind `NAME` is a folder in each layer, found by convention (no other list anywhere):

| layer | module | provides |
|---|---|---|
| codec | `protocols.NAME` | `describe(bytes) -> dict`, `find_frames(bytes)`, `summary(dict) -> str` |
| gateway | `gateway.drivers.NAME.config` | `CONFIG`: the device's pydantic model (`kind: Literal[NAME]`) |
| gateway | `gateway.drivers.NAME.driver` | `DRIVER`: the `Driver` subclass |
| gateway | `gateway.drivers.NAME.commission` | `add_read_arguments`, `read`, `add_scan_arguments`, `scan` |
| simulator | `firmware_sim.devices.NAME` | `add_arguments(parser)`, `build(args, start)`, opt. `serve_tcp` |

The CLI choices of `decode`, `read`, `scan`, `sniff` and `sim`, the gateway's config union and the
simulator's site runner are built from `KINDS`; `tests/foundation/test_kind_registry.py` checks that
every registered kind has each part above. `docs/adding-a-device-kind.md` walks through one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

Parity = Literal["N", "E", "O"]


@dataclass(frozen=True, slots=True)
class DeviceKind:
    name: str
    title: str  # one line for `--help`
    baud: int  # the usual line settings of the kind, overridable per line
    parity: Parity
    bytesize: int = 8
    stopbits: int = 1
    # `sniff` cuts frames out of a burst kind by kind, lowest rank first: the kind whose framing is
    # strictest (both length and checksum checked before anything is believed) goes first, so a
    # looser kind never claims bytes that belong to a stricter one
    sniff_rank: int = 50

    @property
    def bits_per_char(self) -> int:
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits


KINDS: dict[str, DeviceKind] = {}


def register(kind: DeviceKind) -> DeviceKind:
    if kind.name in KINDS:
        raise ValueError(f"device kind {kind.name!r} is registered twice")
    if not kind.name.isidentifier() or kind.name != kind.name.lower():
        raise ValueError(f"device kind {kind.name!r}: a lower-case Python identifier (it names folders)")
    KINDS[kind.name] = kind
    return kind


def names() -> tuple[str, ...]:
    return tuple(KINDS)


def get(name: str) -> DeviceKind:
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown device kind {name!r}: expected one of {', '.join(KINDS)}") from None


@contextmanager
def registered(kind: DeviceKind) -> Iterator[DeviceKind]:
    """Register a kind for the length of a block (tests, plug-ins tried out in a REPL)."""
    register(kind)
    try:
        yield kind
    finally:
        KINDS.pop(kind.name, None)


# The registrations: one line per kind.
register(DeviceKind("dlt645", "DL/T 645 meters (2007/1997)", 2400, "E", sniff_rank=20))
register(
    DeviceKind("dlt698", "DL/T 698.45 meters (smart and IoT meters since 2020)", 9600, "E", sniff_rank=15)
)
register(DeviceKind("modbus", "Modbus RTU prepaid meters (Modbus TCP with tcp://)", 9600, "N", sniff_rank=90))
register(
    DeviceKind("hall", "a business hall: dispenser, caller keypads, rating pads", 9600, "N", sniff_rank=10)
)
