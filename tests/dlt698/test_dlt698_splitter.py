"""Stream splitting: the reply matcher (address, CA, PIID, OAD; echoes, noise, other meters, late
replies) and the frame splitter (noise, FE, DL/T 645 frames on the same line, bad FCS, bounded
buffer)."""

from __future__ import annotations

import pytest

from protocols import dlt645
from protocols.dlt698 import (
    Address,
    FrameSplitter,
    GetResponse,
    GetResult,
    ReplyMatcher,
    TruncatedFrame,
    UnexpectedReply,
    WrongAddress,
    control_byte,
    get_request,
    parse_frame,
    reply_frame,
    split_frames,
)
from protocols.dlt698.fragment import split_apdu
from protocols.dlt698.frame import Frame
from protocols.errors import ChecksumError, FrameError

from .vectors import E1_RESPONSE, IMPORT, METER, VECTORS

REQUEST = get_request(METER, IMPORT, 1)
REPLY = VECTORS[1].raw
DLT645 = dlt645.read_request("123456789012", 0x00010000).encode(2)


def test_matcher_skips_echo_noise_and_645_frames_byte_by_byte() -> None:
    stream = b"\x68\x01\x02" + DLT645 + b"\xfe\xfe" + REQUEST.encode(4) + REPLY
    matcher = ReplyMatcher.for_request(REQUEST)
    got = [matcher.feed(stream[i : i + 1]) for i in range(len(stream))]
    assert got[-1] == parse_frame(REPLY) and all(g is None for g in got[:-1])
    assert (matcher.echoes, matcher.foreign, matcher.preamble, matcher.skipped) == (1, 1, 8, 3)


def test_matcher_wildcard_takes_any_meter() -> None:
    request = get_request(Address.wildcard(), IMPORT, 1)
    reply = reply_frame(request, "000000000001", E1_RESPONSE)
    assert ReplyMatcher.for_request(request).feed(reply.encode()) == reply


def test_matcher_refuses_other_meter_other_client_and_late_reply() -> None:
    other = reply_frame(REQUEST, "123456789013", E1_RESPONSE)
    with pytest.raises(WrongAddress, match="meter 123456789013"):
        ReplyMatcher.for_request(REQUEST).feed(other.encode())
    other_client = reply_frame(get_request(METER, IMPORT, 1, ca=5), METER, E1_RESPONSE)
    with pytest.raises(WrongAddress, match="client 5"):
        ReplyMatcher.for_request(REQUEST).feed(other_client.encode())
    late = reply_frame(REQUEST, METER, GetResponse(63, E1_RESPONSE.result))
    matcher = ReplyMatcher.for_request(REQUEST)
    with pytest.raises(UnexpectedReply, match="PIID 63, expected 1"):
        matcher.feed(late.encode() + REPLY)
    assert matcher.feed(b"") == parse_frame(REPLY)  # the late reply was consumed; ours follows


def test_matcher_bad_fcs_then_truncation() -> None:
    bad = bytearray(REPLY)
    bad[-3] ^= 0xFF
    with pytest.raises(ChecksumError, match="meter 123456789012"):
        ReplyMatcher.for_request(REQUEST).feed(bytes(bad))
    matcher = ReplyMatcher.for_request(REQUEST)
    assert matcher.feed(REPLY[:30]) is None
    with pytest.raises(TruncatedFrame, match="cut short after 30 bytes"):
        matcher.finish()


def test_matcher_buffer_is_bounded() -> None:
    # a header with a valid HCS announcing 16 kB that never comes: given up after max_buffer
    head = bytearray(REPLY[:14])
    head[1:3] = (0x3FFF).to_bytes(2, "little")
    from protocols.dlt698.frame import crc16_x25

    head[12:14] = crc16_x25(head[1:12]).to_bytes(2, "little")
    matcher = ReplyMatcher.for_request(REQUEST, max_buffer=100)
    with pytest.raises(FrameError, match="no valid reply in"):
        matcher.feed(bytes(head) + bytes(100))


def test_a_fragment_is_matched_on_address_only() -> None:
    part = split_apdu(E1_RESPONSE.encode() * 3, 40)[0]
    fragment = Frame(METER, control_byte(reply=True, fragment=True), part.encode())
    assert ReplyMatcher.for_request(REQUEST).feed(fragment.encode()) == fragment


def test_splitter_all_frames_in_order_with_noise() -> None:
    frames = [v.raw for v in VECTORS]
    stream = b"\x00\x68\x16" + b"\xfe\xfe".join(frames) + DLT645 + b"\x68"
    splitter = FrameSplitter()
    got = [f for i in range(0, len(stream), 7) for f in splitter.feed(stream[i : i + 7])]
    assert got == [parse_frame(f) for f in frames]
    assert splitter.foreign == 1 and splitter.buffered == b"\x68"
    assert split_frames(stream) == got


def test_splitter_drops_bad_fcs_and_counts_it() -> None:
    bad = bytearray(REPLY)
    bad[20] ^= 1
    splitter = FrameSplitter()
    assert splitter.feed(bytes(bad) + REPLY) == [parse_frame(REPLY)]
    assert splitter.bad_checksum == 1


def test_result_of_the_reply() -> None:
    assert GetResult(IMPORT, None, 6).ok is False
