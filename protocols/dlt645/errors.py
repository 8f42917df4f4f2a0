"""DL/T 645 errors: the protocols exception tree specialised for DL/T 645 (2007 and 1997).

Layer: pure (protocols). Every DL/T 645 codec raises only these (or the base classes from
`protocols.errors` they derive from); every message names the meter address and, where there is one,
the data identifier:

    ProtocolError
    ├── FrameError
    │   ├── ChecksumError          CS (sum mod 256) mismatch
    │   ├── WrongAddress           a complete, valid reply from another meter
    │   ├── UnexpectedReply        a valid reply from our meter to another function (or a request)
    │   └── TruncatedFrame         the frame stopped before 12 + L bytes
    ├── DecodeError                a valid frame whose content does not fit (DI echo, BCD, date)
    ├── DeviceErrorReply
    │   └── MeterRefused           abnormal reply (C | 0x40) with ERR (or SERR): `code`, `reasons`
    │       └── SecurityRefused    2007 `C3` + SERR: ESAM / identity authentication failures
    └── EncodeError                a value that cannot be encoded for an item (range, digits, format)
"""

from __future__ import annotations

from typing import Final

from ..errors import DeviceErrorReply, FrameError, ProtocolError

# dlt645.md §2.1: ERR of 2007 abnormal replies, bit i -> name
ERR_2007: Final = (
    "other_error",
    "no_requested_data",
    "unauthorized",  # wrong password / not authorised
    "baud_rate_unchangeable",
    "too_many_year_zones",
    "too_many_day_periods",
    "too_many_tariffs",
    "reserved_bit7",
)
# dlt645.md §2.4 [one source: HSL]
ERR_1997: Final = (
    "illegal_data",
    "wrong_di",
    "wrong_password",
    "reserved_bit3",
    "too_many_year_zones",
    "too_many_day_periods",
    "too_many_tariffs",
    "reserved_bit7",
)
# dlt645.md §2.1: SERR (2 bytes, low byte first) of 2007 `C3` replies; bits 7..15 reserved
SERR_2007: Final = (
    "other_error",
    "repeated_recharge",
    "esam_verification_failed",
    "authentication_failed",
    "customer_number_mismatch",
    "wrong_recharge_count",
    "hoarding_limit_exceeded",
)


def bit_names(code: int, names: tuple[str, ...], width: int = 8) -> tuple[str, ...]:
    """Names of the set bits of `code`, lowest first; bits without a name come out as `bit<n>`."""
    return tuple(
        (names[bit] if bit < len(names) else f"reserved_bit{bit}") for bit in range(width) if code >> bit & 1
    )


class WrongAddress(FrameError):
    """A complete, CS-valid reply from a meter other than the one addressed (a late reply to an earlier,
    timed-out request, or two meters answering a wildcard)."""

    def __init__(self, expected: str, got: str, frame: bytes) -> None:
        super().__init__(f"reply from meter {got}, expected meter {expected}: {frame.hex(' ')}")
        self.expected = expected
        self.got = got
        self.frame = frame


class UnexpectedReply(FrameError):
    """A valid frame from the addressed meter that does not answer our request (another function)."""


class TruncatedFrame(FrameError):
    """The frame stopped before its length (12 + L, known from L) was reached."""


class EncodeError(ProtocolError):
    """A value that cannot be encoded for an item (out of range for its digits, not a date, ...)."""


class MeterRefused(DeviceErrorReply):
    """The meter answered with an abnormal reply (D6 set). `code` is the ERR byte, `reasons` the names
    of its set bits (several may be set at once). Never retry blindly (dlt645.md §5)."""

    NAMES: tuple[str, ...] = ERR_2007
    WIDTH = 8

    def __init__(self, address: str, function: int, code: int, *, version: str = "2007") -> None:
        self.address = address
        self.function = function
        self.code = code
        self.version = version
        names = ERR_1997 if version == "1997" and self.NAMES is ERR_2007 else self.NAMES
        self.reasons = bit_names(code, names, self.WIDTH) or ("unspecified",)
        super().__init__(
            f"meter {address} refused function {function:#04x} ({version}): "
            f"error {code:#04x} {', '.join(self.reasons)}"
        )

    @property
    def retryable(self) -> bool:
        return False


class SecurityRefused(MeterRefused):
    """2007 `C3` abnormal reply to a security (ESAM) command; `code` is the 2-byte SERR word."""

    NAMES = SERR_2007
    WIDTH = 16
