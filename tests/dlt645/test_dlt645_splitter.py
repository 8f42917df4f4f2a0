"""ReplyMatcher (gateway bus) and FrameSplitter (simulator): byte-at-a-time arrival, FE preambles,
line noise, look-alike 68s, bad checksums, echoes, replies from other meters, truncation, bounds."""

from __future__ import annotations

import pytest

from protocols.dlt645 import (
    Frame,
    FrameSplitter,
    ReplyMatcher,
    TruncatedFrame,
    UnexpectedReply,
    WrongAddress,
    build_frame,
    parse_frame,
    split_frames,
)
from protocols.errors import ChecksumError, FrameError

from .vectors import BY_ID

E1 = BY_ID["E1"].raw  # read 00010000 from 123456789012
E2 = BY_ID["E2"].raw  # its reply, 123456.78 kWh
REQ = parse_frame(E1)


def feed_bytewise(matcher: ReplyMatcher, data: bytes) -> Frame | None:
    results = [matcher.feed(data[i : i + 1]) for i in range(len(data))]
    assert all(r is None for r in results[:-1])
    return results[-1]


def test_reply_in_one_chunk_and_bytewise() -> None:
    assert ReplyMatcher.for_request(REQ).feed(E2) == parse_frame(E2)
    assert feed_bytewise(ReplyMatcher.for_request(REQ), E2) == parse_frame(E2)


@pytest.mark.parametrize("vid", ["B4", "D2", "D6", "L2", "G2", "F3"])
def test_golden_replies_with_their_preambles(vid: str) -> None:
    v = BY_ID[vid]
    matcher = ReplyMatcher(v.address, v.control)
    assert feed_bytewise(matcher, v.raw) == parse_frame(v.raw)
    assert (matcher.preamble, matcher.skipped) == (v.preamble, 0)


def test_preamble_and_noise_are_counted_apart() -> None:
    matcher = ReplyMatcher.for_request(REQ)
    assert matcher.feed(b"\x00\x55" + b"\xfe" * 4 + E2) is not None
    assert (matcher.skipped, matcher.preamble) == (2, 4)


def test_fe_and_16_inside_the_frame_are_data() -> None:
    data = bytes.fromhex("00 00 01 00") + bytes([0xCB, 0xE3, 0x35, 0x16])  # wire: FE 16 68 49
    reply = build_frame("123456789012", 0x91, data, preamble=3)
    assert feed_bytewise(ReplyMatcher.for_request(REQ), reply) == Frame("123456789012", 0x91, data)


def test_a_noise_68_does_not_hide_the_reply() -> None:
    # a 68 with another 68 seven bytes on and a huge L: a look-alike waiting for 255 bytes
    lookalike = bytes.fromhex("68 00 00 00 00 00 00 68 91 FF")
    matcher = ReplyMatcher.for_request(REQ)
    assert matcher.feed(lookalike + E2) == parse_frame(E2)
    assert matcher.skipped == len(lookalike)
    assert matcher.feed(bytes.fromhex("68 68 68") + E2) == parse_frame(E2)


def test_bad_checksum_raises_and_consumes_the_frame() -> None:
    bad = E2[:-2] + bytes([(E2[-2] + 1) & 0xFF]) + E2[-1:]
    matcher = ReplyMatcher.for_request(REQ)
    assert all(matcher.feed(bad[i : i + 1]) is None for i in range(len(bad) - 1))
    with pytest.raises(ChecksumError, match="meter 123456789012: reply with bad CS"):
        matcher.feed(bad[-1:])
    assert matcher.buffered == b""
    assert matcher.feed(E2) is not None  # matching can continue (a retry's reply)


def test_echo_of_the_request_is_dropped_and_counted() -> None:
    matcher = ReplyMatcher.for_request(REQ)
    assert matcher.feed(b"\xfe" * 4 + E1) is None
    assert matcher.echoes == 1 and matcher.buffered == b""
    assert matcher.feed(E2) == parse_frame(E2)


