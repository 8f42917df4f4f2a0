"""Codec fix found by the simulator: a meter answers a GET whose answer exceeds its APDU size with
GET-Response-Next block 1 (dlt698.md §2 `85 05 PIID last block ...`, §7 "handle GET-Next"), and the
reply checks (`mismatch`, `check_reply`, `ReplyMatcher`) refused it as "GetNextResponse does not answer
GetRecordRequest", so a gateway could never start a block transfer. Fails before the fix in
protocols/dlt698/messages.py (_ANSWERS)."""

from __future__ import annotations

import pytest

from protocols.dlt698 import (
    NULL,
    Address,
    DateTimeS,
    GetListRequest,
    GetNextResponse,
    GetRequest,
    GetResult,
    Oad,
    RecordResult,
    ReplyMatcher,
    SetRequest,
    UnexpectedReply,
    check_reply,
    columns,
    mismatch,
    reply_frame,
    request_frame,
    time_range_request,
)

METER = Address("123456789012")
DAILY = Oad(0x5004, 2)


def test_block_1_answers_a_record_read() -> None:
    cols = columns(Oad(0x2021, 2), Oad(0x0010, 2))
    request = time_range_request(
        METER, DAILY, DateTimeS(2025, 9, 1), DateTimeS(2025, 10, 1), rcsd=cols, piid=9
    )
    block = GetNextResponse(9, False, 1, records=(RecordResult(DAILY, cols, ()),))
    reply = reply_frame(request, METER, block)
    assert ReplyMatcher.for_request(request).feed(reply.encode(preamble=4)) == reply
    assert check_reply(request, reply).apdu == block


@pytest.mark.parametrize(
    "request_apdu", [GetRequest(9, Oad(0x0010, 2)), GetListRequest(9, (Oad(0x2000, 2),))]
)
def test_block_1_answers_normal_and_list_reads(request_apdu) -> None:
    block = GetNextResponse(9, False, 1, results=(GetResult(Oad(0x2000, 2), NULL),))
    assert mismatch(request_apdu, block) is None
    assert mismatch(request_apdu, GetNextResponse(10, False, 1, results=())) == "PIID 10, expected 9"


def test_a_block_still_does_not_answer_a_set() -> None:
    set_clock = SetRequest(9, Oad(0x4000, 2), NULL)
    request = request_frame(METER, set_clock)
    with pytest.raises(UnexpectedReply, match="GetNextResponse does not answer SetRequest"):
        check_reply(request, reply_frame(request, METER, GetNextResponse(9, True, 1, results=())))
