"""DL/T 698.45 messages: any APDU from bytes (`parse_apdu`), the frames a master sends and a meter
answers, and the checks that a reply answers its request.

Layer: pure codec (protocols). Must not: do I/O, read clocks (a TimeTag's time is an argument) or know
what an object means (`objects`).

On RS-485 a plain GET needs neither LINK nor CONNECT (dlt698.md §7): requests go out with C `43`, the
meter answers `C3` with its own SA (also to a wildcard) and echoes CA and PIID. Plaintext + RN reads
come back as plaintext + the meter's MAC, which a gateway without ESAM cannot check: `Reply.mac` keeps
it and `Reply.mac_unverified` flags it. Ciphertext is relayed unchanged (`relay_request`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .apdu import (
    ActionRequest,
    GetListRequest,
    GetNextRequest,
    GetRecordRequest,
    GetRequest,
    Request,
    SetListRequest,
    SetRequest,
    Tag,
    TimeTag,
    decode_request,
    piid_sequence,
)
from .axdr import Csd, Data, Rcsd, Rsd
from .datatypes import DateTimeS, Oad, Omd
from .errors import ErrorResponse, MeterRefused, UnexpectedReply
from .frame import Address, Frame, control_byte
from .responses import (
    ActionResponse,
    ErrorApdu,
    GetListResponse,
    GetNextResponse,
    GetRecordResponse,
    GetResponse,
    Response,
    SecurityRequest,
    SecurityResponse,
    SetListResponse,
    SetResponse,
    Verify,
    decode_response,
    decode_security_request,
    decode_security_response,
)
from .wire import Reader

REQUEST_C: Final = control_byte(reply=False)  # 43
REPLY_C: Final = control_byte(reply=True)  # C3
FREEZE_TIME: Final = Oad(0x2021, 2)  # the freeze time column of 5002/5004/5006 records
RN_SIZE: Final = 16


@dataclass(frozen=True, slots=True)
class OtherApdu:
    """An APDU this codec does not model (LINK, CONNECT, REPORT, PROXY, GET-RecordList, …): kept raw."""

    tag: int
    body: bytes

    @property
    def piid(self) -> int | None:
        return None

    def encode(self) -> bytes:
        return bytes((self.tag,)) + self.body


Apdu = Request | Response | SecurityRequest | SecurityResponse | OtherApdu
_SERVICES: Final = (Tag.GET_REQUEST, Tag.SET_REQUEST, Tag.ACTION_REQUEST)
_REPLIES: Final = (Tag.GET_RESPONSE, Tag.SET_RESPONSE, Tag.ACTION_RESPONSE, Tag.ERROR_RESPONSE)


def parse_apdu(data: bytes, what: str = "APDU") -> Apdu:
    """Any APDU. Raises DecodeError (naming `what` and the offset) for a modelled APDU that does not
    fit; an unmodelled service comes back as OtherApdu."""
    r = Reader(data, what)
    tag = r.u8("APDU tag")
    apdu: Apdu | None
    if tag == Tag.SECURITY_REQUEST:
        apdu = decode_security_request(r)
    elif tag == Tag.SECURITY_RESPONSE:
        apdu = decode_security_response(r)
    elif tag in _SERVICES:
        apdu = decode_request(r, tag, r.u8("service choice"))
    elif tag in _REPLIES:
        apdu = decode_response(r, tag, r.u8("service choice"))
    else:
        apdu = None
    if apdu is None:
        return OtherApdu(tag, data[1:])
    r.end()
    return apdu


def unwrap(apdu: Apdu, what: str = "APDU") -> Apdu:
    """The plaintext APDU inside a SECURITY-Request/-Response; other APDUs (and ciphertext) as they are."""
    if isinstance(apdu, SecurityRequest | SecurityResponse) and not apdu.ciphered and apdu.apdu:
        inner = parse_apdu(apdu.apdu, f"{what} (secured plaintext)")
        if not isinstance(inner, SecurityRequest | SecurityResponse):
            return inner
    return apdu


# ---- frames a master sends ------------------------------------------------------------------------


def _address(address: Address | str) -> Address:
    return address if isinstance(address, Address) else Address(address)


def request_frame(address: Address | str, apdu: Apdu | bytes, *, ca: int = 0) -> Frame:
    raw = apdu if isinstance(apdu, bytes) else apdu.encode()
    return Frame(_address(address), REQUEST_C, raw, ca)


def get_request(
    address: Address | str,
    oads: Oad | Sequence[Oad],
    piid: int,
    *,
    time_tag: TimeTag | None = None,
    ca: int = 0,
) -> Frame:
    """GET-Request-Normal for one OAD, NormalList for several (keep lists short: no negotiated size)."""
    if isinstance(oads, Oad):
        return request_frame(address, GetRequest(piid, oads, time_tag), ca=ca)
    return request_frame(address, GetListRequest(piid, tuple(oads), time_tag), ca=ca)


def columns(*oads: Oad) -> Rcsd:
    return tuple(Csd(oad) for oad in oads)


def record_request(
    address: Address | str, oad: Oad, rsd: Rsd, rcsd: Rcsd, piid: int, *, ca: int = 0
) -> Frame:
    return request_frame(address, GetRecordRequest(piid, oad, rsd, rcsd), ca=ca)


def last_records_request(
    address: Address | str, oad: Oad, n: int, rcsd: Rcsd, piid: int, *, ca: int = 0
) -> Frame:
    """The n-th latest record of a freeze or event (selector 9): 50040200 with n = days back."""
    return record_request(address, oad, Rsd.last(n), rcsd, piid, ca=ca)


def time_range_request(
    address: Address | str,
    oad: Oad,
    start: DateTimeS,
    end: DateTimeS,
    *,
    rcsd: Rcsd,
    piid: int,
    key: Oad = FREEZE_TIME,
    ca: int = 0,
) -> Frame:
    """Records whose `key` column (freeze time 20210200 by default) lies in [start, end) (selector 2)."""
    return record_request(address, oad, Rsd.time_range(key, start, end), rcsd, piid, ca=ca)


def next_request(address: Address | str, block: int, piid: int, *, ca: int = 0) -> Frame:
    return request_frame(address, GetNextRequest(piid, block), ca=ca)


def set_request(address: Address | str, oad: Oad, data: Data, piid: int, *, ca: int = 0) -> Frame:
    return request_frame(address, SetRequest(piid, oad, data), ca=ca)


def action_request(address: Address | str, omd: Omd, data: Data, piid: int, *, ca: int = 0) -> Frame:
    return request_frame(address, ActionRequest(piid, omd, data), ca=ca)


def secured_request(address: Address | str, inner: Request, rn: bytes, *, ca: int = 0) -> Frame:
    """`inner` as plaintext + RN (the meter answers plaintext + its MAC). `rn`: 16 random bytes the
    caller draws (this module has no randomness of its own)."""
    return request_frame(address, SecurityRequest(inner.encode(), verify=Verify.RN, rn=rn), ca=ca)


def relay_request(address: Address | str, security_apdu: bytes, *, ca: int = 0) -> Frame:
    """A SECURITY-Request built by the master (ciphertext + SID_MAC), wrapped unchanged for the meter."""
    apdu = parse_apdu(security_apdu, "relayed APDU")
    if not isinstance(apdu, SecurityRequest):
        raise UnexpectedReply(f"relayed APDU is not a SECURITY-Request: {security_apdu[:8].hex(' ')}")
    return request_frame(address, security_apdu, ca=ca)


# ---- frames a meter (the simulator) sends --------------------------------------------------------


def reply_frame(request: Frame, own: Address | str, apdu: Apdu | bytes) -> Frame:
    """The meter's reply to `request`: C3, its own single address (also for a wildcard), CA echoed."""
    raw = apdu if isinstance(apdu, bytes) else apdu.encode()
    return Frame(_address(own), REPLY_C, raw, request.ca)


