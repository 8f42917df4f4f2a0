"""The transactions of one DL/T 698.45 meter on its Bus: requests with their PIID, the reply matched
(SA, CA, service, PIID, objects) and checked (DARs raised), GET answers reassembled from GET-Next
blocks.

Layer: gateway driver helper. Must not: open the port (the Bus owns it), know the vocabulary, or
retry a SET / ACTION (the Bus retries only what timed out or was garbled; a DAR is an answer).

dlt698.md §2/§7: a meter whose answer exceeds its APDU size sends GET-Response-Next block 1; the
client asks `05 05 PIID block` with the number of the last block it got until the block marked last.
A NormalList comes back split between its results, a record read between its rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Final

from protocols.dlt698 import (
    Address,
    Frame,
    GetListResponse,
    GetNextResponse,
    GetRecordResponse,
    GetRequest,
    GetResponse,
    GetResult,
    MeterRefused,
    Oad,
    Rcsd,
    RecordResult,
    Reply,
    ReplyMatcher,
    Rsd,
    SecurityResponse,
    UnexpectedReply,
    check_reply,
    get_request,
    next_request,
    piid,
    record_request,
    secured_request,
)

from ...bus import Bus, Priority
from ...line import Timing

MAX_BLOCKS: Final = 64  # a transfer longer than this is a meter gone astray, not an answer


class Session:
    def __init__(
        self, bus: Bus, address: Address, *, ca: int, preamble: int, device: str, timing: Callable[[], Timing]
    ) -> None:
        self.bus = bus
        self.address = address
        self.ca = ca
        self.preamble = preamble
        self.device = device
        self._timing = timing
        self._sequence = 0
        self.blocks = 0  # GET-Next blocks asked for (beyond each first answer)

    def next_piid(self) -> int:
        self._sequence = (self._sequence + 1) % 64
        return piid(self._sequence)

    async def exchange(
        self, request: Frame, priority: Priority = Priority.POLL, *, once: bool = False
    ) -> Frame:
        """One request and the meter's reply frame as matched, unchecked (a relayed APDU's reply).
        `once`: never sent again when the reply is lost or garbled (a SET / ACTION may have run, and a
        relayed ciphertext twice may be a second recharge); reads are retried as configured."""
        timing = self._timing()
        reply: Frame = await self.bus.transact(
            request.encode(self.preamble),
            lambda: ReplyMatcher.for_request(request),
            dataclasses.replace(timing, retries=0) if once else timing,
            priority=priority,
            device=self.device,
        )
        return reply

    async def transact(
        self, request: Frame, priority: Priority = Priority.POLL, *, once: bool = False
    ) -> Reply:
        """The checked reply; raises BusError, MeterRefused, ErrorResponse, DecodeError."""
        return check_reply(request, await self.exchange(request, priority, once=once))

    async def get(self, oads: Sequence[Oad], priority: Priority = Priority.POLL) -> list[GetResult]:
        """GET-Normal for one object, NormalList for several; a DAR comes back in its result."""
        one = oads[0] if len(oads) == 1 else None
        request = get_request(self.address, one or oads, self.next_piid(), ca=self.ca)
        try:
            apdu = (await self.transact(request, priority)).apdu
        except MeterRefused as exc:
            if one is not None and exc.target == str(one):
                return [GetResult(one, None, exc.dar)]
            raise
        if isinstance(apdu, GetNextResponse):
            return [r for block in await self._blocks(apdu, priority) for r in block.results]
        if isinstance(apdu, GetListResponse):
            return list(apdu.results)
        assert isinstance(apdu, GetResponse)
        return [apdu.result]

    async def secured_get(
        self, oad: Oad, rn: bytes, priority: Priority = Priority.POLL
    ) -> tuple[GetResult, SecurityResponse | None]:
        """GET-Normal as plaintext + RN (dlt698.md §5): the result, and the meter's SECURITY-Response
        whose MAC covers its plaintext answer (None when the meter answered without one)."""
        request = secured_request(self.address, GetRequest(self.next_piid(), oad), rn, ca=self.ca)
        try:
            reply = await self.transact(request, priority)
        except MeterRefused as exc:
            if exc.target == str(oad):
                return GetResult(oad, None, exc.dar), None
            raise
        assert isinstance(reply.apdu, GetResponse)
        return reply.apdu.result, reply.security

    async def records(
        self, oad: Oad, rsd: Rsd, rcsd: Rcsd, priority: Priority = Priority.PROBE
    ) -> RecordResult:
        """GET-Record; raises MeterRefused for a DAR (no such records, selector refused)."""
        request = record_request(self.address, oad, rsd, rcsd, self.next_piid(), ca=self.ca)
        apdu = (await self.transact(request, priority)).apdu
        if isinstance(apdu, GetRecordResponse):
            return apdu.result
        assert isinstance(apdu, GetNextResponse)
        parts = [r for block in await self._blocks(apdu, priority) for r in block.records]
        if not parts:
            raise UnexpectedReply(f"{self.address}: GET-Next blocks of {oad} without records")
        rows = tuple(row for part in parts for row in part.rows or ())
        return RecordResult(parts[0].oad, parts[0].rcsd, rows)

    async def _blocks(self, first: GetNextResponse, priority: Priority) -> list[GetNextResponse]:
        """Every block of a transfer, asked for one by one (a DAR in a block raises MeterRefused)."""
        blocks = [first]
        while not blocks[-1].last:
            if len(blocks) >= MAX_BLOCKS:
                raise UnexpectedReply(f"{self.address}: more than {MAX_BLOCKS} GET-Next blocks")
            self.blocks += 1
            request = next_request(self.address, blocks[-1].block, self.next_piid(), ca=self.ca)
            apdu = (await self.transact(request, priority)).apdu
            assert isinstance(apdu, GetNextResponse)
            if apdu.block != blocks[-1].block + 1:
                raise UnexpectedReply(f"{self.address}: GET-Next block {apdu.block} after {blocks[-1].block}")
            blocks.append(apdu)
        return blocks
