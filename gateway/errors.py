"""Exception tree of the gateway layer.

    GatewayError
    ├── BusError                 something went wrong on the line
    │   ├── PortUnavailable      the port cannot be opened or was lost (USB unplugged, server down)
    │   ├── ResponseTimeout      no complete reply within the first-byte / inter-byte timeouts
    │   └── BusFrameError        a garbled reply (checksum, framing, wrong address); wraps a FrameError
    ├── DeviceError              the device answered with an abnormal / exception reply
    │   └── DeviceBusy           ... saying it is busy (retry later with back-off)
    ├── SpoolError               the local spool failed (disk full, corrupt database)
    └── PublishError             the MQTT side failed

pyserial's and asyncio's errors are mapped to these in `gateway.transport` only; codecs' errors
(protocols.errors) are mapped in `gateway.bus` and the drivers.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error raised by `gateway`."""


class BusError(GatewayError):
    """A failure on the line."""


class PortUnavailable(BusError):
    """The port cannot be opened or was lost."""


class ResponseTimeout(BusError):
    """No complete reply in time."""


class BusFrameError(BusError):
    """A reply that arrived but is not a valid frame for this request."""


class DeviceError(GatewayError):
    """The device answered with an abnormal / exception reply."""


class DeviceBusy(DeviceError):
    """The device says it is busy."""


class SpoolError(GatewayError):
    """The local spool failed."""


class PublishError(GatewayError):
    """The MQTT side failed."""
