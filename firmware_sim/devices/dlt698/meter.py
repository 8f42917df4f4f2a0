"""Simulated DL/T 698.45 prepaid meters: `gridedge sim dlt698 --port pty|socket://H:P --meter ADDR ...`.

Layer: simulator device model. `Dlt698Meter` is pure logic given `now`: a request burst in (noise,
echoes, 645 frames and frames for other meters included), a reply frame out; firmware_sim.line does
pacing, echo and generic faults. Must not: do I/O, sleep or read the clock.

Behaviour per /work/shared/docs/dlt698.md (§7 "Simulator"):
- frames: C `43` requests answered `C3` with the meter's own single SA (also to a wildcard: that is how
  `scan` finds a lone meter by reading 40010200), CA and PIID echoed, the request's TimeTag echoed;
  broadcasts (AF `C0`) never answered (a broadcast time 4000 m127 is applied); other meters' frames,
  replies and LINK frames ignored and counted in `stats`; link fragments of a request reassembled and
  each first/middle one acknowledged;
- GET Normal / NormalList / Record (objects.py, records.py) and Next: an answer longer than the
  meter's APDU size goes out in GET-Next blocks (results, or record rows, per block), the client asks
  for the block after the last one it got; SET Normal/NormalList and ACTION Normal (commands.py);
- DARs for what it does not have or refuses, ERROR-Response 1 for an APDU it cannot parse and 2 for a
  service it does not offer (CONNECT, GET-RecordList, PROXY, ...), DAR 32 for a stale TimeTag;
- SECURITY-Request: plaintext answered in plaintext; with RN (or SID_MAC / RN_MAC) the answer carries a
  4-byte MAC. **The MAC is not ESAM cryptography**: it is HMAC-SHA256(key, RN + response APDU) cut to 4
  bytes, the key drawn from `--seed` (or `--mac-key`), so a test can recompute it (`fake_mac`).
  Ciphertext it cannot decrypt (it has no ESAM) is answered `90 02 DAR 28` (symmetric decryption
  error). `--secured` refuses SET/ACTION that are not ciphertext with DAR 20 (security mode mismatch).
Device faults (`fault NAME FAULT [N]` on stdin): silent, refuse (DAR 3 for every object), misoperate
(the relay ignores commands), impostor (the reply carries another meter's address).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import random
from collections import Counter
from collections.abc import Callable
from typing import Final

from protocols.dlt698 import (
    ActionRequest,
    ActionResponse,
    Address,
    AddressType,
    ErrorApdu,
    Fragment,
    FragmentType,
    Frame,
    Function,
    GetListRequest,
    GetListResponse,
    GetNextRequest,
    GetRecordRequest,
    GetRecordResponse,
    GetRequest,
    GetResponse,
    GetResult,
    Oad,
    OtherApdu,
    Reassembler,
    RecordResult,
    Request,
    Response,
    SecurityRequest,
    SecurityResponse,
    SetListRequest,
    SetListResponse,
    SetRequest,
    SetResponse,
    Tag,
    TimeTag,
    Verify,
    answers,
    control_byte,
    parse_apdu,
    parse_fragment,
    reply_frame,
    split_frames,
)
from protocols.errors import ProtocolError

from ...device import SimReply
from ...faults import take_fault
from ...meter_history import MeterHistory, local_timestamp
from ...prepaid import CostControl, PrepaidMeterPhysics
from .blocks import Blocks
from .commands import Commands
from .objects import DAR_DENIED, DAR_UNDEFINED, Reading, get
from .records import (
    MinuteFreezes,
    Record,
    daily_records,
    minute_records,
    power_down_records,
    record_result,
)

TURNAROUND_S: Final = (0.020, 0.100)  # no normative figure (dlt698.md §1): the 645 meter's
DEFAULT_APDU_SIZE: Final = 1024
DEFAULT_PREAMBLE: Final = 4  # FE FE FE FE before each frame, as 600888 and real meters send
DEVICE_FAULTS: Final = ("silent", "refuse", "misoperate", "impostor")
DAR_SECURITY_MODE: Final = 20
DAR_DECRYPT: Final = 28  # symmetric decryption error: without an ESAM no ciphertext can be read
DAR_TIME_TAG: Final = 32
ERROR_UNPARSABLE: Final = 1
ERROR_UNSUPPORTED: Final = 2
MAC_SIZE: Final = 4
_TI_SECONDS: Final = (1, 60, 3600, 86400, 31 * 86400, 366 * 86400)


def fake_mac(key: bytes, rn: bytes, apdu: bytes) -> bytes:
    """The simulator's stand-in for an ESAM MAC (NOT the ESAM algorithm): deterministic per key."""
    return hmac.new(key, rn + apdu, hashlib.sha256).digest()[:MAC_SIZE]