def answers(request: Frame, own: Address | str) -> bool:
    """Should a meter at `own` answer `request`? Single and wildcard frames for it; never broadcasts."""
    return not request.is_reply and request.address.matches(_address(own))


# ---- replies --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply APDU with its security wrapping removed: `apdu` is the plaintext (or, for ciphertext,
    the SecurityResponse itself), `mac` the meter's MAC, which we cannot verify without an ESAM."""

    address: Address
    apdu: Apdu
    security: SecurityResponse | None = None

    @property
    def mac(self) -> bytes | None:
        return None if self.security is None else self.security.mac

    @property
    def mac_unverified(self) -> bool:
        return self.mac is not None


def parse_reply(frame: Frame) -> Reply:
    apdu = parse_apdu(frame.data, f"{frame.address} reply")
    if isinstance(apdu, SecurityResponse):
        return Reply(frame.address, unwrap(apdu, f"{frame.address} reply"), apdu)
    return Reply(frame.address, apdu)


def mismatch(request: Apdu, reply: Apdu) -> str | None:
    """Why `reply` does not answer `request` (service, PIID, OAD/OMD), or None if it does. Both are
    plaintext (see `unwrap`); an ERROR-Response or a SecurityResponse with a DAR answers anything."""
    if isinstance(reply, ErrorApdu) or (isinstance(reply, SecurityResponse) and reply.dar is not None):
        return None
    if isinstance(request, SecurityRequest):
        return None  # ciphertext we cannot read: the frame-level match (SA, CA) is all we have
    if isinstance(request, OtherApdu) or isinstance(reply, OtherApdu):
        return (
            None
            if isinstance(request, OtherApdu) and isinstance(reply, OtherApdu)
            else _service(request, reply)
        )
    if not isinstance(request, Request) or not isinstance(reply, Response):
        return _service(request, reply)
    if type(reply) not in _ANSWERS.get(type(request), ()):
        return _service(request, reply)
    if piid_sequence(reply.piid) != piid_sequence(request.piid):
        return f"PIID {piid_sequence(reply.piid)}, expected {piid_sequence(request.piid)}"
    want, got = _targets(request), _targets(reply)
    if want and got and want != got:
        return f"objects {','.join(map(str, got))}, expected {','.join(map(str, want))}"
    return None


