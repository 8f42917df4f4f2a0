"""Properties: build -> parse round trips for Data, APDUs and frames; random bytes never make the codec
raise anything but protocols errors; random streams never crash the splitter or matcher and any split
of a stream gives the same frames."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.dlt698 import (
    Data,
    Frame,
    FrameSplitter,
    ReplyMatcher,
    describe,
    get_request,
    parse_apdu,
    parse_frame,
    parse_reply,
    reply_frame,
    to_python,
)
from protocols.dlt698.datatypes import Oad
from protocols.errors import ProtocolError

from . import strategies as S
from .vectors import E1_RESPONSE, METER, VECTORS

EXAMPLES = settings(max_examples=200, deadline=None)
VALID = [v.raw for v in VECTORS]


@EXAMPLES
@given(S.data)
def test_data_round_trip(data: Data) -> None:
    assert Data.decode(data.encode()) == data
    json.dumps(to_python(data))


@EXAMPLES
@given(st.one_of(S.requests, S.responses))
def test_apdu_round_trip(apdu: object) -> None:
    raw = apdu.encode()  # type: ignore[attr-defined]
    assert parse_apdu(raw) == apdu


@EXAMPLES
@given(S.frames, st.integers(0, 4))
def test_frame_round_trip(frame: Frame, preamble: int) -> None:
    raw = frame.encode(preamble)
    assert parse_frame(raw) == frame


@EXAMPLES
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_protocol_errors(raw: bytes) -> None:
    for fn in (parse_frame, parse_apdu, describe, Data.decode):
        with contextlib.suppress(ProtocolError):
            result = fn(raw)
            if fn is describe:
                json.dumps(result)


@EXAMPLES
@given(st.sampled_from(VALID), st.integers(0, 200), st.integers(0, 255))
def test_mutated_valid_frames_raise_only_protocol_errors(raw: bytes, at: int, value: int) -> None:
    data = bytearray(raw)
    data[at % len(data)] = value
    with contextlib.suppress(ProtocolError):
        parse_reply(parse_frame(bytes(data)))
    with contextlib.suppress(ProtocolError):
        json.dumps(describe(bytes(data)))


streams = st.lists(st.one_of(st.sampled_from(VALID), st.binary(max_size=40)), max_size=8).map(b"".join)


@EXAMPLES
@given(streams, st.lists(st.integers(1, 50), min_size=1, max_size=6))
def test_any_split_gives_the_same_frames(stream: bytes, cuts: list[int]) -> None:
    whole = FrameSplitter().feed(stream)
    splitter = FrameSplitter()
    got, i, k = [], 0, 0
    while i < len(stream):
        n = cuts[k % len(cuts)]
        got += splitter.feed(stream[i : i + n])
        i, k = i + n, k + 1
    assert got == whole
    assert len(splitter.buffered) < 2 * 16385


@EXAMPLES
@given(st.binary(max_size=200).filter(lambda b: 0x68 not in b), st.integers(1, 9))
def test_matcher_finds_the_reply_behind_noise_in_any_chunking(noise: bytes, step: int) -> None:
    request = get_request(METER, Oad(0x0010, 2), 1)
    reply = reply_frame(request, METER, E1_RESPONSE)
    raw = noise + reply.encode(2)
    matcher = ReplyMatcher.for_request(request)
    got = [matcher.feed(raw[i : i + step]) for i in range(0, len(raw), step)]
    assert got[-1] == reply and all(g is None for g in got[:-1])
    assert matcher.skipped + matcher.preamble == len(noise) + 2


@EXAMPLES
@given(st.binary(max_size=400), st.integers(1, 30))
def test_random_streams_never_crash_the_matcher(stream: bytes, step: int) -> None:
    matcher = ReplyMatcher.for_request(get_request(METER, Oad(0x0010, 2), 1))
    for i in range(0, len(stream), step):
        with contextlib.suppress(ProtocolError):
            matcher.feed(stream[i : i + step])
    with contextlib.suppress(ProtocolError):
        matcher.finish()
