"""Exception tree of the protocols layer.

    ProtocolError
    ├── FrameError            bytes that are not a valid frame (checksum, length, delimiters)
    │   └── ChecksumError
    ├── DecodeError           a valid frame whose content cannot be interpreted
    ├── DeviceErrorReply      a well-formed abnormal/exception reply from a device
    ├── ContractError         an MQTT payload or topic that breaks the v1 contract (names the field)
    └── ConfigError           a config file that fails validation (names file, line and field)

Every codec raises only these; callers never see struct.error, construct errors or msgspec errors.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error raised by `protocols`."""


class FrameError(ProtocolError):
    """The bytes are not a valid frame."""


class ChecksumError(FrameError):
    """Checksum or CRC mismatch."""


class DecodeError(ProtocolError):
    """A valid frame whose content cannot be interpreted."""


class DeviceErrorReply(ProtocolError):
    """A device answered with an abnormal / exception reply."""


class ContractError(ProtocolError):
    """A payload or topic that breaks the MQTT contract.

    `field` is a JSON path such as ``$.values.voltage_a_v`` (or ``topic``), `reason` says why.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ConfigError(ProtocolError):
    """A config file that fails validation. The message names the file, the line and the field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
