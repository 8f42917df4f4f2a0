"""DL/T 645 (2007 and 1997) for gridedge: link frames, the gateway's reply matcher and the simulator's
frame splitter, the data-identifier catalogue with its value formats, request/reply messages, and the
frame describer behind `gridedge decode --protocol dlt645`.

Layer: pure codec (protocols). No I/O, no clocks (every time is an argument), no asyncio; only the
standard library. The bus, timeouts and retries live in `gateway`; the simulated meters in
`firmware_sim`; both build on this package, so both ends speak the same codec and the tests pin it to
the public frames of dlt645.md §7.1, not only to round-trips.

Why we hand-write this: no maintained Python library does DL/T 645 well. PyPI `dlt645` 3.2.0 sends the
address in the wrong byte order and gets baud codes, time-sync and freeze byte order wrong, and its
simulator answers requests meant for other meters; `python-dlt645` 0.1.4 decodes every control byte as
0 and breaks on `16`/`FE` bytes inside a frame; both install as the import name `dlt645` (hence this
package is `protocols.dlt645`). The protocol is small: ~1 page of framing and a table of identifiers.

Modules (dependencies point upwards only):
  errors     exception tree (MeterRefused, WrongAddress, TruncatedFrame, ...), ERR/SERR bit names
  frame      Frame, build/parse, address (12 BCD digits, low byte first; AA wildcard; 99 broadcast),
             +0x33 scramble, checksum, control-byte fields
  splitter   ReplyMatcher (one reply on a shared bus), FrameSplitter (every frame in a stream)
  formats    BCD (decimals, sign bit), digit strings, dates, bit words, records; FF/EE fill = None
  items      the DI catalogue (2007: 4-byte, 1997: 2-byte), lookup by name or DI, blocks
  status     running status words 1-7 (SW3: relay, commanded, pre-trip alarm, keep-power)
  messages   read / follow-up / read address / time sync / write / control; abnormal replies
  describe   describe(bytes) -> dict
"""

from .describe import describe
from .errors import (
    ERR_1997,
    ERR_2007,
    SERR_2007,
    EncodeError,
    MeterRefused,
    SecurityRefused,
    TruncatedFrame,
    UnexpectedReply,
    WrongAddress,
)
from .formats import Bcd, Digits, Format, Record, Scalar, Stamp, Value, Word
from .frame import (
    BROADCAST,
    MAX_DATA,
    MAX_FRAME,
    WILDCARD,
    Frame,
    address_from_wire,
    address_matches,
    address_to_wire,
    build_frame,
    checksum,
    control_byte,
    is_wildcard,
    normalize_address,
    parse_frame,
    scramble,
    strip_preamble,
    unscramble,
)
from .items import (
    CATALOGUE,
    Item,
    UnknownItem,
    Version,
    decode_value,
    decode_values,
    di_from_wire,
    di_to_wire,
    encode_value,
    encode_values,
    find_item,
    item_names,
    lookup,
    parse_di,
)
from .messages import (
    BAUD_CODES,
    ControlCommand,
    ControlRequest,
    Credentials,
    Fn1997,
    Fn2007,
    OtherRequest,
    ReadAddressRequest,
    ReadReply,
    ReadRequest,
    Request,
    TimeSyncRequest,
    WriteRequest,
    abnormal_reply,
    ack_reply,
    address_reply,
    change_baud_request,
    check_reply,
    control_ciphertext_request,
    control_request,
    freeze_request,
    function_name,
    join_read_replies,
    parse_ack_reply,
    parse_address_reply,
    parse_change_baud_reply,
    parse_read_reply,
    parse_request,
    read_address_request,
    read_follow_request,
    read_reply,
    read_request,
    time_sync_request,
    version_of,
    write_request,
)
from .sniff import find_frames, summary
from .splitter import FrameSplitter, ReplyMatcher, split_frames
from .status import STATUS_BITS, canonical_values, status_bits, status_word_3

__all__ = [
    "BAUD_CODES",
    "BROADCAST",
    "CATALOGUE",
    "ERR_1997",
    "ERR_2007",
    "MAX_DATA",
    "MAX_FRAME",
    "SERR_2007",
    "STATUS_BITS",
    "WILDCARD",
    "Bcd",
    "ControlCommand",
    "ControlRequest",
    "Credentials",
    "Digits",
    "EncodeError",
    "Fn1997",
    "Fn2007",
    "Format",
    "Frame",
    "FrameSplitter",
    "Item",
    "MeterRefused",
    "OtherRequest",
    "ReadAddressRequest",
    "ReadReply",
    "ReadRequest",
    "Record",
    "ReplyMatcher",
    "Request",
    "Scalar",
    "SecurityRefused",
    "Stamp",
    "TimeSyncRequest",
    "TruncatedFrame",
    "UnexpectedReply",
    "UnknownItem",
    "Value",
    "Version",
    "Word",
    "WriteRequest",
    "WrongAddress",
    "abnormal_reply",
    "ack_reply",
    "address_from_wire",
    "address_matches",
    "address_reply",
    "address_to_wire",
    "build_frame",
    "canonical_values",
    "change_baud_request",
    "check_reply",
    "checksum",
    "control_byte",
    "control_ciphertext_request",
    "control_request",
    "decode_value",
    "decode_values",
    "describe",
    "di_from_wire",
    "di_to_wire",
    "encode_value",
    "encode_values",
    "find_frames",
    "find_item",
    "freeze_request",
    "function_name",
    "is_wildcard",
    "item_names",
    "join_read_replies",
    "lookup",
    "normalize_address",
    "parse_ack_reply",
    "parse_address_reply",
    "parse_change_baud_reply",
    "parse_di",
    "parse_frame",
    "parse_read_reply",
    "parse_request",
    "read_address_request",
    "read_follow_request",
    "read_reply",
    "read_request",
    "scramble",
    "split_frames",
    "status_bits",
    "status_word_3",
    "strip_preamble",
    "summary",
    "time_sync_request",
    "unscramble",
    "version_of",
    "write_request",
]
