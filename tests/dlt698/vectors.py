"""The worked frames of /work/shared/docs/dlt698.md §6 (checked there with PyPI dlt698 1.0.1), verbatim,
with the APDU each one is, built with our own constructors."""

from __future__ import annotations

from dataclasses import dataclass

from protocols.dlt698 import (
    ActionRequest,
    ActionResponse,
    Address,
    Apdu,
    Data,
    DataType,
    DateTimeS,
    ErrorApdu,
    GetListRequest,
    GetListResponse,
    GetRecordRequest,
    GetRecordResponse,
    GetRequest,
    GetResponse,
    GetResult,
    Oad,
    Omd,
    RecordResult,
    Rsd,
    SecurityRequest,
    SecurityResponse,
    SetRequest,
    columns,
)

METER = Address("123456789012")
T = DataType


def u32(v: int) -> Data:
    return Data(T.DOUBLE_LONG_UNSIGNED, v)


def energy(*values: int) -> Data:
    return Data.array(*(u32(v) for v in values))


@dataclass(frozen=True)
class Vector:
    id: str
    what: str
    hex: str
    address: Address
    apdu: Apdu
    reply: bool

    @property
    def raw(self) -> bytes:
        return bytes.fromhex(self.hex)


IMPORT = Oad(0x0010, 2)
E1_REQUEST = GetRequest(1, IMPORT)
E1_RESPONSE = GetResponse(1, GetResult(IMPORT, energy(123456, 20000, 50000, 40000, 13456)))
DAILY_COLUMNS = columns(Oad(0x2021, 2), IMPORT, Oad(0x0020, 2))
E5_REQUEST = GetRecordRequest(7, Oad(0x5004, 2), Rsd.last(1), DAILY_COLUMNS)
TRIP = Data.array(
    Data.structure(
        Data(T.OAD, Oad(0xF205, 2, 1)), Data(T.UNSIGNED, 0), Data(T.LONG_UNSIGNED, 0), Data(T.BOOL, False)
    )
)
CLOCK = DateTimeS(2024, 5, 20, 12, 0, 0)
RN = bytes(range(0x11, 0x21))

