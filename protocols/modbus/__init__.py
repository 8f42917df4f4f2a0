"""Modbus for gridedge: register maps as data, request planning, RTU and Modbus TCP framing, and the
frame describer behind `gridedge decode --protocol modbus`.

Layer: pure codec (protocols). No I/O beyond reading a map file, no clock, no asyncio.

Why our own small framer and not pymodbus's: pymodbus 3.16's `FramerRTU`/`DecodePDU` are usable
without a transport, but `pymodbus.pdu` imports asyncio and the datastore, its RTU decoder logs and
skips frames from other unit ids and CRC failures instead of reporting them (we must count both as
errors), and its API changes between minor releases. The Modbus framing is ~300 lines of table
arithmetic; tests pin it to golden frames and cross-check it against pymodbus's framer and client.

Modules: `errors` (exception tree), `crc`, `pdu` (function codes 1-6, 15, 16 and exceptions), `rtu`
(ADU, request scanner, `RtuReplyMatcher`), `mbap` (Modbus TCP), `points` (value codec), `regmap`
(YAML maps + validation), `planner` (block reads), `describe`.
"""

from .crc import crc16
from .describe import describe
from .errors import (
    EncodeError,
    ExceptionCode,
    ModbusException,
    ModbusMapError,
    TruncatedFrame,
    WrongUnit,
    exception_name,
)
from .mbap import MbapFrame, MbapReplyMatcher, MbapSplitter, build_mbap, parse_mbap
from .pdu import (
    BitsReply,
    ExceptionReply,
    ReadRequest,
    RegistersReply,
    Reply,
    Request,
    WriteCoil,
    WriteCoils,
    WriteRegister,
    WriteRegisters,
    WriteReply,
    build_reply,
    build_request,
    check_reply,
    function_name,
    parse_reply,
    parse_request,
)
from .planner import ReadBlock, decode_block, plan, plan_map
from .points import (
    DATA_TYPES,
    Point,
    Table,
    Value,
    decode_point,
    encode_point,
    raw_from_words,
    raw_point,
    words_from_raw,
    write_request,
)
from .regmap import DEFAULT_MAX_GAP, RegisterMap, RequestPolicy, builtin_maps, load_map, parse_map
from .rtu import (
    RtuReply,
    RtuReplyMatcher,
    RtuRequest,
    build_adu,
    build_rtu_reply,
    build_rtu_request,
    find_request_frame,
    parse_rtu_reply,
    parse_rtu_request,
    split_adu,
)
from .sniff import find_frames, summary

__all__ = [
    "DATA_TYPES",
    "DEFAULT_MAX_GAP",
    "BitsReply",
    "EncodeError",
    "ExceptionCode",
    "ExceptionReply",
    "MbapFrame",
    "MbapReplyMatcher",
    "MbapSplitter",
    "ModbusException",
    "ModbusMapError",
    "Point",
    "ReadBlock",
    "ReadRequest",
    "RegisterMap",
    "RegistersReply",
    "Reply",
    "Request",
    "RequestPolicy",
    "RtuReply",
    "RtuReplyMatcher",
    "RtuRequest",
    "Table",
    "TruncatedFrame",
    "Value",
    "WriteCoil",
    "WriteCoils",
    "WriteRegister",
    "WriteRegisters",
    "WriteReply",
    "WrongUnit",
    "build_adu",
    "build_mbap",
    "build_reply",
    "build_request",
    "build_rtu_reply",
    "build_rtu_request",
    "builtin_maps",
    "check_reply",
    "crc16",
    "decode_block",
    "decode_point",
    "describe",
    "encode_point",
    "exception_name",
    "find_frames",
    "find_request_frame",
    "function_name",
    "load_map",
    "parse_map",
    "parse_mbap",
    "parse_reply",
    "parse_request",
    "parse_rtu_reply",
    "parse_rtu_request",
    "plan",
    "plan_map",
    "raw_from_words",
    "raw_point",
    "split_adu",
    "summary",
    "words_from_raw",
    "write_request",
]
