"""A small DL/T 698.45 prepaid meter for the driver's tests, built only from the codec's builders.

It is a `firmware_sim.device.SimDevice`, hosted on the simulator's real `Line` (a pty with baud pacing,
echo and the generic faults), so the driver meets real wire timing. It answers GET Normal / NormalList
/ Record (selectors 2 and 9 on the daily freezes), SET of the clock, ACTION on 8000 / 8001 and the
clock broadcast, plaintext + RN with a fixed MAC, and relayed ciphertext with a canned reply. Knobs:
`lists` (False: ERROR-Response to a NormalList), `absent` (OADs answered with DAR 6), `range_records`
(False: DAR for selector 2), `secured` (plaintext ACTION refused with DAR 20), `silent`.

`firmware_sim/devices/dlt698/` (another engineer's) replaces it once it lands.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from firmware_sim.device import SimReply
from protocols.dlt698 import (
    ActionRequest,
    ActionResponse,
    BitString,
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
    RecordResult,
    SecurityRequest,
    SecurityResponse,
    SetRequest,
    SetResponse,
    answers,
    parse_apdu,
    reply_frame,
    split_frames,
)
from protocols.dlt698.frame import AddressType

CST = dt.timezone(dt.timedelta(hours=8))
MAC = bytes.fromhex("A1B2C3D4")
CIPHER_REPLY = SecurityResponse(
    apdu=bytes.fromhex("0badc0ffee"), ciphered=True, mac=bytes.fromhex("01020304")
)


def _u32(v: int) -> Data:
    return Data(DataType.DOUBLE_LONG_UNSIGNED, v)


@dataclass
class Meter698:
    address: str
    protocol: str = "dlt698"
    lists: bool = True
    range_records: bool = True
    secured: bool = False
    silent: bool = False
    absent: set[Oad] = field(default_factory=set)
    clock_skew_s: float = 0.0
    energy_wh10: int = 123_456  # 1234.56 kWh
    relay_open: bool = False
    keep_power: bool = False
    freezes: dict[dt.datetime, int] = field(default_factory=dict)  # freeze time -> import x0.01 kWh
    turnaround_s: float = 0.03
    requests: list[object] = field(default_factory=list)  # every APDU heard, decoded
    broadcasts: int = 0

    @property
    def name(self) -> str:
        return self.address

    def tick(self, now: float) -> None:
        pass

    def respond(self, request: bytes, now: float) -> SimReply | None:
        for frame in split_frames(request):
            if frame.address.type == AddressType.BROADCAST and not frame.is_reply:
                self.broadcasts += 1
                self._apply(parse_apdu(frame.data), now)
                continue
            if self.silent or not answers(frame, self.address):
                continue
            apdu = parse_apdu(frame.data)
            self.requests.append(apdu)
            reply = self._answer(apdu, now)
            return SimReply(reply_frame(frame, self.address, reply).encode(), self.turnaround_s)
        return None

    # ---- answers --------------------------------------------------------------------------------

    def _answer(self, apdu: object, now: float) -> bytes:
        if isinstance(apdu, SecurityRequest):
            if apdu.ciphered:
                return CIPHER_REPLY.encode()
            inner = self._answer(parse_apdu(apdu.apdu), now)
            return SecurityResponse(apdu=inner, mac=MAC).encode()
        if isinstance(apdu, GetRequest):
            return GetResponse(apdu.piid, self._result(apdu.oad, now)).encode()
        if isinstance(apdu, GetListRequest):
            if not self.lists:
                return ErrorApdu(apdu.piid, 2).encode()
            return GetListResponse(apdu.piid, tuple(self._result(o, now) for o in apdu.oads)).encode()
        if isinstance(apdu, GetRecordRequest):
            return GetRecordResponse(apdu.piid, self._records(apdu)).encode()
        if isinstance(apdu, SetRequest | ActionRequest):
            dar = 20 if self.secured else self._apply(apdu, now)
            if isinstance(apdu, SetRequest):
                return SetResponse(apdu.piid, apdu.oad, dar).encode()
            return ActionResponse(apdu.piid, apdu.omd, dar).encode()
        return ErrorApdu(getattr(apdu, "piid", 0), 2).encode()

    def _apply(self, apdu: object, now: float) -> int:
        if isinstance(apdu, SetRequest) and apdu.oad == Oad(0x4000, 2):
            self.clock_skew_s = 0.0
            return 0
        if not isinstance(apdu, ActionRequest):
            return 6
        key = (apdu.omd.oi, apdu.omd.method)
        if key == (0x4000, 127):
            self.clock_skew_s = 0.0
        elif key == (0x8000, 129):
            if self.keep_power:
                return 3  # read_write_denied: keep-power holds the relay closed
            self.relay_open = True
        elif key == (0x8000, 130):
            self.relay_open = False
        elif key in ((0x8001, 127), (0x8001, 128)):
            self.keep_power = apdu.omd.method == 127
        elif key not in ((0x8000, 127), (0x8000, 128)):
            return 6
        return 0

    def _result(self, oad: Oad, now: float) -> GetResult:
        whole = self._value(oad.whole(), now)
        if whole is None or oad.whole() in self.absent or oad in self.absent:
            return GetResult(oad, None, 6)
        if oad.index:
            items = whole.items()
            if oad.index > len(items):
                return GetResult(oad, None, 8)
            return GetResult(oad, items[oad.index - 1])
        return GetResult(oad, whole)

    def _value(self, oad: Oad, now: float) -> Data | None:
        e = self.energy_wh10
        bits = BitString(8, bytes([0x80 if self.relay_open else 0]))
        table = {
            Oad(0x0010, 2): Data.array(*(_u32(v) for v in (e, e // 4, e // 4, e // 4, e - 3 * (e // 4)))),
            Oad(0x2000, 2): Data.array(*(Data(DataType.LONG_UNSIGNED, v) for v in (2301, 2302, 2303))),
            Oad(0x2001, 2): Data.array(*(Data(DataType.DOUBLE_LONG, v) for v in (1500, 0, 0))),
            Oad(0x2004, 2): Data.array(*(Data(DataType.DOUBLE_LONG, v) for v in (3450, 3450, 0, 0))),
            Oad(0x200A, 2): Data.array(*(Data(DataType.LONG, v) for v in (990, 990, 0, 0))),
            Oad(0x202C, 2): Data.structure(_u32(5678), _u32(3)),
            Oad(0x202D, 2): _u32(0),
            Oad(0x8000, 3): Data(DataType.BIT_STRING, bits),
            Oad(0x8000, 5): Data(DataType.BIT_STRING, bits),
            Oad(0x8001, 2): Data(DataType.ENUM, 1 if self.keep_power else 0),
            Oad(0x4001, 2): Data(DataType.OCTET_STRING, bytes.fromhex(self.address)),
        }
        if oad == Oad(0x4000, 2):
            wall = dt.datetime.fromtimestamp(now + self.clock_skew_s, CST).replace(tzinfo=None)
            return Data(DataType.DATE_TIME_S, DateTimeS.of(wall))
        return table.get(oad)

    def _records(self, apdu: GetRecordRequest) -> RecordResult:
        rcsd = apdu.rcsd
        if apdu.oad != Oad(0x5004, 2) or apdu.rsd.selector not in (2, 9):
            return RecordResult(apdu.oad, rcsd, None, 6)
        times = sorted(self.freezes)
        if apdu.rsd.selector == 9:
            chosen = [times[-apdu.rsd.n]] if 1 <= apdu.rsd.n <= len(times) else []
            if not chosen:
                return RecordResult(apdu.oad, rcsd, None, 6)
        else:
            if not self.range_records:
                return RecordResult(apdu.oad, rcsd, None, 8)
            start, end = (v.value.to_datetime() for v in apdu.rsd.values[:2])
            chosen = [t for t in times if start <= t < end]
        rows = tuple(self._row(t, rcsd) for t in chosen)
        return RecordResult(apdu.oad, rcsd, rows)

    def _row(self, when: dt.datetime, rcsd: tuple) -> tuple[Data, ...]:
        cells = []
        for csd in rcsd:
            oi = csd.target.oi
            if oi == 0x2021:
                cells.append(Data(DataType.DATE_TIME_S, DateTimeS.of(when)))
            elif oi == 0x0010:
                v = self.freezes[when]
                cells.append(Data.array(*(_u32(x) for x in (v, v // 2, v - v // 2, 0, 0))))
            else:
                cells.append(Data.array(*(_u32(0) for _ in range(5))))
        return tuple(cells)
