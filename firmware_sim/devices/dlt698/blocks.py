"""GET-Next: a GET answer longer than the meter's APDU size, sent in application blocks.

Layer: simulator device model. Pure state of one transfer. Must not: do I/O or know frames.

dlt698.md §2/§7: the meter answers the request with GET-Response-Next's first block (`85 05 PIID last block
(01 results | 02 records)`), the client asks `05 05 PIID block` with the number of the last block it
got, and the meter sends the one after it, `last` set on the final one. A NormalList is split between
its results, a record read between its rows (every block repeats the OAD and columns). A request for
the block already sent again (the reply was lost) is answered again; a block number outside the
transfer gets DAR 14 (block number invalid), a GET-Next with no transfer DAR 11 (not started), and
any other request ends the transfer. A single result that alone exceeds the size is sent whole
(nothing smaller exists to send; the link layer's 16 kB frame still holds it).
"""

from __future__ import annotations

import dataclasses
from typing import Final

from protocols.dlt698 import (
    Data,
    GetListResponse,
    GetNextRequest,
    GetNextResponse,
    GetRecordResponse,
    GetResponse,
    GetResult,
    RecordResult,
    Response,
    TimeTag,
)

DAR_NOT_STARTED: Final = 11
DAR_BLOCK_INVALID: Final = 14
MIN_APDU_SIZE: Final = 64
_BLOCK_OVERHEAD: Final = 12  # 85 05 PIID last block(2) choice n ... FollowReport TimeTag (+ its 10)


class Blocks:
    """One GET-Next transfer. `first_block`: the number of the first block, 1 by default as icprog's
    terminal numbers them (lib698/ObjectGet.c `next_info.frameNo = 1`, a code base run against the State
    Grid conformance tests); 600888's library counts from 0 and accepts nothing else (its docs,
    protocol/get.md "只接受从零开始的连续块"), so 0 is there to talk to it (tests/dlt698_sim interop)."""

    def __init__(self, apdu_size: int, first_block: int = 1) -> None:
        self.apdu_size = max(apdu_size, MIN_APDU_SIZE)
        self.first_block = first_block
        self._blocks: list[tuple[GetResult, ...] | tuple[RecordResult, ...]] = []
        self._sent = -1  # index of the last block sent
        self.transfers = 0

    def cancel(self) -> None:
        self._blocks, self._sent = [], -1

    def answer(self, response: GetResponse | GetListResponse | GetRecordResponse) -> Response:
        """`response` itself if it fits the APDU size, else the first block of a GET-Next transfer."""
        if len(response.encode()) <= self.apdu_size or isinstance(response, GetResponse):
            return response
        room = self.apdu_size - _BLOCK_OVERHEAD
        if isinstance(response, GetListResponse):
            self._blocks = list(_pack(list(response.results), room))
        else:
            self._blocks = [(r,) for r in _record_pieces(response.result, room)]
        if len(self._blocks) < 2:  # one indivisible piece: nothing smaller exists to send
            self.cancel()
            return response
        self.transfers += 1
        return self._send(response.piid, 0, response.time_tag)

    def next(self, request: GetNextRequest, tag: TimeTag | None) -> GetNextResponse:
        if not self._blocks:
            return GetNextResponse(request.piid, True, request.block, dar=DAR_NOT_STARTED, time_tag=tag)
        got = request.block - self.first_block  # index of the last block the client received
        if not 0 <= got <= self._sent or got + 1 >= len(self._blocks):
            return GetNextResponse(request.piid, True, request.block, dar=DAR_BLOCK_INVALID, time_tag=tag)
        return self._send(request.piid, got + 1, tag)

    def _send(self, piid: int, index: int, tag: TimeTag | None) -> GetNextResponse:
        items = self._blocks[index]
        last = index == len(self._blocks) - 1
        number = self.first_block + index
        self._sent = max(self._sent, index)
        if last:
            self.cancel()
        if items and isinstance(items[0], RecordResult):
            records = tuple(r for r in items if isinstance(r, RecordResult))
            return GetNextResponse(piid, last, number, records=records, time_tag=tag)
        results = tuple(r for r in items if isinstance(r, GetResult))
        return GetNextResponse(piid, last, number, results=results, time_tag=tag)


def _size(item: GetResult | RecordResult) -> int:
    if isinstance(item, GetResult):
        return len(GetNextResponse(0, False, 1, results=(item,)).encode())
    return len(GetNextResponse(0, False, 1, records=(item,)).encode())


def _pack(results: list[GetResult], room: int) -> list[tuple[GetResult, ...]]:
    blocks: list[tuple[GetResult, ...]] = []
    current: list[GetResult] = []
    used = 0
    for result in results:
        size = _size(result) - _BLOCK_OVERHEAD
        if current and used + size > room:
            blocks.append(tuple(current))
            current, used = [], 0
        current.append(result)
        used += size
    return [*blocks, tuple(current)] if current else blocks


def _record_pieces(result: RecordResult, room: int) -> list[RecordResult]:
    """The record result cut between rows so that each piece fits `room` bytes."""
    if not result.rows:
        return [result]
    base = _size(dataclasses.replace(result, rows=()))
    pieces: list[RecordResult] = []
    rows: list[tuple[Data, ...]] = []
    used = base
    for row in result.rows:
        size = sum(len(cell.encode()) for cell in row)
        if rows and used + size > room:
            pieces.append(dataclasses.replace(result, rows=tuple(rows)))
            rows, used = [], base
        rows.append(row)
        used += size
    pieces.append(dataclasses.replace(result, rows=tuple(rows)))
    return pieces
