"""DL/T 698.45 client APDUs (what a master sends) and the parts every APDU shares: the service tags,
PIID, TimeTag, the normal and record results and the FollowReport that carries them.

Layer: pure codec (protocols). Must not: know frames or addresses (`frame`, `messages`).

dlt698.md §2: `05 01 PIID OAD TT` GET-Normal, `05 02 PIID n OAD… TT` NormalList, `05 03 PIID OAD RSD
RCSD TT` Record, `05 05 PIID block TT` Next; `06 01 PIID OAD Data TT` SET-Normal (`06 02` list);
`07 01 PIID OMD Data TT` ACTION-Normal. Client APDUs end with a TimeTag, server APDUs with a
FollowReport and a TimeTag. PIID: bit 7 high priority, bits 0-5 the sequence 0..63 the meter echoes;
in a reply the same byte is PIID-ACD (bit 6: the meter has data to report).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from .axdr import Data, Rcsd, Rsd, decode_data, decode_rcsd, decode_rsd, encode_data, encode_rcsd, encode_rsd
from .datatypes import DateTimeS, Oad, Omd, Ti
from .errors import EncodeError
from .wire import Reader, Writer


class Tag(enum.IntEnum):
    LINK_REQUEST = 1
    CONNECT_REQUEST = 2
    RELEASE_REQUEST = 3
    GET_REQUEST = 5
    SET_REQUEST = 6
    ACTION_REQUEST = 7
    REPORT_RESPONSE = 8
    PROXY_REQUEST = 9
    SECURITY_REQUEST = 16
    CLIENT_ERROR_RESPONSE = 110
    LINK_RESPONSE = 129
    CONNECT_RESPONSE = 130
    RELEASE_RESPONSE = 131
    RELEASE_NOTIFICATION = 132
    GET_RESPONSE = 133
    SET_RESPONSE = 134
    ACTION_RESPONSE = 135
    REPORT_NOTIFICATION = 136
    PROXY_RESPONSE = 137
    SECURITY_RESPONSE = 144
    ERROR_RESPONSE = 238


def tag_name(tag: int) -> str:
    return Tag(tag).name.replace("_", "-") if tag in Tag._value2member_map_ else f"unknown APDU {tag:02X}"


def piid(sequence: int, *, high_priority: bool = False) -> int:
    """A PIID byte for request `sequence` (taken mod 64)."""
    return (sequence & 0x3F) | (0x80 if high_priority else 0)


def piid_sequence(byte: int) -> int:
    return byte & 0x3F


@dataclass(frozen=True, slots=True)
class TimeTag:
    """The send time and how long the request stays valid (TI); a meter refuses a stale one (DAR 32)."""

    sent: DateTimeS
    valid: Ti

    def encode(self, w: Writer) -> None:
        self.sent.encode(w)
        self.valid.encode(w)


def encode_time_tag(w: Writer, tag: TimeTag | None) -> None:
    if tag is None:
        w.u8(0)
    else:
        w.u8(1)
        tag.encode(w)


def decode_time_tag(r: Reader) -> TimeTag | None:
    flag = r.u8("TimeTag")
    if flag == 0:
        return None
    if flag != 1:
        raise r.error(f"TimeTag flag {flag:02X} (00 or 01)")
    return TimeTag(DateTimeS.decode(r), Ti.decode(r))


def decode_dar(r: Reader) -> int:
    return r.u8("DAR")


# ---- results shared by responses and FollowReport ------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetResult:
    """A-ResultNormal: the value of `oad`, or the DAR why not (`data` None)."""

    oad: Oad
    data: Data | None
    dar: int = 0

    @property
    def ok(self) -> bool:
        return self.data is not None

    def encode(self, w: Writer) -> None:
        self.oad.encode(w)
        if self.data is None:
            w.u8(0).u8(self.dar, "DAR")
        else:
            w.u8(1)
            encode_data(w, self.data)

    @classmethod
    def decode(cls, r: Reader) -> GetResult:
        oad = Oad.decode(r)
        choice = r.u8("Get-Result")
        if choice == 0:
            return cls(oad, None, decode_dar(r))
        if choice == 1:
            return cls(oad, decode_data(r))
        raise r.error(f"{oad}: Get-Result choice {choice} (0 DAR, 1 Data)")


@dataclass(frozen=True, slots=True)
class RecordResult:
    """A-ResultRecord: the records of `oad` with the columns `rcsd` (one Data per column per row), or
    the DAR why not (`rows` None)."""

    oad: Oad
    rcsd: Rcsd
    rows: tuple[tuple[Data, ...], ...] | None
    dar: int = 0

    @property
    def ok(self) -> bool:
        return self.rows is not None

    def encode(self, w: Writer) -> None:
        self.oad.encode(w)
        encode_rcsd(w, self.rcsd)
        if self.rows is None:
            w.u8(0).u8(self.dar, "DAR")
            return
        w.u8(1).length(len(self.rows), "records")
        for row in self.rows:
            if len(row) != len(self.rcsd):
                raise EncodeError(f"{self.oad}: a record of {len(row)} cells for {len(self.rcsd)} columns")
            for cell in row:
                encode_data(w, cell)

    @classmethod
    def decode(cls, r: Reader) -> RecordResult:
        oad, rcsd = Oad.decode(r), decode_rcsd(r)
        choice = r.u8("record result")
        if choice == 0:
            return cls(oad, rcsd, None, decode_dar(r))
        if choice != 1:
            raise r.error(f"{oad}: record result choice {choice} (0 DAR, 1 records)")
        n = r.count("records", max(len(rcsd), 1))
        return cls(oad, rcsd, tuple(tuple(decode_data(r) for _ in rcsd) for _ in range(n)))


@dataclass(frozen=True, slots=True)
class FollowReport:
    """Data the meter reports along with its answer: normal results (1) or record results (2)."""

    results: tuple[GetResult, ...] | tuple[RecordResult, ...]

    def encode(self, w: Writer) -> None:
        records = bool(self.results) and isinstance(self.results[0], RecordResult)
        w.u8(2 if records else 1).length(len(self.results), "FollowReport")
        for result in self.results:
            result.encode(w)


def encode_trailer(w: Writer, follow: FollowReport | None, time_tag: TimeTag | None) -> None:
    if follow is None:
        w.u8(0)
    else:
        w.u8(1)
        follow.encode(w)
    encode_time_tag(w, time_tag)


def decode_follow(r: Reader) -> FollowReport | None:
    if r.u8("FollowReport") == 0:
        return None
    choice = r.u8("FollowReport choice")
    if choice == 1:
        return FollowReport(tuple(GetResult.decode(r) for _ in range(r.count("FollowReport", 5))))
    if choice == 2:
        return FollowReport(tuple(RecordResult.decode(r) for _ in range(r.count("FollowReport", 6))))
    raise r.error(f"FollowReport choice {choice} (1 results, 2 records)")


# ---- client APDUs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Request:
    TAG: ClassVar[int]
    CHOICE: ClassVar[int]

    piid: int

    def encode(self) -> bytes:
        w = Writer().u8(self.TAG).u8(self.CHOICE).u8(self.piid, "PIID")
        self._body(w)
        encode_time_tag(w, self._time_tag())
        return w.getvalue()

    def _body(self, w: Writer) -> None:
        raise NotImplementedError

    def _time_tag(self) -> TimeTag | None:
        return getattr(self, "time_tag", None)


@dataclass(frozen=True, slots=True)
class GetRequest(_Request):
    TAG = Tag.GET_REQUEST
    CHOICE = 1
    oad: Oad
    time_tag: TimeTag | None = None

    def _body(self, w: Writer) -> None:
        self.oad.encode(w)


@dataclass(frozen=True, slots=True)
class GetListRequest(_Request):
    TAG = Tag.GET_REQUEST
    CHOICE = 2
    oads: tuple[Oad, ...]
    time_tag: TimeTag | None = None

    def _body(self, w: Writer) -> None:
        w.length(len(self.oads), "OADs")
        for oad in self.oads:
            oad.encode(w)


@dataclass(frozen=True, slots=True)
class GetRecordRequest(_Request):
    TAG = Tag.GET_REQUEST
    CHOICE = 3
    oad: Oad
    rsd: Rsd
    rcsd: Rcsd = ()
    time_tag: TimeTag | None = None

    def _body(self, w: Writer) -> None:
        self.oad.encode(w)
        encode_rsd(w, self.rsd)
        encode_rcsd(w, self.rcsd)


@dataclass(frozen=True, slots=True)
class GetNextRequest(_Request):
    """Asks for the block after `block`, the number of the last block received."""

    TAG = Tag.GET_REQUEST
    CHOICE = 5
    block: int
    time_tag: TimeTag | None = None

    def _body(self, w: Writer) -> None:
        w.uint(self.block, 2, "block number")


@dataclass(frozen=True, slots=True)
class SetRequest(_Request):
    TAG = Tag.SET_REQUEST
    CHOICE = 1
    oad: Oad
    data: Data
    time_tag: TimeTag | None = None

    def _body(self, w: Writer) -> None:
        self.oad.encode(w)
        encode_data(w, self.data)


@dataclass(frozen=True, slots=True)
class SetListRequest(_Request):
    TAG = Tag.SET_REQUEST
    CHOICE = 2
    items: tuple[tuple[Oad, Data], ...]
    time_tag: TimeTag | None = None

    def _body(self, w: Writer) -> None:
        w.length(len(self.items), "SET items")
        for oad, data in self.items:
            oad.encode(w)
            encode_data(w, data)


@dataclass(frozen=True, slots=True)
class ActionRequest(_Request):
    TAG = Tag.ACTION_REQUEST
    CHOICE = 1
    omd: Omd
    data: Data
    time_tag: TimeTag | None = None

    def _body(self, w: Writer) -> None:
        self.omd.encode(w)
        encode_data(w, self.data)


def decode_request(r: Reader, tag: int, choice: int) -> Request | None:
    """The client APDU of `tag`/`choice` after its first two bytes; None for one we do not model."""
    key = (tag, choice)
    p = r.u8("PIID")
    if key == (Tag.GET_REQUEST, 1):
        return GetRequest(p, Oad.decode(r), decode_time_tag(r))
    if key == (Tag.GET_REQUEST, 2):
        oads = tuple(Oad.decode(r) for _ in range(r.count("OADs", 4)))
        return GetListRequest(p, oads, decode_time_tag(r))
    if key == (Tag.GET_REQUEST, 3):
        oad, rsd, rcsd = Oad.decode(r), decode_rsd(r), decode_rcsd(r)
        return GetRecordRequest(p, oad, rsd, rcsd, decode_time_tag(r))
    if key == (Tag.GET_REQUEST, 5):
        return GetNextRequest(p, r.uint(2, "block number"), decode_time_tag(r))
    if key == (Tag.SET_REQUEST, 1):
        return SetRequest(p, Oad.decode(r), decode_data(r), decode_time_tag(r))
    if key == (Tag.SET_REQUEST, 2):
        n = r.count("SET items", 5)
        items = tuple((Oad.decode(r), decode_data(r)) for _ in range(n))
        return SetListRequest(p, items, decode_time_tag(r))
    if key == (Tag.ACTION_REQUEST, 1):
        return ActionRequest(p, Omd.decode(r), decode_data(r), decode_time_tag(r))
    return None


Request = (
    GetRequest
    | GetListRequest
    | GetRecordRequest
    | GetNextRequest
    | SetRequest
    | SetListRequest
    | ActionRequest
)
