"""ReplyMatcher (gateway bus) and FrameSplitter (simulator): byte-at-a-time arrival, noise, look-alike
FF 68, bad checksums, echoes, replies from other devices, truncation, bounds."""

from __future__ import annotations

import pytest

from protocols.errors import ChecksumError, FrameError
from protocols.hall import (
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

from .vectors import BY_ID

POLL = BY_ID["P1"].raw  # poll keypad 3
REPLY = BY_ID["P2"].raw  # keypad 3: SEQ 1 call next


def feed_bytewise(matcher: ReplyMatcher, data: bytes) -> Frame | None:
    results = [matcher.feed(data[i : i + 1]) for i in range(len(data))]
    assert all(r is None for r in results[:-1])
    return results[-1]


def test_reply_in_one_chunk_and_bytewise() -> None:
    req = parse_frame(POLL)
    assert ReplyMatcher.for_request(req).feed(REPLY) == parse_frame(REPLY)
    assert feed_bytewise(ReplyMatcher.for_request(req), REPLY) == parse_frame(REPLY)


def test_echo_and_noise_are_counted() -> None:
    m = ReplyMatcher(3, 0x10)
    assert m.feed(b"\x00\x55\xff" + POLL + b"\x16" + REPLY) == parse_frame(REPLY)
    assert (m.echoes, m.skipped) == (1, 4)


def test_error_reply_is_matched() -> None:
    m = ReplyMatcher(3, 0x07)
    assert m.feed(BY_ID["X1"].raw) == parse_frame(BY_ID["X1"].raw)


def test_bad_checksum_raises_naming_the_device() -> None:
    bad = bytearray(REPLY)
    bad[-2] ^= 0x01
    with pytest.raises(ChecksumError, match="hall device 3"):
        ReplyMatcher(3, 0x10).feed(bytes(bad))


def test_wrong_address_raises_and_feeding_continues() -> None:
    m = ReplyMatcher(3, 0x10)
    other = BY_ID["P5"].raw  # dispenser 1
    with pytest.raises(WrongAddress, match="reply from hall device 1, expected hall device 3") as exc:
        m.feed(other + REPLY[:4])
    assert (exc.value.expected, exc.value.got) == (3, 1)
    assert m.feed(REPLY[4:]) == parse_frame(REPLY)


def test_reply_to_another_function_raises() -> None:
    with pytest.raises(UnexpectedReply, match="hall device 3: reply to function 02"):
        ReplyMatcher(3, 0x10).feed(BY_ID["D2"].raw)


def test_finish_raises_on_truncated_frame() -> None:
    m = ReplyMatcher(3, 0x10)
    assert m.feed(REPLY[:-3]) is None
    with pytest.raises(TruncatedFrame, match="hall device 3: reply cut short after 8 bytes"):
        m.finish()
    ReplyMatcher(3, 0x10).finish()  # nothing buffered: quiet


def test_noise_look_alike_does_not_hide_the_reply() -> None:
    look_alike = bytes.fromhex("FF 68 40 40 68 03")  # waits for 71 bytes that never come
    assert ReplyMatcher(3, 0x10).feed(look_alike + REPLY) == parse_frame(REPLY)


def test_ff_68_16_inside_the_data_are_data() -> None:
    reply = build_frame(3, 0x90, bytes.fromhex("FF 68 16 68"))
    assert feed_bytewise(ReplyMatcher(3, 0x10), reply) == Frame(3, 0x90, bytes.fromhex("FF 68 16 68"))


def test_buffer_is_bounded() -> None:
    m = ReplyMatcher(3, 0x10, max_buffer=40)
    m.feed(bytes.fromhex("FF 68 40 40 68 03"))
    with pytest.raises(FrameError, match="hall device 3: no valid reply"):
        m.feed(b"\x00" * 40)


def test_broadcast_cannot_be_matched() -> None:
    with pytest.raises(FrameError, match=r"outside 01..FE"):
        ReplyMatcher(0, 0x08)


def test_splitter_resyncs_and_never_raises() -> None:
    bad = bytearray(BY_ID["D1"].raw)
    bad[-2] ^= 0xFF
    stream = b"\xff\x00" + POLL + bytes(bad) + b"\x68\x16" + REPLY + BY_ID["C1"].raw[:5]
    s = FrameSplitter()
    frames = [f for i in range(len(stream)) for f in s.feed(stream[i : i + 1])]
    assert frames == [parse_frame(POLL), parse_frame(REPLY)]
    assert s.bad_checksum == 1 and s.skipped == 2 + 13 + 2  # the bad frame counts as dropped bytes too
    assert s.buffered == BY_ID["C1"].raw[:5]
    s.reset()
    assert s.buffered == b"" and s.skipped == 17 + 5
    assert split_frames(BY_ID["C1"].raw + BY_ID["I1"].raw) == [
        parse_frame(BY_ID["C1"].raw),
        parse_frame(BY_ID["I1"].raw),
    ]


def test_splitter_gives_up_a_look_alike_past_the_bound() -> None:
    s = FrameSplitter(max_buffer=20)
    assert s.feed(bytes.fromhex("FF 68 40 40 68") + b"\x00" * 20) == []
    assert s.buffered == b""
