"""DL/T 698.45 errors: the protocols exception tree specialised for DL/T 698.45.

Layer: pure (protocols). Every DL/T 698.45 codec raises only these (or the base classes of
`protocols.errors` they derive from); messages name the meter address and, where there is one, the
object (OAD/OMD) concerned:

    ProtocolError
    ├── FrameError
    │   ├── ChecksumError          HCS or FCS (CRC-16/X-25) mismatch
    │   ├── WrongAddress           a complete, valid reply from another meter (or another client, CA)
    │   ├── UnexpectedReply        a valid reply from our meter that does not answer the request
    │   ├── TruncatedFrame         the frame stopped before the length L announced
    │   └── FragmentError          link-layer fragments out of sequence, or a reassembly too large
    ├── DecodeError                a valid frame whose APDU / A-XDR data does not fit
    ├── DeviceErrorReply
    │   ├── MeterRefused           a result DAR other than success: `dar`, `reason`, `target`
    │   └── ErrorResponse          ERROR-Response APDU (`EE`): `kind` 1 unparsable, 2 unsupported
    └── EncodeError                a value that cannot be encoded (range, size, type)
"""

from __future__ import annotations

from typing import Final

from ..errors import DeviceErrorReply, FrameError, ProtocolError

# dlt698.md §2 "DAR" [confirmed: dlt698_rs, wenyl]
DAR_NAMES: Final[dict[int, str]] = {
    0: "success",
    1: "hardware_fault",
    2: "temporary_fault",
    3: "read_write_denied",
    4: "object_undefined",
    5: "class_mismatch",
    6: "object_absent",
    7: "type_mismatch",
    8: "out_of_range",
    9: "block_unavailable",
    10: "block_transfer_cancelled",
    11: "block_transfer_not_started",
    12: "block_write_cancelled",
    13: "block_write_not_started",
    14: "block_number_invalid",
    15: "password_error_unauthorised",
    16: "baud_rate_unchangeable",
    17: "year_zones_exceeded",
    18: "day_periods_exceeded",
    19: "tariffs_exceeded",
    20: "security_mode_mismatch",
    21: "duplicate_recharge",
    22: "esam_check_failed",
    23: "authentication_failed",
    24: "customer_number_mismatch",
    25: "recharge_count_error",
    26: "hoarding_limit_exceeded",
    27: "address_error",
    28: "symmetric_decrypt_error",
    29: "asymmetric_decrypt_error",
    30: "signature_error",
    31: "meter_suspended",
    32: "time_tag_invalid",
    33: "request_timeout",
    34: "esam_p1p2_error",
    35: "esam_lc_error",
    255: "other",
}
# ERROR-Response (`EE`) type [one source: dlt698.md §2]
ERROR_TYPES: Final[dict[int, str]] = {1: "apdu_unparsable", 2: "service_unsupported", 255: "other"}
# DAR values after which a plaintext read may be retried with RN (dlt698.md §5) [unverified]
SECURITY_DARS: Final = frozenset({15, 20, 23})


def dar_name(dar: int) -> str:
    return DAR_NAMES.get(dar, f"dar_{dar}")


class WrongAddress(FrameError):
    """A complete, CRC-valid reply from a meter (SA) or to a client (CA) other than the one addressed."""

    def __init__(self, expected: str, got: str, frame: bytes) -> None:
        super().__init__(f"reply from {got}, expected {expected}: {frame.hex(' ')}")
        self.expected = expected
        self.got = got
        self.frame = frame


class UnexpectedReply(FrameError):
    """A valid frame from the addressed meter that does not answer our request (service, PIID, OAD)."""


class TruncatedFrame(FrameError):
    """The frame stopped before the length its L field announced."""


class FragmentError(FrameError):
    """Link-layer fragments that cannot be reassembled (sequence gap, no first fragment, too large)."""


class EncodeError(ProtocolError):
    """A value that cannot be encoded (out of range for its A-XDR type, too long, wrong Python type)."""


class MeterRefused(DeviceErrorReply):
    """A result with a DAR other than 0: `target` names the OAD/OMD, `dar` the code, `reason` its name.
    Never retry a SET/ACTION blindly: it may have run (dlt698.md §7)."""

    def __init__(self, address: str, target: str, dar: int) -> None:
        self.address = address
        self.target = target
        self.dar = dar
        self.reason = dar_name(dar)
        super().__init__(f"meter {address}: {target} refused with DAR {dar} ({self.reason})")

    @property
    def security(self) -> bool:
        """Refused for the security mode: a retry as plaintext + RN may succeed [unverified]."""
        return self.dar in SECURITY_DARS


class ErrorResponse(DeviceErrorReply):
    """The meter answered ERROR-Response: it could not parse (1) or does not support (2) the request."""

    def __init__(self, address: str, piid: int, kind: int) -> None:
        self.address = address
        self.piid = piid
        self.kind = kind
        self.reason = ERROR_TYPES.get(kind, f"type_{kind}")
        super().__init__(f"meter {address}: ERROR-Response to PIID {piid:#04x}: {kind} ({self.reason})")
