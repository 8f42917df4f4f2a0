"""gridedge protocols: pure codecs and the MQTT message contract, shared by every service.

No I/O, no clocks, no asyncio: everything here is bytes <-> values. Sub-packages:
`protocols.dlt645`, `protocols.modbus`, `protocols.hall` (device codecs); modules `messages`,
`topics`, `vocabulary`, `signing`, `config` (the contract and conventions).
"""

from .errors import (
    ChecksumError,
    ConfigError,
    ContractError,
    DecodeError,
    DeviceErrorReply,
    FrameError,
    ProtocolError,
)

__all__ = [
    "ChecksumError",
    "ConfigError",
    "ContractError",
    "DecodeError",
    "DeviceErrorReply",
    "FrameError",
    "ProtocolError",
]
