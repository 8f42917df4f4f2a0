"""Business-hall device bus for gridedge (hall-protocol.md, version 1): link frames
`FF 68 L L 68 ADDR FUNC DATA CS 16` for the ticket dispenser, the counters' caller keypads and the
rating pads; the gateway's reply matcher and the simulator's frame splitter; typed requests, replies
and events; and the frame describer behind `gridedge decode --protocol hall`.

Layer: pure codec (protocols). No I/O, no clocks (the CLOCK broadcast takes its time as an argument),
no asyncio; only the standard library. The bus, timeouts, retries, SEQ bookkeeping and the ticket life
cycle live in `gateway` (driver) and `firmware_sim` (simulated devices); both build on this package,
and the tests pin it to the example frames of hall-protocol.md, not only to round-trips.

Modules (dependencies point upwards only):
  errors     exception tree (WrongAddress, UnexpectedReply, TruncatedFrame, BadEvent, DeviceRefused, ...)
  frame      Frame, build/parse, address 01..FE (00 broadcast), checksum, FUNC reply/error bits
  splitter   ReplyMatcher (one reply on the shared bus), FrameSplitter (every frame in a stream)
  messages   POLL / IDENTIFY / DISPLAY / BEEP / START_EVAL / CANCEL_EVAL / CLOCK, events, error replies
  describe   describe(bytes) -> dict
"""

from .describe import describe
from .errors import (
    ERROR_CODES,
    BadEvent,
    DeviceRefused,
    EncodeError,
    TruncatedFrame,
    UnexpectedReply,
    WrongAddress,
)
from .frame import (
    BROADCAST,
    MAX_DATA,
    MAX_FRAME,
    Frame,
    build_frame,
    check_address,
    checksum,
    func_byte,
    parse_frame,
)
from .messages import (
    ACK_FUNCTIONS,
    EVENT_FIELDS,
    EVENT_SOURCE,
    LEVEL_LABELS,
    Beep,
    CancelEval,
    Clock,
    DeviceKind,
    Display,
    ErrorCode,
    Event,
    Evt,
    Fn,
    Identify,
    Identity,
    Level,
    Poll,
    Request,
    StartEval,
    ack_reply,
    beep_request,
    cancel_eval_request,
    check_reply,
    clock_broadcast,
    display_request,
    error_reply,
    function_name,
    identify_reply,
    identify_request,
    next_seq,
    parse_ack_reply,
    parse_identify_reply,
    parse_poll_reply,
    parse_request,
    poll_reply,
    poll_request,
    start_eval_request,
)
from .sniff import find_frames, summary
from .splitter import FrameSplitter, ReplyMatcher, split_frames

__all__ = [
    "ACK_FUNCTIONS",
    "BROADCAST",
    "ERROR_CODES",
    "EVENT_FIELDS",
    "EVENT_SOURCE",
    "LEVEL_LABELS",
    "MAX_DATA",
    "MAX_FRAME",
    "BadEvent",
    "Beep",
    "CancelEval",
    "Clock",
    "DeviceKind",
    "DeviceRefused",
    "Display",
    "EncodeError",
    "ErrorCode",
    "Event",
    "Evt",
    "Fn",
    "Frame",
    "FrameSplitter",
    "Identify",
    "Identity",
    "Level",
    "Poll",
    "ReplyMatcher",
    "Request",
    "StartEval",
    "TruncatedFrame",
    "UnexpectedReply",
    "WrongAddress",
    "ack_reply",
    "beep_request",
    "build_frame",
    "cancel_eval_request",
    "check_address",
    "check_reply",
    "checksum",
    "clock_broadcast",
    "describe",
    "display_request",
    "error_reply",
    "find_frames",
    "func_byte",
    "function_name",
    "identify_reply",
    "identify_request",
    "next_seq",
    "parse_ack_reply",
    "parse_frame",
    "parse_identify_reply",
    "parse_poll_reply",
    "parse_request",
    "poll_reply",
    "poll_request",
    "split_frames",
    "start_eval_request",
    "summary",
]
