"""Simulated Modbus prepaid meters: `meter` (RTU PDUs on a register map), `tcp` (the same meters
served as Modbus TCP: MBAP frames on a socket, for `--port tcp://HOST:PORT`)."""

from .meter import ModbusPrepaidMeter, add_arguments, build
from .tcp import serve_modbus_tcp as serve_tcp

__all__ = ["ModbusPrepaidMeter", "add_arguments", "build", "serve_tcp"]
