"""Modbus PDUs (function code + data) for function codes 1, 2, 3, 4, 5, 6, 15 and 16.

Layer: pure codec (protocols). Bytes <-> frozen dataclasses; shared by the RTU and MBAP framings,
the gateway driver and the simulator. Must not: do I/O or know about unit ids, CRCs or MBAP headers.

References are to the MODBUS Application Protocol Specification v1.1b3 (section 6.x per function).
Quantity limits: 2000 bits / 125 registers per read, 1968 coils / 123 registers per write.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final, TypeAlias

from ..errors import DecodeError, FrameError
from .errors import ModbusException, exception_name

READ_COILS: Final = 0x01
READ_DISCRETE_INPUTS: Final = 0x02
READ_HOLDING_REGISTERS: Final = 0x03
READ_INPUT_REGISTERS: Final = 0x04
WRITE_SINGLE_COIL: Final = 0x05
WRITE_SINGLE_REGISTER: Final = 0x06
WRITE_MULTIPLE_COILS: Final = 0x0F
WRITE_MULTIPLE_REGISTERS: Final = 0x10

FUNCTION_NAMES: Final[dict[int, str]] = {
    READ_COILS: "read_coils",
    READ_DISCRETE_INPUTS: "read_discrete_inputs",
    READ_HOLDING_REGISTERS: "read_holding_registers",
    READ_INPUT_REGISTERS: "read_input_registers",
    WRITE_SINGLE_COIL: "write_single_coil",
    WRITE_SINGLE_REGISTER: "write_single_register",
    WRITE_MULTIPLE_COILS: "write_multiple_coils",
    WRITE_MULTIPLE_REGISTERS: "write_multiple_registers",
}
BIT_READS: Final = (READ_COILS, READ_DISCRETE_INPUTS)
REGISTER_READS: Final = (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS)
MAX_READ_BITS: Final = 2000
MAX_READ_REGISTERS: Final = 125
MAX_WRITE_COILS: Final = 1968
MAX_WRITE_REGISTERS: Final = 123
COIL_ON: Final = 0xFF00  # section 6.5: the only two legal values of a single-coil write
COIL_OFF: Final = 0x0000


def function_name(function: int) -> str:
    base = FUNCTION_NAMES.get(function & 0x7F, f"function_{function & 0x7F:#04x}")
    return f"{base}_exception" if function & 0x80 else base


# ---- requests --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadRequest:
    function: int  # 1, 2, 3 or 4
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class WriteCoil:
    address: int
    value: bool
    function: int = WRITE_SINGLE_COIL


@dataclass(frozen=True, slots=True)
class WriteRegister:
    address: int
    value: int
    function: int = WRITE_SINGLE_REGISTER


@dataclass(frozen=True, slots=True)
class WriteCoils:
    address: int
    values: tuple[bool, ...]
    function: int = WRITE_MULTIPLE_COILS


@dataclass(frozen=True, slots=True)
class WriteRegisters:
    address: int
    values: tuple[int, ...]
    function: int = WRITE_MULTIPLE_REGISTERS


Request: TypeAlias = ReadRequest | WriteCoil | WriteRegister | WriteCoils | WriteRegisters


# ---- replies ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BitsReply:
    function: int  # 1 or 2
    bits: tuple[bool, ...]  # byte_count * 8 bits, LSB of the first byte first (padding included)


@dataclass(frozen=True, slots=True)
class RegistersReply:
    function: int  # 3 or 4
    registers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class WriteReply:
    function: int  # 5, 6 (value echoed) or 15, 16 (quantity echoed)
    address: int
    value: int


@dataclass(frozen=True, slots=True)
class ExceptionReply:
    function: int  # the request's function code (without 0x80)
    code: int

    @property
    def name(self) -> str:
        return exception_name(self.code)

    def error(self) -> ModbusException:
        return ModbusException(self.function, self.code)


Reply: TypeAlias = BitsReply | RegistersReply | WriteReply | ExceptionReply


# ---- bits ------------------------------------------------------------------------------------


def pack_bits(bits: tuple[bool, ...] | list[bool]) -> bytes:
    """Section 6.1: the first bit goes to the LSB of the first byte; the last byte is zero-padded."""
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def unpack_bits(data: bytes) -> tuple[bool, ...]:
    return tuple(bool(byte >> i & 1) for byte in data for i in range(8))


# ---- build -----------------------------------------------------------------------------------


def build_request(req: Request) -> bytes:
    _check_request(req)
    if isinstance(req, ReadRequest):
        return struct.pack(">BHH", req.function, req.address, req.count)
    if isinstance(req, WriteCoil):
        return struct.pack(">BHH", req.function, req.address, COIL_ON if req.value else COIL_OFF)
    if isinstance(req, WriteRegister):
        return struct.pack(">BHH", req.function, req.address, req.value)
    if isinstance(req, WriteCoils):
        data = pack_bits(req.values)
        return struct.pack(">BHHB", req.function, req.address, len(req.values), len(data)) + data
    data = b"".join(v.to_bytes(2, "big") for v in req.values)
    return struct.pack(">BHHB", req.function, req.address, len(req.values), len(data)) + data


def _check_request(req: Request) -> None:
    if not 0 <= req.address <= 0xFFFF:
        raise DecodeError(f"address {req.address} outside 0..65535")
    if isinstance(req, ReadRequest):
        if req.function not in BIT_READS + REGISTER_READS:
            raise DecodeError(f"function {req.function} is not a read")
        limit = MAX_READ_BITS if req.function in BIT_READS else MAX_READ_REGISTERS
        _check_span(req.address, req.count, limit)
    elif isinstance(req, WriteRegister):
        _check_word(req.value)
    elif isinstance(req, WriteCoils):
        _check_span(req.address, len(req.values), MAX_WRITE_COILS)
    elif isinstance(req, WriteRegisters):
        _check_span(req.address, len(req.values), MAX_WRITE_REGISTERS)
        for value in req.values:
            _check_word(value)


def _check_span(address: int, count: int, limit: int) -> None:
    if not 1 <= count <= limit:
        raise DecodeError(f"quantity {count} outside 1..{limit}")
    if address + count > 0x10000:
        raise DecodeError(f"address {address} + quantity {count} runs past 65535")


def _check_word(value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise DecodeError(f"register value {value} outside 0..65535")


def build_reply(reply: Reply) -> bytes:
    if isinstance(reply, ExceptionReply):
        return bytes((reply.function | 0x80, reply.code))
    if isinstance(reply, BitsReply):
        data = pack_bits(reply.bits)
        return bytes((reply.function, len(data))) + data
    if isinstance(reply, RegistersReply):
        for value in reply.registers:
            _check_word(value)
        data = b"".join(v.to_bytes(2, "big") for v in reply.registers)
        return bytes((reply.function, len(data))) + data
    return struct.pack(">BHH", reply.function, reply.address, reply.value)


# ---- parse -----------------------------------------------------------------------------------


def request_length(pdu_head: bytes) -> int | None:
    """Length of a request PDU from its first bytes; None if more bytes are needed to tell.
    Raises FrameError for a function code outside 1-6, 15, 16 (its length cannot be known)."""
    function = pdu_head[0]
    if function in (1, 2, 3, 4, 5, 6):
        return 5
    if function in (WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS):
        return 6 + pdu_head[5] if len(pdu_head) >= 6 else None
    raise FrameError(f"unsupported function code {function:#04x}")


def reply_length(pdu_head: bytes) -> int | None:
    """Length of a reply PDU from its first bytes (exception: 2); None if more bytes are needed."""
    function = pdu_head[0]
    if function & 0x80:
        return 2
    if function in (1, 2, 3, 4):
        return 2 + pdu_head[1] if len(pdu_head) >= 2 else None
    if function in (5, 6, WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS):
        return 5
    raise FrameError(f"unsupported function code {function:#04x}")


def parse_request(pdu: bytes) -> Request:
    if not pdu:
        raise FrameError("empty PDU")
    if request_length(pdu) != len(pdu):
        raise FrameError(f"{function_name(pdu[0])} request: {len(pdu)} bytes, length does not fit")
    function, address, value = struct.unpack_from(">BHH", pdu)
    req: Request
    if function in BIT_READS + REGISTER_READS:
        req = ReadRequest(function, address, value)
    elif function == WRITE_SINGLE_COIL:
        if value not in (COIL_ON, COIL_OFF):
            raise DecodeError(f"write_single_coil value {value:#06x} is neither 0xFF00 nor 0x0000")
        req = WriteCoil(address, value == COIL_ON)
    elif function == WRITE_SINGLE_REGISTER:
        req = WriteRegister(address, value)
    else:
        req = _parse_multiple(function, address, value, pdu[6:])
    _check_request(req)
    return req


def _parse_multiple(function: int, address: int, count: int, data: bytes) -> Request:
    if function == WRITE_MULTIPLE_COILS:
        if len(data) != (count + 7) // 8:
            raise DecodeError(f"write_multiple_coils: {count} coils need {(count + 7) // 8} bytes")
        return WriteCoils(address, unpack_bits(data)[:count])
    if len(data) != 2 * count:
        raise DecodeError(f"write_multiple_registers: {count} registers need {2 * count} bytes")
    return WriteRegisters(
        address, tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    )


def parse_reply(pdu: bytes) -> Reply:
    if not pdu:
        raise FrameError("empty PDU")
    if reply_length(pdu) != len(pdu):
        raise FrameError(f"{function_name(pdu[0])} reply: {len(pdu)} bytes, length does not fit")
    function = pdu[0]
    if function & 0x80:
        return ExceptionReply(function & 0x7F, pdu[1])
    if function in BIT_READS:
        return BitsReply(function, unpack_bits(pdu[2:]))
    if function in REGISTER_READS:
        if pdu[1] % 2:
            raise DecodeError(f"{function_name(function)} reply: odd byte count {pdu[1]}")
        data = pdu[2:]
        return RegistersReply(
            function, tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
        )
    _, address, value = struct.unpack(">BHH", pdu)
    return WriteReply(function, address, value)


def expected_reply_pdu_length(req: Request) -> int:
    """Length of the normal (non-exception) reply PDU to `req`."""
    if isinstance(req, ReadRequest):
        per = (req.count + 7) // 8 if req.function in BIT_READS else 2 * req.count
        return 2 + per
    return 5


def check_reply(req: Request, reply: Reply) -> Reply:
    """Raise ModbusException for an exception reply and DecodeError when a normal reply does not
    answer `req` (function, byte count, or write echo); otherwise return `reply` unchanged."""
    if isinstance(reply, ExceptionReply):
        if reply.function != req.function:
            raise DecodeError(f"exception reply for function {reply.function}, asked {req.function}")
        raise reply.error()
    if reply.function != req.function:
        raise DecodeError(f"reply function {reply.function}, asked {req.function}")
    if isinstance(reply, BitsReply | RegistersReply):
        got = len(build_reply(reply))
        if got != expected_reply_pdu_length(req):
            raise DecodeError(f"{function_name(req.function)}: reply of {got} bytes does not fit the request")
        return reply
    assert isinstance(reply, WriteReply)
    echo = _expected_echo(req)
    if (reply.address, reply.value) != echo:
        raise DecodeError(f"{function_name(req.function)}: echo {(reply.address, reply.value)} != {echo}")
    return reply


def _expected_echo(req: Request) -> tuple[int, int]:
    if isinstance(req, WriteCoil):
        return req.address, COIL_ON if req.value else COIL_OFF
    if isinstance(req, WriteRegister):
        return req.address, req.value
    if isinstance(req, WriteCoils | WriteRegisters):
        return req.address, len(req.values)
    raise DecodeError(f"{function_name(req.function)} is not a write")
