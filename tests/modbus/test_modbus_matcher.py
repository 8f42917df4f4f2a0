"""RtuReplyMatcher: the gateway bus's reply recogniser. Complete replies, byte-at-a-time arrival,
leading noise, CRC errors, replies from the wrong unit, exceptions, truncation, bounded buffering."""

from __future__ import annotations

import pytest

from protocols.errors import ChecksumError, DecodeError, FrameError
from protocols.modbus import (
    ExceptionReply,
    ModbusException,
    ReadRequest,
    RegistersReply,
    RtuReplyMatcher,
    TruncatedFrame,
    WriteCoil,
    WriteReply,
    WrongUnit,
    build_rtu_reply,
    check_reply,
)

TASMOTA = bytes.fromhex("01 04 04 43 66 33 34 1B 38")  # 230.2 V from a DDSU666 (function 04)
READ = ReadRequest(4, 0, 2)


def feed_bytewise(matcher: RtuReplyMatcher, data: bytes):
    results = [matcher.feed(data[i : i + 1]) for i in range(len(data))]
    assert all(r is None for r in results[:-1])
    return results[-1]


def test_complete_reply_in_one_chunk_and_bytewise() -> None:
    reply = RtuReplyMatcher(1, 4, len(TASMOTA)).feed(TASMOTA)
    assert reply is not None and reply.reply == RegistersReply(4, (0x4366, 0x3334))
    assert feed_bytewise(RtuReplyMatcher.for_request(1, READ), TASMOTA).unit == 1


def test_leading_noise_is_skipped_and_counted() -> None:
    matcher = RtuReplyMatcher.for_request(1, READ)
    reply = matcher.feed(b"\x00\xff\x55" + TASMOTA)
    assert reply is not None and matcher.skipped == 3


def test_noise_that_looks_like_a_frame_start_does_not_hide_a_good_reply() -> None:
    # "05 03 FA": unit 5, function 3, byte count 250 -- a look-alike that would wait for 255 bytes
    matcher = RtuReplyMatcher.for_request(1, READ)
    assert matcher.feed(bytes.fromhex("05 03 FA") + TASMOTA) is not None


def test_bad_crc_raises_checksum_error() -> None:
    matcher = RtuReplyMatcher.for_request(1, READ)
    bad = TASMOTA[:-1] + b"\x39"
    assert all(matcher.feed(bad[i : i + 1]) is None for i in range(len(bad) - 1))
    with pytest.raises(ChecksumError):
        matcher.feed(bad[-1:])
    assert matcher.buffered == b""


def test_reply_from_another_unit_raises_wrong_unit_and_matching_continues() -> None:
    other = build_rtu_reply(2, RegistersReply(4, (1, 2)))
    matcher = RtuReplyMatcher.for_request(1, READ)
    with pytest.raises(WrongUnit) as info:
        matcher.feed(other + TASMOTA)
    assert (info.value.expected, info.value.got, info.value.frame) == (1, 2, other)
    assert matcher.feed(b"") is not None  # our own reply was kept


def test_reply_to_another_function_is_a_frame_error() -> None:
    with pytest.raises(FrameError, match="function 3"):
        RtuReplyMatcher.for_request(1, READ).feed(build_rtu_reply(1, RegistersReply(3, (1, 2))))


def test_exception_reply_is_returned_and_raises_named_error() -> None:
    matcher = RtuReplyMatcher.for_request(1, READ)
    reply = feed_bytewise(matcher, bytes.fromhex("01 84 02 C2 C1"))
    assert reply.reply == ExceptionReply(4, 2)
    with pytest.raises(ModbusException, match="ILLEGAL_DATA_ADDRESS"):
        check_reply(READ, reply.reply)
    busy = build_rtu_reply(1, ExceptionReply(4, 6))
    with pytest.raises(ModbusException) as info:
        check_reply(READ, RtuReplyMatcher.for_request(1, READ).feed(busy).reply)
    assert info.value.name == "SERVER_DEVICE_BUSY" and info.value.retryable


def test_wrong_length_for_the_request_is_reported() -> None:
    matcher = RtuReplyMatcher.for_request(1, ReadRequest(4, 0, 4))
    with pytest.raises(FrameError, match="expected 13"):
        matcher.feed(TASMOTA)


def test_write_echo() -> None:
    frame = bytes.fromhex("01 05 00 00 FF 00 8C 3A")
    reply = RtuReplyMatcher.for_request(1, WriteCoil(0, True)).feed(frame)
    assert reply is not None and reply.reply == WriteReply(5, 0, 0xFF00)
    with pytest.raises(DecodeError, match="echo"):
        check_reply(WriteCoil(0, False), reply.reply)


def test_truncated_reply_is_reported_on_finish() -> None:
    matcher = RtuReplyMatcher.for_request(1, READ)
    assert matcher.feed(TASMOTA[:6]) is None
    with pytest.raises(TruncatedFrame, match="6 bytes"):
        matcher.finish()
    silent = RtuReplyMatcher.for_request(1, READ)
    silent.finish()  # silence is not a frame error: the caller times out


def test_buffer_is_bounded() -> None:
    matcher = RtuReplyMatcher(1, 4, max_buffer=64)
    for _ in range(100):  # garbage that never starts a frame
        assert matcher.feed(b"\x00" * 50) is None
        assert len(matcher.buffered) <= 1
    with pytest.raises(FrameError, match="no valid reply"):
        for _ in range(10):  # a look-alike start that keeps waiting: unit 1, function 3, 250 bytes
            matcher.feed(bytes.fromhex("01 03 FA") + b"\x00" * 30)
    assert matcher.buffered == b""


def test_unsupported_function_cannot_be_matched() -> None:
    with pytest.raises(FrameError):
        RtuReplyMatcher(1, 0x2B)


def test_echo_of_the_request_is_dropped_once() -> None:
    write = WriteCoil(0, True)
    frame = bytes.fromhex("01 05 00 00 FF 00 8C 3A")  # request and reply are identical
    matcher = RtuReplyMatcher.for_request(1, write, echo=True)
    assert matcher.feed(frame) is None and matcher.echo_seen  # the echo, not the reply
    reply = feed_bytewise(matcher, frame)
    assert reply.reply == WriteReply(5, 0, 0xFF00)
    read = RtuReplyMatcher.for_request(1, READ, echo=True)
    assert read.feed(bytes.fromhex("01 04 00 00 00 02 71 CB") + TASMOTA) is not None


def test_expected_echo_that_does_not_come_is_not_waited_for() -> None:
    matcher = RtuReplyMatcher.for_request(1, READ, echo=True)
    assert feed_bytewise(matcher, TASMOTA) is not None and not matcher.echo_seen


def test_unexpected_echo_of_a_read_is_a_checksum_error_not_a_reply() -> None:
    # without echo=True the read request "01 04 00 00 00 02 71 CB" parses as a reply with byte count
    # 0 and a wrong CRC: reported, never taken for data
    with pytest.raises(ChecksumError):
        RtuReplyMatcher.for_request(1, READ).feed(bytes.fromhex("01 04 00 00 00 02 71 CB"))


def test_noise_mimicking_our_header_does_not_hide_the_reply_behind_it() -> None:
    # "01 04 01 04": our unit and function, byte count 1, bad CRC; the real reply follows in full
    assert RtuReplyMatcher.for_request(1, READ).feed(bytes.fromhex("01 04") + TASMOTA) is not None
