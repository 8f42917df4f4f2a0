"""What the commissioning commands share: the registered kinds they offer, each kind's commissioning
module, the line settings from the flags, and one-line errors.

Layer: gateway commissioning (below `cli`, `provision_cli` and `provision`, which all use it). Must not:
parse the command line or open a port.
"""

from __future__ import annotations

import argparse
import importlib
import os
from types import ModuleType

from pydantic import ValidationError

from protocols import kinds

from ..drivers.registry import written
from ..errors import GatewayError
from ..line import LineSettings
from ..transport import tcp_address


def protocols() -> tuple[str, ...]:
    """The registered kinds (`protocols.kinds`) whose commissioning module is written."""
    return tuple(name for name in kinds.names() if written(name, "commission", "read", "scan"))


def protocol_module(name: str) -> ModuleType:
    return importlib.import_module(f"gateway.drivers.{name}.commission")


def line_for(args: argparse.Namespace) -> LineSettings:
    """The kind's usual line settings (`protocols.kinds`), overridden by the flags."""
    kind = kinds.get(args.protocol)
    return LineSettings(
        baud=args.baud or kind.baud,
        bytesize=kind.bytesize,
        parity=args.parity or kind.parity,
        stopbits=args.stopbits or kind.stopbits,
    )


def check_port(port: str) -> None:
    """A port that cannot exist fails at once, not after the bus's 5 s of reconnecting."""
    if tcp_address(port) is None and not os.path.exists(port):
        raise GatewayError(f"--port {port}: no such serial device (see `ls /dev/serial/by-id/`)")


def one_line(exc: Exception) -> str:
    """An error as one line: a pydantic error lists each field and message, not a traceback-like block."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
    return " ".join(str(exc).split())