def test_reply_from_another_meter_raises_wrong_address_and_matching_continues() -> None:
    other = build_frame("123456789013", 0x91, bytes.fromhex("00 00 01 00 00 00 00 00"))
    matcher = ReplyMatcher.for_request(REQ)
    with pytest.raises(
        WrongAddress, match="reply from meter 123456789013, expected meter 123456789012"
    ) as info:
        matcher.feed(other + E2)
    assert (info.value.expected, info.value.got, info.value.frame) == ("123456789012", "123456789013", other)
    assert matcher.feed(b"") == parse_frame(E2)


def test_wildcard_request_accepts_the_real_address() -> None:
    matcher = ReplyMatcher("AAAAAAAAAAAA", 0x01)
    assert matcher.feed(BY_ID["L2"].raw).address == "000014359743"
    assert ReplyMatcher("AAAAAAAA9743", 0x01).feed(BY_ID["L2"].raw) is not None
    with pytest.raises(WrongAddress):
        ReplyMatcher("AAAAAAAA9744", 0x01).feed(BY_ID["L2"].raw)


def test_reply_to_another_function_is_unexpected() -> None:
    with pytest.raises(UnexpectedReply, match="meter 123456789012: reply to function 0x13"):
        ReplyMatcher.for_request(REQ).feed(build_frame("123456789012", 0x93, bytes(6)))


def test_abnormal_and_follow_up_replies_are_returned() -> None:
    assert ReplyMatcher.for_request(REQ).feed(BY_ID["F3"].raw).abnormal
    more = build_frame("123456789012", 0xB1, bytes(8))
    assert ReplyMatcher.for_request(REQ).feed(more).follow_up


def test_truncated_reply_is_reported_on_finish() -> None:
    matcher = ReplyMatcher.for_request(REQ)
    assert matcher.feed(b"\xfe\xfe" + E2[:-3]) is None
    with pytest.raises(TruncatedFrame, match=r"meter 123456789012: reply cut short after 17 bytes"):
        matcher.finish()
    matcher.finish()  # nothing left
    quiet = ReplyMatcher.for_request(REQ)
    quiet.feed(b"\xfe\x00")
    quiet.finish()


def test_buffer_is_bounded() -> None:
    matcher = ReplyMatcher.for_request(REQ, max_buffer=64)
    # a look-alike needing 267 bytes, then noise without another 68
    with pytest.raises(FrameError, match="no valid reply in"):
        matcher.feed(bytes.fromhex("68 00 00 00 00 00 00 68 91 FF") + b"\x00" * 60)
    assert matcher.buffered == b""
    noise = ReplyMatcher.for_request(REQ, max_buffer=64)
    assert noise.feed(b"\x01" * 1000) is None  # noise without any 68 is never kept
    assert noise.buffered == b"" and noise.skipped == 1000


def test_splitter_finds_every_frame_in_a_stream() -> None:
    stream = b"\x00" + BY_ID["B3"].raw + b"\x13\x37" + E1 + BY_ID["H2"].raw + E2[:7]
    splitter = FrameSplitter()
    frames = [f for i in range(len(stream)) for f in splitter.feed(stream[i : i + 1])]
    assert frames == [parse_frame(BY_ID["B3"].raw), REQ, parse_frame(BY_ID["H2"].raw)]
    assert (splitter.skipped, splitter.preamble, splitter.buffered) == (3, 4, E2[:7])
    assert splitter.feed(E2[7:]) == [parse_frame(E2)]
    splitter.feed(E2[:5])
    splitter.reset()
    assert splitter.buffered == b"" and splitter.skipped == 8


def test_splitter_drops_and_counts_bad_checksums() -> None:
    bad = E1[:-2] + b"\x00" + E1[-1:]
    splitter = FrameSplitter()
    assert splitter.feed(bad + E2) == [parse_frame(E2)]
    assert splitter.bad_checksum == 1
    assert split_frames(BY_ID["L1"].raw + BY_ID["N1"].raw) == [
        parse_frame(BY_ID["L1"].raw),
        parse_frame(BY_ID["N1"].raw),
    ]


def test_splitter_buffer_is_bounded() -> None:
    splitter = FrameSplitter(max_buffer=32)
    assert splitter.feed(bytes.fromhex("68 00 00 00 00 00 00 68 11 FF") + b"\x00" * 40 + E1) == [REQ]
    assert len(splitter.buffered) == 0