VECTORS = [
    Vector(
        "E1-req",
        "GET-Request-Normal 00100200",
        "68 17 00 43 05 12 90 78 56 34 12 00 A3 2E 05 01 01 00 10 02 00 00 FE 19 16",
        METER,
        E1_REQUEST,
        False,
    ),
    Vector(
        "E1-resp",
        "GET-Response-Normal: total 1234.56 kWh, T1..T4 200.00/500.00/400.00/134.56",
        "68 34 00 C3 05 12 90 78 56 34 12 00 4D F6 85 01 01 00 10 02 00 01 01 05 06 00 "
        "01 E2 40 06 00 00 4E 20 "
        "06 00 00 C3 50 06 00 00 9C 40 06 00 00 34 90 00 00 D7 1D 16",
        METER,
        E1_RESPONSE,
        True,
    ),
    Vector(
        "E2-req",
        "GET-Request-NormalList 20000200 20010200",
        "68 1C 00 43 05 12 90 78 56 34 12 00 BA 6C 05 02 02 02 20 00 02 00 20 01 02 00 00 53 D7 16",
        METER,
        GetListRequest(2, (Oad(0x2000, 2), Oad(0x2001, 2))),
        False,
    ),
    Vector(
        "E2-resp",
        "GET-Response-NormalList: 241.3 V x3, 1.000 A x3 (standard example D.3.2)",
        "68 3B 00 C3 05 12 90 78 56 34 12 00 01 EA 85 02 02 02 20 00 02 00 01 01 03 12 "
        "09 6D 12 09 6D 12 09 6D "
        "20 01 02 00 01 01 03 05 00 00 03 E8 05 00 00 03 E8 05 00 00 03 E8 00 00 10 86 16",
        METER,
        GetListResponse(
            2,
            (
                GetResult(Oad(0x2000, 2), Data.array(*[Data(T.LONG_UNSIGNED, 2413)] * 3)),
                GetResult(Oad(0x2001, 2), Data.array(*[Data(T.DOUBLE_LONG, 1000)] * 3)),
            ),
        ),
        True,
    ),
    Vector(
        "E3-req",
        "wildcard GET 40010200",
        "68 17 00 43 45 AA AA AA AA AA AA 00 5B 4F 05 01 01 40 01 02 00 00 C6 07 16",
        Address.wildcard(),
        GetRequest(1, Oad(0x4001, 2)),
        False,
    ),
    Vector(
        "E3-resp",
        "address 123456789012, in normal order",
        "68 21 00 C3 05 12 90 78 56 34 12 00 CC 8C 85 01 01 40 01 02 00 01 09 06 12 34 "
        "56 78 90 12 00 00 CB 89 16",
        METER,
        GetResponse(1, GetResult(Oad(0x4001, 2), Data(T.OCTET_STRING, bytes.fromhex("123456789012")))),
        True,
    ),
    Vector(
        "E4-trip",
        "ACTION 8000 m129 trip relay 1 now",
        "68 27 00 43 05 12 90 78 56 34 12 00 6C BD 07 01 03 80 00 81 00 01 01 02 04 51 "
        "F2 05 02 01 11 00 12 00 00 "
        "03 00 00 07 1E 16",
        METER,
        ActionRequest(3, Omd(0x8000, 129), TRIP),
        False,
    ),
    Vector(
        "E4-resp",
        "ACTION-Response DAR 0, no data",
        "68 1A 00 C3 05 12 90 78 56 34 12 00 1A 5D 87 01 03 80 00 81 00 00 00 00 00 5D CD 16",
        METER,
        ActionResponse(3, Omd(0x8000, 129)),
        True,
    ),
    Vector(
        "E4-time",
        "broadcast time 2024-05-20 12:00:00 (4000 m127)",
        "68 1A 00 43 C0 AA 00 5E F7 07 01 05 40 00 7F 00 1C 07 E8 05 14 0C 00 00 00 92 B9 16",
        Address.broadcast(),
        ActionRequest(5, Omd(0x4000, 127), Data(T.DATE_TIME_S, CLOCK)),
        False,
    ),
    Vector(
        "E5-req",
        "GET-Record 50040200 selector 9 (latest), columns 20210200 00100200 00200200",
        "68 29 00 43 05 12 90 78 56 34 12 00 B1 F4 05 03 07 50 04 02 00 09 01 03 00 20 "
        "21 02 00 00 00 10 02 00 "
        "00 00 20 02 00 00 19 BF 16",
        METER,
        E5_REQUEST,
        False,
    ),
    Vector(
        "E5-resp",
        "daily freeze 2024-05-20: import 1230.00 kWh, export 0",
        "68 68 00 C3 05 12 90 78 56 34 12 00 F2 A8 85 03 07 50 04 02 00 03 00 20 21 02 "
        "00 00 00 10 02 00 00 00 "
        "20 02 00 01 01 1C 07 E8 05 14 00 00 00 01 05 06 00 01 E0 78 06 00 00 4D BC 06 "
        "00 00 C2 88 06 00 00 9B DC "
        "06 00 00 34 58 01 05 06 00 00 00 00 06 00 00 00 00 06 00 00 00 00 06 00 00 00 "
        "00 06 00 00 00 00 00 00 "
        "2F F1 16",
        METER,
        GetRecordResponse(
            7,
            RecordResult(
                Oad(0x5004, 2),
                DAILY_COLUMNS,
                (
                    (
                        Data(T.DATE_TIME_S, DateTimeS(2024, 5, 20)),
                        energy(123000, 19900, 49800, 39900, 13400),
                        energy(0, 0, 0, 0, 0),
                    ),
                ),
            ),
        ),
        True,
    ),
    Vector(
        "E6-dar",
        "202C0200 on a meter without wallet: DAR 4 object undefined",
        "68 1A 00 C3 05 12 90 78 56 34 12 00 1A 5D 85 01 08 20 2C 02 00 00 04 00 00 07 0A 16",
        METER,
        GetResponse(8, GetResult(Oad(0x202C, 2), None, 4)),
        True,
    ),
    Vector(
        "E6-error",
        "ERROR-Response PIID 08 type 2 (service unsupported)",
        "68 14 00 C3 05 12 90 78 56 34 12 00 C7 14 EE 08 02 00 00 4E 96 16",
        METER,
        ErrorApdu(8, 2),
        True,
    ),
    Vector(
        "E7-req",
        "E1 as plaintext + RN (11..20)",
        "68 2C 00 43 05 12 90 78 56 34 12 00 75 FF 10 00 08 05 01 01 00 10 02 00 00 01 "
        "10 11 12 13 14 15 16 17 18 "
        "19 1A 1B 1C 1D 1E 1F 20 A7 08 16",
        METER,
        SecurityRequest(E1_REQUEST.encode(), rn=RN),
        False,
    ),
]

# §6 APDU-only examples (no frame printed in the reference)
CLOSE_NOW_APDU = "07 01 04 80 00 82 00 01 01 02 02 51 F2 05 02 01 16 01 00"
CLOSE_NOW = ActionRequest(
    4,
    Omd(0x8000, 130),
    Data.array(Data.structure(Data(T.OAD, Oad(0xF205, 2, 1)), Data(T.ENUM, 1))),
)
SET_CLOCK_APDU = "06 01 06 40 00 02 00 1C 07 E8 05 14 0C 00 00 00"
SET_CLOCK = SetRequest(6, Oad(0x4000, 2), Data(T.DATE_TIME_S, CLOCK))
E7_RESPONSE_APDU = "90 00 25 " + E1_RESPONSE.encode().hex(" ") + " 01 00 04 A1 B2 C3 D4"
E7_RESPONSE = SecurityResponse(E1_RESPONSE.encode(), mac=bytes.fromhex("A1B2C3D4"))
