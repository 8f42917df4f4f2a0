"""Register-map points and their value codec: Modbus words/bits <-> canonical values.

Layer: pure codec (protocols). Must not: read files (maps.py does) or do I/O.

A point says where a canonical value lives (table, address), how its words are laid out (type,
word order, byte order) and how the raw number becomes the canonical value (value = raw * scale +
offset, in the canonical unit). Modbus itself only defines 16-bit big-endian registers (MODBUS
Application Protocol v1.1b3, section 4.2); everything wider is a vendor convention, hence the
explicit orders: big/big = "ABCD" (Eastron, CHINT), little word order = "CDAB" (many Chinese
meters and PLCs), little byte order = "BADC", both little = "DCBA".
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final, TypeAlias

from ..errors import DecodeError
from ..vocabulary import VOCABULARY, ValueType
from .errors import EncodeError
from .pdu import (
    READ_COILS,
    READ_DISCRETE_INPUTS,
    READ_HOLDING_REGISTERS,
    READ_INPUT_REGISTERS,
    Request,
    WriteCoil,
    WriteCoils,
    WriteRegister,
    WriteRegisters,
)

Value: TypeAlias = float | int | bool | str
Label: TypeAlias = str | bool


class Table(enum.Enum):
    HOLDING = "holding"
    INPUT = "input"
    COIL = "coil"
    DISCRETE = "discrete"

    @property
    def is_bits(self) -> bool:
        return self in (Table.COIL, Table.DISCRETE)

    @property
    def read_function(self) -> int:
        return _READ_FUNCTION[self]

    @property
    def writable(self) -> bool:
        return self in (Table.HOLDING, Table.COIL)


_READ_FUNCTION: Final = {
    Table.COIL: READ_COILS,
    Table.DISCRETE: READ_DISCRETE_INPUTS,
    Table.HOLDING: READ_HOLDING_REGISTERS,
    Table.INPUT: READ_INPUT_REGISTERS,
}


@dataclass(frozen=True, slots=True)
class DataType:
    name: str
    size: int  # registers (or 1 bit for "bit")
    kind: str  # "uint" | "int" | "float" | "bcd" | "bit"


DATA_TYPES: Final[dict[str, DataType]] = {
    t.name: t
    for t in (
        DataType("bit", 1, "bit"),
        DataType("u16", 1, "uint"),
        DataType("s16", 1, "int"),
        DataType("u32", 2, "uint"),
        DataType("s32", 2, "int"),
        DataType("u64", 4, "uint"),
        DataType("s64", 4, "int"),
        DataType("f32", 2, "float"),
        DataType("f64", 4, "float"),
        DataType("bcd16", 1, "bcd"),  # 4 packed decimal digits, most significant nibble first
        DataType("bcd32", 2, "bcd"),  # 8 digits
    )
}
ORDERS: Final = ("big", "little")


@dataclass(frozen=True, slots=True)
class Point:
    name: str  # canonical name (protocols.vocabulary)
    table: Table
    address: int  # PDU address, 0-based (document register 30001 / 40001 -> 0)
    type: str
    unit: str = ""
    word_order: str = "big"
    byte_order: str = "big"
    scale: float = 1.0
    offset: float = 0.0
    writable: bool = False
    values: tuple[tuple[Label, int], ...] = ()  # label -> raw, for relay/bool points
    doc: str = ""

    @property
    def data_type(self) -> DataType:
        return DATA_TYPES[self.type]

    @property
    def size(self) -> int:
        return self.data_type.size

    @property
    def end(self) -> int:
        return self.address + self.size

    @property
    def value_type(self) -> ValueType:
        canonical = VOCABULARY.get(self.name)
        if canonical is not None:
            return canonical.type
        # a raw point (engineer's --address/--type read): the type itself decides
        if self.table.is_bits:
            return ValueType.BOOL
        integral = self.data_type.kind != "float" and self.scale == 1 and self.offset == 0
        return ValueType.INT if integral else ValueType.FLOAT


RAW_NAME: Final = "raw"


def raw_point(
    table: Table,
    address: int,
    type_: str,
    *,
    word_order: str = "big",
    byte_order: str = "big",
    scale: float = 1.0,
) -> Point:
    """A point outside any map, for raw reads by address and type (`gridedge read --address A --type T`).
    Raises EncodeError for a type or order that does not exist or does not fit the table."""
    if type_ not in DATA_TYPES or word_order not in ORDERS or byte_order not in ORDERS:
        raise EncodeError(
            f"type {type_!r} / orders {word_order!r}, {byte_order!r}: types {', '.join(DATA_TYPES)}"
        )
    if (type_ == "bit") != table.is_bits:
        raise EncodeError(f"type {type_} does not fit the {table.value} table")
    if not 0 <= address <= 0xFFFF - DATA_TYPES[type_].size + 1:
        raise EncodeError(f"address {address} + {DATA_TYPES[type_].size} registers outside 0..65535")
    return Point(RAW_NAME, table, address, type_, word_order=word_order, byte_order=byte_order, scale=scale)


# ---- raw numbers <-> words -------------------------------------------------------------------


def _to_bytes(point: Point, words: Sequence[int]) -> bytes:
    ordered = list(words) if point.word_order == "big" else list(reversed(words))
    data = b"".join(w.to_bytes(2, "big") for w in ordered)
    if point.byte_order == "little":
        data = b"".join(data[i : i + 2][::-1] for i in range(0, len(data), 2))
    return data


def _from_bytes(point: Point, data: bytes) -> tuple[int, ...]:
    if point.byte_order == "little":
        data = b"".join(data[i : i + 2][::-1] for i in range(0, len(data), 2))
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return tuple(words if point.word_order == "big" else reversed(words))


def raw_from_words(point: Point, words: Sequence[int]) -> int | float:
    if len(words) != point.size:
        raise DecodeError(f"{point.name}: {len(words)} registers, type {point.type} needs {point.size}")
    data = _to_bytes(point, words)
    kind = point.data_type.kind
    if kind == "float":
        return float(struct.unpack(">f" if len(data) == 4 else ">d", data)[0])
    if kind == "bcd":
        digits = data.hex()
        if not digits.isdigit():
            raise DecodeError(f"{point.name}: {digits} is not BCD")
        return int(digits)
    return int.from_bytes(data, "big", signed=kind == "int")


def words_from_raw(point: Point, raw: int | float) -> tuple[int, ...]:
    nbytes = 2 * point.size
    kind = point.data_type.kind
    try:
        if kind == "float":
            data = struct.pack(">f" if nbytes == 4 else ">d", raw)
        elif kind == "bcd":
            if not 0 <= raw < 10 ** (2 * nbytes):
                raise ValueError(f"BCD holds 0..{10 ** (2 * nbytes) - 1}")
            data = bytes.fromhex(f"{int(raw):0{2 * nbytes}d}")
        else:
            data = int(raw).to_bytes(nbytes, "big", signed=kind == "int")
    except (OverflowError, struct.error, ValueError) as exc:
        raise EncodeError(f"{point.name}: raw value {raw} does not fit {point.type}: {exc}") from None
    if len(data) != nbytes:
        raise EncodeError(f"{point.name}: raw value {raw} does not fit {point.type}")
    return _from_bytes(point, data)


# ---- raw <-> canonical -----------------------------------------------------------------------

_F32_DIGITS: Final = 7  # an IEEE single carries ~7 significant decimal digits; more are noise


def _scaled(point: Point, raw: int | float) -> float:
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise DecodeError(f"{point.name}: device reports {raw}")
        text = f"{raw:.{_F32_DIGITS}g}" if point.type == "f32" else repr(raw)
    else:
        text = str(raw)
    # Decimal keeps 2201 * 0.1 == 220.1 exactly instead of 220.10000000000002
    return float(Decimal(text) * Decimal(repr(point.scale)) + Decimal(repr(point.offset)))


def value_from_raw(point: Point, raw: int | float) -> Value:
    vtype = point.value_type
    if vtype in (ValueType.RELAY, ValueType.BOOL):
        return _label_of(point, raw)
    if vtype is ValueType.INT:
        return int(raw)
    return _scaled(point, raw)


def _label_of(point: Point, raw: int | float) -> Label:
    for label, code in point.values:
        if code == raw:
            return label
    if point.value_type is ValueType.BOOL and not point.values:
        return bool(raw)
    raise DecodeError(f"{point.name}: raw value {raw} is none of {dict(point.values)}")


def raw_from_value(point: Point, value: Value) -> int | float:
    vtype = point.value_type
    if vtype in (ValueType.RELAY, ValueType.BOOL):
        for label, code in point.values:
            if label == value:
                return code
        if vtype is ValueType.BOOL and not point.values and isinstance(value, bool):
            return int(value)
        raise EncodeError(f"{point.name}: {value!r} is none of {[label for label, _ in point.values]}")
    if isinstance(value, bool | str):
        raise EncodeError(f"{point.name}: expects a number, got {value!r}")
    try:
        raw = (Decimal(repr(value)) - Decimal(repr(point.offset))) / Decimal(repr(point.scale))
    except InvalidOperation as exc:
        raise EncodeError(f"{point.name}: cannot scale {value!r}: {exc}") from None
    if point.data_type.kind == "float":
        return float(raw)
    return int(raw.to_integral_value())


# ---- public: point <-> words/bits ------------------------------------------------------------


def decode_point(point: Point, data: Sequence[int] | Sequence[bool]) -> Value:
    """`data` is the point's own registers (or its one bit for coil/discrete points)."""
    if point.table.is_bits:
        if len(data) != 1:
            raise DecodeError(f"{point.name}: {len(data)} bits, expected 1")
        return value_from_raw(point, int(bool(data[0])))
    return value_from_raw(point, raw_from_words(point, [int(w) for w in data]))


def encode_point(point: Point, value: Value) -> tuple[int, ...]:
    """Registers for a register point, or (0,)/(1,) for a bit point."""
    raw = raw_from_value(point, value)
    if point.table.is_bits:
        if raw not in (0, 1):
            raise EncodeError(f"{point.name}: a bit is 0 or 1, got {raw}")
        return (int(raw),)
    return words_from_raw(point, raw)


def write_request(point: Point, value: Value, *, multiple: bool = False) -> Request:
    """The request that writes `value` to a writable point: function 5/6 for one coil/register
    (15/16 with `multiple=True`, for devices that accept only those), 16 for wider points."""
    if not point.writable or not point.table.writable:
        raise EncodeError(f"{point.name}: not writable ({point.table.value} {point.address})")
    words = encode_point(point, value)
    if point.table is Table.COIL:
        return (
            WriteCoils(point.address, (bool(words[0]),))
            if multiple
            else WriteCoil(point.address, bool(words[0]))
        )
    if len(words) == 1 and not multiple:
        return WriteRegister(point.address, words[0])
    return WriteRegisters(point.address, words)
