"""Modbus errors: the protocols exception tree specialised for Modbus.

Layer: pure (protocols). Every Modbus codec, map loader and planner raises only these (or the base
classes from `protocols.errors` they derive from):

    ProtocolError
    ├── FrameError
    │   ├── ChecksumError          CRC-16/MODBUS mismatch (RTU)
    │   ├── WrongUnit              a complete, CRC-valid reply from another unit id
    │   └── TruncatedFrame         the wire went quiet with part of a reply buffered
    ├── DecodeError                a valid frame whose content does not fit (byte count, echo)
    ├── DeviceErrorReply
    │   └── ModbusException        exception reply (function | 0x80, code): `code`, `name`
    ├── EncodeError                a value that cannot be written to a point (range, type, label)
    └── ConfigError
        └── ModbusMapError         a register map that fails validation (file, point, field)
"""

from __future__ import annotations

import enum

from ..errors import ConfigError, DeviceErrorReply, FrameError, ProtocolError


class ExceptionCode(enum.IntEnum):
    """Modbus Application Protocol v1.1b3, section 7 (MODBUS Exception Codes)."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_DATA_ADDRESS = 0x02
    ILLEGAL_DATA_VALUE = 0x03
    SERVER_DEVICE_FAILURE = 0x04
    ACKNOWLEDGE = 0x05
    SERVER_DEVICE_BUSY = 0x06
    NEGATIVE_ACKNOWLEDGE = 0x07
    MEMORY_PARITY_ERROR = 0x08
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND = 0x0B


def exception_name(code: int) -> str:
    try:
        return ExceptionCode(code).name
    except ValueError:
        return f"UNKNOWN_EXCEPTION_{code:#04x}"


class ModbusException(DeviceErrorReply):
    """The device answered with an exception reply. `retryable` is true for busy/acknowledge, which
    the spec defines as "try again later" (ACKNOWLEDGE: long operation in progress)."""

    def __init__(self, function: int, code: int) -> None:
        self.function = function
        self.code = code
        self.name = exception_name(code)
        super().__init__(f"function {function:#04x}: exception {code:#04x} {self.name}")

    @property
    def retryable(self) -> bool:
        return self.code in (ExceptionCode.SERVER_DEVICE_BUSY, ExceptionCode.ACKNOWLEDGE)


class WrongUnit(FrameError):
    """A complete, CRC-valid reply from a unit id other than the one addressed (address clash on the
    line, or a late reply to an earlier, timed-out transaction)."""

    def __init__(self, expected: int, got: int, frame: bytes) -> None:
        super().__init__(f"reply from unit {got}, expected unit {expected}: {frame.hex(' ')}")
        self.expected = expected
        self.got = got
        self.frame = frame


class TruncatedFrame(FrameError):
    """The reply stopped before its length (known from the function code and byte count) was reached."""


class EncodeError(ProtocolError):
    """A value cannot be encoded for a point (out of range for its type, unknown label, read-only)."""


class ModbusMapError(ConfigError):
    """A register map fails validation. Each problem names the file, the line, the point and the field."""