def mac_key_for(seed: int, address: str) -> bytes:
    return hashlib.sha256(f"gridedge-dlt698-sim-mac:{seed}:{address}".encode()).digest()


class Dlt698Meter:
    protocol = "dlt698"

    def __init__(
        self,
        address: str,
        *,
        seed: int = 0,
        start_time: float = 0.0,
        cost_control: CostControl = "local",
        apdu_size: int = DEFAULT_APDU_SIZE,
        preamble: int = DEFAULT_PREAMBLE,
        turnaround_s: tuple[float, float] = TURNAROUND_S,
        secured: bool = False,
        mac_key: bytes | None = None,
        first_block: int = 1,
    ) -> None:
        self.own = Address(address)
        self.address = self.own.sa
        self.name = self.address
        self.apdu_size = apdu_size
        self.preamble = preamble
        self.turnaround_s = turnaround_s
        self.secured = secured
        self.mac_key = mac_key if mac_key is not None else mac_key_for(seed, self.address)
        physics_seed = seed * 10**12 + int(self.address[-12:], 16) % 10**12
        self.physics = PrepaidMeterPhysics(physics_seed, start_time, cost_control)
        self.history = MeterHistory(self.physics, physics_seed, start_time)
        self.minute_freezes = MinuteFreezes(self.physics, self.history, start_time)
        self.alarm = False
        self.close_permitted = False
        self.commands = Commands(self)
        self.blocks = Blocks(apdu_size, first_block)
        self.supply_cut_at: float | None = None
        self.faults: dict[str, int | None] = {}
        self.stats: Counter[str] = Counter()
        self._reassembler = Reassembler()
        self._rng = random.Random(f"turnaround:{seed}:{self.address}")

    # ---- SimDevice -----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        self.commands.tick(now)
        self.physics.advance(now)
        self.history.observe(now)
        self.minute_freezes.observe(now)

    def respond(self, request: bytes, now: float) -> SimReply | None:
        reply: Frame | None = None
        for frame in split_frames(request):
            if frame.is_reply:
                continue  # another meter's reply, or an echo of one
            reply = self.handle_frame(frame, now) or reply
        if reply is None:
            return None
        if self.supply_cut_at is not None:  # no mains, no RS-485 transceiver: silence
            self.stats["no_supply"] += 1
            return None
        return SimReply(reply.encode(self.preamble), self._rng.uniform(*self.turnaround_s))

    # ---- faults, supply, the button -------------------------------------------------------------

    def inject(self, fault: str, count: int | None = None) -> None:
        """Apply this fault to the next `count` requests addressed to the meter (all, if None)."""
        if fault not in DEVICE_FAULTS:
            raise KeyError(f"unknown dlt698 device fault {fault!r} (known: {', '.join(DEVICE_FAULTS)})")
        if fault == "misoperate":
            self.physics.relay_stuck = True  # until cleared: a stuck contact is not per request
            return
        self.faults[fault] = count

    def clear(self, fault: str | None = None) -> None:
        if fault in (None, "misoperate"):
            self.physics.relay_stuck = False
        if fault is None:
            self.faults.clear()
        else:
            self.faults.pop(fault, None)

    def cut_supply(self, now: float) -> None:
        """Mains off at the meter (an outage): it stops answering until `restore_supply`."""
        if self.supply_cut_at is None:
            self.tick(now)
            self.supply_cut_at = now

    def restore_supply(self, now: float) -> None:
        """Mains back: the meter answers again and keeps a power-down event (3011)."""
        if self.supply_cut_at is None:
            return
        start, self.supply_cut_at = self.supply_cut_at, None
        self.history.record_outage(start, now)
        self.physics.power_down_count += 1

    def press_button(self, now: float) -> bool:
        """The customer presses the close button: closes the relay if 8000 m130 allowed it."""
        self.tick(now)
        return self.commands.press_button(now)

    def reading(self, now: float) -> Reading:
        self.tick(now)
        return Reading(self, now, dict(self.physics.values(now)))

    # ---- frames ---------------------------------------------------------------------------------

    def handle_frame(self, frame: Frame, now: float) -> Frame | None:
        """The reply to one request frame, or None (not for us, broadcast, silent)."""
        if frame.address.type == AddressType.BROADCAST:
            self._broadcast(frame, now)
            return None
        if not answers(frame, self.own):
            self.stats["ignored_other_address"] += 1
            return None
        if frame.function != Function.USER_DATA:
            self.stats["ignored_link"] += 1  # LINK is a terminal's login over TCP, not a meter's
            return None
        data: bytes | None = frame.data
        if frame.fragmented:
            data, ack = self._fragment(frame)
            if data is None:
                return ack
        fault = take_fault(self.faults)
        self.stats["requests"] += 1
        if fault == "silent":
            self.stats["silenced"] += 1
            return None
        answer = reply_frame(frame, self.own, self.apdu_reply(data or b"", now, refuse=fault == "refuse"))
        if fault == "impostor":
            self.stats["impostor"] += 1
            other = f"{(int(self.address, 16) + 1) % 16 ** len(self.address):0{len(self.address)}X}"
            return dataclasses.replace(answer, address=Address(other))
        return answer

    def _fragment(self, frame: Frame) -> tuple[bytes | None, Frame | None]:
        """(the reassembled APDU, None) after the last fragment, else (None, our acknowledgement)."""
        try:
            apdu = self._reassembler.add(frame)
        except ProtocolError:
            self.stats["fragments_dropped"] += 1
            return None, None
        if apdu is not None:
            return apdu, None
        ack = Fragment(parse_fragment(frame.data).sequence, FragmentType.ACK).encode()
        return None, Frame(self.own, control_byte(reply=True, fragment=True), ack, frame.ca)

    def _broadcast(self, frame: Frame, now: float) -> None:
        try:
            apdu = parse_apdu(frame.data, f"{self.own} broadcast")
        except ProtocolError:
            apdu = None
        if isinstance(apdu, ActionRequest) and (apdu.omd.oi, apdu.omd.method) == (0x4000, 127):
            dar = self.commands.action(apdu.omd, apdu.data, now)
            self.stats["time_syncs" if dar == 0 else "time_sync_rejected"] += 1
        else:
            self.stats["ignored_broadcast"] += 1

    # ---- APDUs ----------------------------------------------------------------------------------

    def apdu_reply(self, data: bytes, now: float, *, refuse: bool = False) -> bytes:
        """The response APDU to one request APDU."""
        try:
            apdu = parse_apdu(data, f"{self.own} request")
        except ProtocolError:
            self.stats["unparsable"] += 1
            return ErrorApdu(_piid_of(data), ERROR_UNPARSABLE).encode()
        if isinstance(apdu, SecurityRequest):
            return self._secured(apdu, now, refuse).encode()
        if isinstance(apdu, OtherApdu) and apdu.tag == Tag.RELEASE_REQUEST and apdu.body:
            # 600888's client releases its preset association on close: RELEASE-Response, result 0
            # success, no FollowReport, no TimeTag (dlt698.md §2: RELEASE-Request 3 / -Response 131)
            return bytes((Tag.RELEASE_RESPONSE, apdu.body[0], 0, 0, 0))
        if not isinstance(apdu, Request):
            self.stats["unsupported"] += 1
            return ErrorApdu(_piid_of(data), ERROR_UNSUPPORTED).encode()
        return self.service(apdu, now, refuse=refuse).encode()

    def _secured(self, request: SecurityRequest, now: float, refuse: bool) -> SecurityResponse:
        if request.ciphered:
            self.stats["ciphertext_refused"] += 1
            return SecurityResponse(dar=DAR_DECRYPT)
        try:
            inner = parse_apdu(request.apdu, f"{self.own} secured request")
        except ProtocolError:
            self.stats["unparsable"] += 1
            inner = None
        if not isinstance(inner, Request):
            kind = ERROR_UNPARSABLE if inner is None else ERROR_UNSUPPORTED
            return SecurityResponse(ErrorApdu(_piid_of(request.apdu), kind).encode())
        plain = self.service(inner, now, refuse=refuse, secured=True).encode()
        if request.verify == Verify.SID:
            return SecurityResponse(plain)
        self.stats["mac_replies"] += 1
        return SecurityResponse(plain, mac=fake_mac(self.mac_key, request.rn, plain))

    def service(self, req: Request, now: float, *, refuse: bool = False, secured: bool = False) -> Response:
        """The answer to one plaintext request (GET, SET, ACTION)."""
        tag = req.time_tag
        if not isinstance(req, GetNextRequest):
            self.blocks.cancel()  # any other request ends a block transfer (the client gave it up)
        dar = DAR_TIME_TAG if tag is not None and self._stale(tag, now) else DAR_DENIED if refuse else 0
        if isinstance(req, SetRequest | SetListRequest | ActionRequest) and self.secured and not dar:
            dar = DAR_SECURITY_MODE  # plaintext control on a meter that wants ciphertext
        if isinstance(req, GetNextRequest):
            return self.blocks.next(req, tag)
        if isinstance(req, SetRequest):
            return SetResponse(req.piid, req.oad, dar or self.commands.set(req.oad, req.data, now), None, tag)
        if isinstance(req, SetListRequest):
            results = tuple((oad, dar or self.commands.set(oad, d, now)) for oad, d in req.items)
            return SetListResponse(req.piid, results, None, tag)
        if isinstance(req, ActionRequest):
            self.tick(now)
            answer = dar or self.commands.action(req.omd, req.data, now)
            self.stats["actions" if answer == 0 else "actions_refused"] += 1
            return ActionResponse(req.piid, req.omd, answer, None, None, tag)
        return self._get(req, now, dar, tag)

    def _get(
        self, req: GetRequest | GetListRequest | GetRecordRequest, now: float, dar: int, tag: TimeTag | None
    ) -> Response:
        reading = self.reading(now)

        def one(oad: Oad) -> GetResult:
            return GetResult(oad, None, dar) if dar else get(reading, oad)

        if isinstance(req, GetRequest):
            return self.blocks.answer(GetResponse(req.piid, one(req.oad), None, tag))
        if isinstance(req, GetListRequest):
            return self.blocks.answer(GetListResponse(req.piid, tuple(map(one, req.oads)), None, tag))
        if dar or req.oad.oi not in RECORDS or req.oad.number != 2:
            result = RecordResult(req.oad, req.rcsd, None, dar or DAR_UNDEFINED)
        else:
            result = record_result(req.oad, req.rsd, req.rcsd, RECORDS[req.oad.oi](self))
        return self.blocks.answer(GetRecordResponse(req.piid, result, None, tag))

    def _stale(self, tag: TimeTag, now: float) -> bool:
        """A request whose TimeTag (send time + validity) has passed by the meter's clock."""
        sent = tag.sent.to_datetime()
        if sent is None or tag.valid.unit >= len(_TI_SECONDS):
            return True
        if tag.valid.value == 0:
            return False
        valid_s = tag.valid.value * _TI_SECONDS[tag.valid.unit]
        meter_now = local_timestamp(self.history.meter_now(now))
        return local_timestamp(sent) + valid_s < meter_now


RECORDS: Final[dict[int, Callable[[Dlt698Meter], list[Record]]]] = {
    0x5004: lambda m: daily_records(m.history),
    0x5002: lambda m: minute_records(m.minute_freezes),
    0x3011: lambda m: power_down_records(m.history, m.physics.power_down_count),
}


def _piid_of(data: bytes) -> int:
    """The PIID of a GET/SET/ACTION APDU we could not parse (its third byte), for the ERROR-Response."""
    if len(data) >= 3 and data[0] in (Tag.GET_REQUEST, Tag.SET_REQUEST, Tag.ACTION_REQUEST):
        return data[2] & 0xBF
    return data[1] & 0xBF if len(data) >= 2 and data[0] in (Tag.CONNECT_REQUEST, Tag.RELEASE_REQUEST) else 0
