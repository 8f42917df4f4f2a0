"""Hall bus errors: the protocols exception tree specialised for the hall device frames
(hall-protocol.md).

Layer: pure (protocols). Every hall codec raises only these (or the `protocols.errors` bases they
derive from); every message names the device address (two hex digits, as on the wire):

    ProtocolError
    ├── FrameError
    │   ├── ChecksumError          CS (sum of ADDR..DATA mod 256) mismatch
    │   ├── WrongAddress           a complete, valid reply from another device
    │   ├── UnexpectedReply        a valid reply from our device to another function
    │   └── TruncatedFrame         the frame stopped before L + 7 bytes
    ├── DecodeError                a valid frame whose DATA does not fit its function
    │   └── BadEvent               a poll reply whose event cannot be read; carries `seq` so the
    │                              master can still acknowledge (and count) it
    ├── DeviceErrorReply
    │   └── DeviceRefused          error reply (FUNC | C0) with its one-byte code
    └── EncodeError                a value that does not fit its field (u8/u16 range, SEQ, BCD)
"""

from __future__ import annotations

from typing import Final

from ..errors import DecodeError, DeviceErrorReply, FrameError, ProtocolError

# hall-protocol.md "Error replies": the one DATA byte of a `FUNC | C0` reply
ERROR_CODES: Final = {
    0x01: "unsupported_function",
    0x02: "bad_length_or_data",
    0x03: "device_busy",
}


def device_name(address: int) -> str:
    # decimal, as the field guide, the config and the health topics number hall devices (pad 34)
    return "broadcast" if address == 0 else f"hall device {address}"


class WrongAddress(FrameError):
    """A complete, CS-valid reply from a device other than the one addressed (typically a late reply to
    an earlier, timed-out request)."""

    def __init__(self, expected: int, got: int, frame: bytes) -> None:
        super().__init__(f"reply from {device_name(got)}, expected {device_name(expected)}: {frame.hex(' ')}")
        self.expected = expected
        self.got = got
        self.frame = frame


class UnexpectedReply(FrameError):
    """A valid frame from the addressed device that does not answer our request (another function)."""


class TruncatedFrame(FrameError):
    """The frame stopped before its length (L + 7 bytes) was reached."""


class EncodeError(ProtocolError):
    """A value that cannot be encoded (outside u8/u16, SEQ 0, a year outside 2000-2099, ...)."""


class BadEvent(DecodeError):
    """A poll reply (`90`) with a valid SEQ whose event is unknown or has the wrong payload length.

    The device re-sends an event until its SEQ is acknowledged (hall-protocol.md), so the master must
    still acknowledge `seq` (and count the drop) or the device's queue is stuck forever."""

    def __init__(self, address: int, seq: int, message: str) -> None:
        super().__init__(f"{device_name(address)}: event SEQ {seq}: {message}")
        self.address = address
        self.seq = seq


class DeviceRefused(DeviceErrorReply):
    """The device answered `FUNC | C0` with a one-byte `code` (01 unsupported function, 02 bad length or
    data, 03 busy). Only `device_busy` is worth retrying later."""

    def __init__(self, address: int, function: int, code: int) -> None:
        self.address = address
        self.function = function
        self.code = code
        self.reason = ERROR_CODES.get(code, "unknown_error")
        super().__init__(
            f"{device_name(address)} refused function {function:02X}: error {code:02X} {self.reason}"
        )

    @property
    def retryable(self) -> bool:
        return self.code == 0x03