def _service(request: Apdu, reply: Apdu) -> str:
    return f"{type(reply).__name__} does not answer {type(request).__name__}"


# A GET answer longer than the meter's APDU size comes back as GET-Response-Next block 1 (dlt698.md
# §2/§7 "handle GET-Next"), so a GetNextResponse answers any GET.
_ANSWERS: Final[dict[type, tuple[type, ...]]] = {
    GetRequest: (GetResponse, GetNextResponse),
    GetListRequest: (GetListResponse, GetNextResponse),
    GetRecordRequest: (GetRecordResponse, GetNextResponse),
    GetNextRequest: (GetNextResponse,),
    SetRequest: (SetResponse,),
    SetListRequest: (SetListResponse,),
    ActionRequest: (ActionResponse,),
}


def _targets(apdu: Apdu) -> tuple[Oad | Omd, ...]:
    if isinstance(apdu, GetRequest | SetRequest | GetRecordRequest):
        return (apdu.oad,)
    if isinstance(apdu, GetResponse | GetRecordResponse):
        return (apdu.result.oad,)
    if isinstance(apdu, SetResponse):
        return (apdu.oad,)
    if isinstance(apdu, ActionRequest | ActionResponse):
        return (apdu.omd,)
    if isinstance(apdu, GetListRequest):
        return apdu.oads
    if isinstance(apdu, GetListResponse):
        return tuple(result.oad for result in apdu.results)
    return ()


def check_reply(request: Frame, reply: Frame) -> Reply:
    """The reply, unwrapped, once it is known to answer `request`; raises UnexpectedReply (another
    service, PIID or object), ErrorResponse (`EE`) or MeterRefused (a DAR for a single-object request or
    for the security request). Per-object DARs of a list stay in the results for the caller."""
    got = parse_reply(reply)
    sent = unwrap(parse_apdu(request.data, f"{request.address} request"))
    why = mismatch(sent, got.apdu)
    if why is not None:
        raise UnexpectedReply(f"{reply.address}: {why}: {reply.encode().hex(' ')}")
    raise_for_dar(got)
    return got


def raise_for_dar(reply: Reply) -> None:
    apdu, who = reply.apdu, reply.address.sa
    if isinstance(apdu, ErrorApdu):
        raise ErrorResponse(who, apdu.piid, apdu.kind)
    if isinstance(apdu, SecurityResponse) and apdu.dar is not None:
        raise MeterRefused(who, "SECURITY-Request", apdu.dar)
    if isinstance(apdu, GetResponse | GetRecordResponse) and not apdu.result.ok:
        raise MeterRefused(who, str(apdu.result.oad), apdu.result.dar)
    if isinstance(apdu, SetResponse) and apdu.dar:
        raise MeterRefused(who, str(apdu.oad), apdu.dar)
    if isinstance(apdu, ActionResponse) and apdu.dar:
        raise MeterRefused(who, str(apdu.omd), apdu.dar)
    if isinstance(apdu, GetNextResponse) and apdu.dar is not None:
        raise MeterRefused(who, f"block {apdu.block}", apdu.dar)
