"""Property tests: arbitrary bytes never make the Modbus codec raise anything but protocols errors,
and encode/decode/build/parse round-trip for arbitrary valid inputs."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from protocols.modbus import (
    MbapSplitter,
    Point,
    ReadRequest,
    RtuReplyMatcher,
    Table,
    WriteRegisters,
    build_rtu_request,
    decode_point,
    describe,
    encode_point,
    find_request_frame,
    parse_request,
    parse_rtu_reply,
    parse_rtu_request,
)

EXAMPLES = settings(max_examples=150, deadline=None)


@EXAMPLES
@given(
    st.lists(st.binary(max_size=40), max_size=12),
    st.integers(0, 255),
    st.sampled_from([1, 2, 3, 4, 5, 6, 15, 16]),
)
def test_matcher_raises_only_protocol_errors(chunks: list[bytes], unit: int, function: int) -> None:
    matcher = RtuReplyMatcher(unit, function, max_buffer=128)
    for chunk in chunks:
        with contextlib.suppress(ProtocolError):
            matcher.feed(chunk)
        assert len(matcher.buffered) <= 128 + 40
    with contextlib.suppress(ProtocolError):
        matcher.finish()


@EXAMPLES
@given(st.binary(max_size=300))
def test_describe_raises_only_protocol_errors_and_is_json(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        json.dumps(describe(data))


@EXAMPLES
@given(st.binary(max_size=300))
def test_parsers_raise_only_protocol_errors(data: bytes) -> None:
    for parse in (parse_rtu_request, parse_rtu_reply, parse_request, MbapSplitter().feed):
        with contextlib.suppress(ProtocolError):
            parse(data)
    find_request_frame(data)


@EXAMPLES
@given(
    st.integers(0, 247),
    st.sampled_from([1, 2, 3, 4]),
    st.integers(0, 0xFFFF),
    st.integers(1, 125),
    st.binary(max_size=6),
)
def test_request_frames_are_found_behind_noise(unit, function, address, count, noise) -> None:
    count = min(count, 0x10000 - address)
    frame = build_rtu_request(unit, ReadRequest(function, address, count))
    found = find_request_frame(noise + frame)
    assert found is not None
    assert parse_rtu_request(found[1]).request == ReadRequest(function, address, count)


@EXAMPLES
@given(st.integers(0, 0xFFF0), st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=123))
def test_write_registers_round_trip(address: int, values: list[int]) -> None:
    frame = build_rtu_request(1, WriteRegisters(address, tuple(values[: 0x10000 - address])))
    assert parse_rtu_request(frame).request.values == tuple(values[: 0x10000 - address])


@EXAMPLES
@given(
    st.sampled_from(["u16", "s16", "u32", "s32", "u64", "s64", "bcd16", "bcd32"]),
    st.sampled_from(["big", "little"]),
    st.sampled_from(["big", "little"]),
    st.integers(-(2**63), 2**64 - 1),
)
def test_integer_points_round_trip(type_: str, word_order: str, byte_order: str, raw: int) -> None:
    point = Point("status_word_1", Table.HOLDING, 0, type_, word_order=word_order, byte_order=byte_order)
    try:
        words = encode_point(point, raw)
    except ProtocolError:
        return  # out of the type's range
    assert all(0 <= w <= 0xFFFF for w in words) and len(words) == point.size
    assert decode_point(point, words) == raw
