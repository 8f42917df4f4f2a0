"""DL/T 698.45 server APDUs (what a meter sends) and the SECURITY wrapping of both directions.

Layer: pure codec (protocols). Must not: know frames or addresses (`frame`, `messages`).

dlt698.md §2: GET-Response `85 01 PIID-ACD OAD (00 DAR | 01 Data)`, `85 02` a list of those,
`85 03 PIID-ACD OAD RCSD (00 DAR | 01 n rows)`, `85 05 PIID-ACD last block (00 DAR | 01 results |
02 records)`; SET-Response `86 01 PIID-ACD OAD DAR`; ACTION-Response `87 01 PIID-ACD OMD DAR
(00 | 01 Data)`; ERROR-Response `EE PIID type`. Each ends with FollowReport and TimeTag.
dlt698.md §5: SECURITY-Request `10 (00 plain | 01 cipher) octets` + verify (`00` SID_MAC, `01` RN,
`02` RN_MAC, `03` SID); SECURITY-Response `90 (00 plain | 01 cipher) octets | 02 DAR` + (`00` |
`01 00 MAC`). The security APDUs have no trailer of their own (their content has). Ciphertext is
carried as opaque bytes: only the utility's encryption machine can make or read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .apdu import (
    FollowReport,
    GetResult,
    RecordResult,
    Tag,
    TimeTag,
    decode_dar,
    decode_follow,
    decode_time_tag,
    encode_trailer,
)
from .axdr import Data, decode_data, encode_data
from .datatypes import Oad, Omd, Sid
from .errors import EncodeError
from .wire import Reader, Writer


@dataclass(frozen=True, slots=True)
class _Response:
    TAG: ClassVar[int]
    CHOICE: ClassVar[int]

    piid: int  # PIID-ACD

    def encode(self) -> bytes:
        w = Writer().u8(self.TAG)
        if self.CHOICE:
            w.u8(self.CHOICE)
        w.u8(self.piid, "PIID-ACD")
        self._body(w)
        encode_trailer(w, getattr(self, "follow", None), getattr(self, "time_tag", None))
        return w.getvalue()

    def _body(self, w: Writer) -> None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class GetResponse(_Response):
    TAG = Tag.GET_RESPONSE
    CHOICE = 1
    result: GetResult
    follow: FollowReport | None = None
    time_tag: TimeTag | None = None

    def _body(self, w: Writer) -> None:
        self.result.encode(w)


@dataclass(frozen=True, slots=True)
class GetListResponse(_Response):
    TAG = Tag.GET_RESPONSE
    CHOICE = 2
    results: tuple[GetResult, ...]
    follow: FollowReport | None = None
    time_tag: TimeTag | None = None

    def _body(self, w: Writer) -> None:
        w.length(len(self.results), "results")
        for result in self.results:
            result.encode(w)


@dataclass(frozen=True, slots=True)
class GetRecordResponse(_Response):
    TAG = Tag.GET_RESPONSE
    CHOICE = 3
    result: RecordResult
    follow: FollowReport | None = None
    time_tag: TimeTag | None = None

    def _body(self, w: Writer) -> None:
        self.result.encode(w)


@dataclass(frozen=True, slots=True)
class GetNextResponse(_Response):
    """One block of a long answer: `last` says it is the final one; the block holds a DAR (`dar`),
    normal results or record results (exactly one of the three is set)."""

    TAG = Tag.GET_RESPONSE
    CHOICE = 5
    last: bool
    block: int
    dar: int | None = None
    results: tuple[GetResult, ...] = ()
    records: tuple[RecordResult, ...] = ()
    follow: FollowReport | None = None
    time_tag: TimeTag | None = None

    def _body(self, w: Writer) -> None:
        w.u8(1 if self.last else 0).uint(self.block, 2, "block number")
        if self.dar is not None:
            w.u8(0).u8(self.dar, "DAR")
            return
        items: tuple[GetResult, ...] | tuple[RecordResult, ...] = self.records or self.results
        w.u8(2 if self.records else 1).length(len(items), "block items")
        for item in items:
            item.encode(w)


@dataclass(frozen=True, slots=True)
class SetResponse(_Response):
    TAG = Tag.SET_RESPONSE
    CHOICE = 1
    oad: Oad
    dar: int = 0
    follow: FollowReport | None = None
    time_tag: TimeTag | None = None

    def _body(self, w: Writer) -> None:
        self.oad.encode(w)
        w.u8(self.dar, "DAR")


@dataclass(frozen=True, slots=True)
class SetListResponse(_Response):
    TAG = Tag.SET_RESPONSE
    CHOICE = 2
    results: tuple[tuple[Oad, int], ...]
    follow: FollowReport | None = None
    time_tag: TimeTag | None = None

    def _body(self, w: Writer) -> None:
        w.length(len(self.results), "results")
        for oad, dar in self.results:
            oad.encode(w)
            w.u8(dar, "DAR")


@dataclass(frozen=True, slots=True)
class ActionResponse(_Response):
    TAG = Tag.ACTION_RESPONSE
    CHOICE = 1
    omd: Omd
    dar: int = 0
    data: Data | None = None
    follow: FollowReport | None = None
    time_tag: TimeTag | None = None

    def _body(self, w: Writer) -> None:
        self.omd.encode(w)
        w.u8(self.dar, "DAR")
        if self.data is None:
            w.u8(0)
        else:
            w.u8(1)
            encode_data(w, self.data)


@dataclass(frozen=True, slots=True)
class ErrorApdu(_Response):
    """ERROR-Response: `kind` 1 the APDU could not be parsed, 2 service unsupported, 255 other."""

    TAG = Tag.ERROR_RESPONSE
    CHOICE = 0
    kind: int
    follow: FollowReport | None = None
    time_tag: TimeTag | None = None

    def _body(self, w: Writer) -> None:
        w.u8(self.kind, "error type")


def decode_response(r: Reader, tag: int, choice: int) -> Response | None:
    """The server APDU of `tag`/`choice` (ERROR-Response: `choice` is its PIID-ACD) after its first two
    bytes; None for one we do not model."""
    if tag == Tag.ERROR_RESPONSE:
        return ErrorApdu(choice, r.u8("error type"), decode_follow(r), decode_time_tag(r))
    key = (tag, choice)
    p = r.u8("PIID-ACD")
    if key == (Tag.GET_RESPONSE, 1):
        return GetResponse(p, GetResult.decode(r), decode_follow(r), decode_time_tag(r))
    if key == (Tag.GET_RESPONSE, 2):
        results = tuple(GetResult.decode(r) for _ in range(r.count("results", 6)))
        return GetListResponse(p, results, decode_follow(r), decode_time_tag(r))
    if key == (Tag.GET_RESPONSE, 3):
        return GetRecordResponse(p, RecordResult.decode(r), decode_follow(r), decode_time_tag(r))
    if key == (Tag.GET_RESPONSE, 5):
        return _decode_next(r, p)
    if key == (Tag.SET_RESPONSE, 1):
        return SetResponse(p, Oad.decode(r), decode_dar(r), decode_follow(r), decode_time_tag(r))
    if key == (Tag.SET_RESPONSE, 2):
        n = r.count("results", 5)
        dars = tuple((Oad.decode(r), decode_dar(r)) for _ in range(n))
        return SetListResponse(p, dars, decode_follow(r), decode_time_tag(r))
    if key == (Tag.ACTION_RESPONSE, 1):
        omd, dar = Omd.decode(r), decode_dar(r)
        flag = r.u8("ACTION data flag")
        if flag not in (0, 1):
            raise r.error(f"{omd}: ACTION-Response data flag {flag:02X} (00 or 01)")
        data = decode_data(r) if flag else None
        return ActionResponse(p, omd, dar, data, decode_follow(r), decode_time_tag(r))
    return None


def _decode_next(r: Reader, p: int) -> GetNextResponse:
    last, block, choice = r.u8("last block") != 0, r.uint(2, "block number"), r.u8("block choice")
    if choice == 0:
        response = GetNextResponse(p, last, block, dar=decode_dar(r))
    elif choice == 1:
        results = tuple(GetResult.decode(r) for _ in range(r.count("block items", 6)))
        response = GetNextResponse(p, last, block, results=results)
    elif choice == 2:
        records = tuple(RecordResult.decode(r) for _ in range(r.count("block items", 6)))
        response = GetNextResponse(p, last, block, records=records)
    else:
        raise r.error(f"GET-Next block choice {choice} (0 DAR, 1 results, 2 records)")
    return GetNextResponse(
        p, last, block, response.dar, response.results, response.records, decode_follow(r), decode_time_tag(r)
    )


Response = (
    GetResponse
    | GetListResponse
    | GetRecordResponse
    | GetNextResponse
    | SetResponse
    | SetListResponse
    | ActionResponse
    | ErrorApdu
)


# ---- security -------------------------------------------------------------------------------------


class Verify:
    """SECURITY-Request verification choices."""

    SID_MAC = 0
    RN = 1
    RN_MAC = 2
    SID = 3


@dataclass(frozen=True, slots=True)
class SecurityRequest:
    """`apdu`: the plaintext client APDU, or the master's ciphertext (`ciphered`) passed on unchanged.
    `verify` (a `Verify` choice) with its `rn` (random number), `mac` and `sid`."""

    apdu: bytes
    ciphered: bool = False
    verify: int = Verify.RN
    rn: bytes = b""
    mac: bytes = b""
    sid: Sid | None = None

    def encode(self) -> bytes:
        w = Writer().u8(Tag.SECURITY_REQUEST).u8(1 if self.ciphered else 0).octets(self.apdu, "APDU")
        w.u8(self.verify, "verify choice")
        if self.verify in (Verify.SID_MAC, Verify.SID):
            if self.sid is None:
                raise EncodeError(f"SECURITY-Request verify {self.verify}: needs a SID")
            self.sid.encode(w)
            if self.verify == Verify.SID_MAC:
                w.octets(self.mac, "MAC")
        elif self.verify in (Verify.RN, Verify.RN_MAC):
            w.octets(self.rn, "RN")
            if self.verify == Verify.RN_MAC:
                w.octets(self.mac, "MAC")
        else:
            raise EncodeError(f"SECURITY-Request verify choice {self.verify} outside 0..3")
        return w.getvalue()


def decode_security_request(r: Reader) -> SecurityRequest:
    ciphered = r.u8("security data choice")
    if ciphered not in (0, 1):
        raise r.error(f"SECURITY-Request data choice {ciphered} (0 plain, 1 cipher)")
    apdu, verify = r.octets("APDU"), r.u8("verify choice")
    if verify in (Verify.SID_MAC, Verify.SID):
        sid = Sid.decode(r)
        mac = r.octets("MAC") if verify == Verify.SID_MAC else b""
        return SecurityRequest(apdu, bool(ciphered), verify, sid=sid, mac=mac)
    if verify in (Verify.RN, Verify.RN_MAC):
        rn = r.octets("RN")
        mac = r.octets("MAC") if verify == Verify.RN_MAC else b""
        return SecurityRequest(apdu, bool(ciphered), verify, rn=rn, mac=mac)
    raise r.error(f"SECURITY-Request verify choice {verify} outside 0..3")


@dataclass(frozen=True, slots=True)
class SecurityResponse:
    """`apdu` the plaintext server APDU or the ciphertext (`ciphered`), or `dar` when the meter refused
    the security request; `mac` the meter's MAC (None when absent). A gateway without an ESAM cannot
    verify the MAC: it keeps the data and flags it (dlt698.md §5)."""

    apdu: bytes = b""
    ciphered: bool = False
    dar: int | None = None
    mac: bytes | None = None

    def encode(self) -> bytes:
        w = Writer().u8(Tag.SECURITY_RESPONSE)
        if self.dar is not None:
            w.u8(2).u8(self.dar, "DAR")
        else:
            w.u8(1 if self.ciphered else 0).octets(self.apdu, "APDU")
        if self.mac is None:
            w.u8(0)
        else:
            w.u8(1).u8(0).octets(self.mac, "MAC")
        return w.getvalue()


def decode_security_response(r: Reader) -> SecurityResponse:
    choice = r.u8("security data choice")
    if choice == 2:
        dar: int | None = decode_dar(r)
        apdu, ciphered = b"", False
    elif choice in (0, 1):
        dar, apdu, ciphered = None, r.octets("APDU"), bool(choice)
    else:
        raise r.error(f"SECURITY-Response choice {choice} (0 plain, 1 cipher, 2 DAR)")
    flag = r.u8("MAC flag")
    if flag == 0:
        return SecurityResponse(apdu, ciphered, dar)
    if flag != 1:
        raise r.error(f"SECURITY-Response MAC flag {flag:02X} (00 or 01)")
    kind = r.u8("MAC choice")
    if kind != 0:
        raise r.error(f"SECURITY-Response verify choice {kind} (0 MAC)")
    return SecurityResponse(apdu, ciphered, dar, r.octets("MAC"))
