"""DL/T 698.45 A-XDR type tags (dlt698.md §3) and what the fixed-size ones hold.

Layer: pure data (protocols). Must not: encode or decode anything (that is `axdr`).
"""

from __future__ import annotations

import enum
from typing import Any, Final

from .datatypes import (
    BitString,
    Comdcb,
    Date,
    DateTime,
    DateTimeS,
    Oad,
    Omd,
    Road,
    ScalerUnit,
    Sid,
    SidMac,
    Ti,
    Time,
    Tsa,
)


class DataType(enum.IntEnum):
    NULL = 0
    ARRAY = 1
    STRUCTURE = 2
    BOOL = 3
    BIT_STRING = 4
    DOUBLE_LONG = 5
    DOUBLE_LONG_UNSIGNED = 6
    OCTET_STRING = 9
    VISIBLE_STRING = 10
    UTF8_STRING = 12
    INTEGER = 15
    LONG = 16
    UNSIGNED = 17
    LONG_UNSIGNED = 18
    LONG64 = 20
    LONG64_UNSIGNED = 21
    ENUM = 22
    FLOAT32 = 23
    FLOAT64 = 24
    DATE_TIME = 25
    DATE = 26
    TIME = 27
    DATE_TIME_S = 28
    OI = 80
    OAD = 81
    ROAD = 82
    OMD = 83
    TI = 84
    TSA = 85
    MAC = 86
    RN = 87
    REGION = 88
    SCALER_UNIT = 89
    RSD = 90
    CSD = 91
    MS = 92
    SID = 93
    SID_MAC = 94
    COMDCB = 95
    RCSD = 96


T = DataType
INTEGERS: Final[dict[DataType, tuple[int, bool]]] = {
    T.DOUBLE_LONG: (4, True),
    T.DOUBLE_LONG_UNSIGNED: (4, False),
    T.INTEGER: (1, True),
    T.LONG: (2, True),
    T.UNSIGNED: (1, False),
    T.LONG_UNSIGNED: (2, False),
    T.LONG64: (8, True),
    T.LONG64_UNSIGNED: (8, False),
    T.ENUM: (1, False),
    T.OI: (2, False),
}
FIXED: Final[dict[DataType, Any]] = {
    T.BIT_STRING: BitString,
    T.DATE_TIME: DateTime,
    T.DATE: Date,
    T.TIME: Time,
    T.DATE_TIME_S: DateTimeS,
    T.OAD: Oad,
    T.ROAD: Road,
    T.OMD: Omd,
    T.TI: Ti,
    T.TSA: Tsa,
    T.SCALER_UNIT: ScalerUnit,
    T.SID: Sid,
    T.SID_MAC: SidMac,
    T.COMDCB: Comdcb,
}
