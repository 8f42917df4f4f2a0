"""Property tests: build -> parse and encode -> decode round-trip for arbitrary valid inputs, and
arbitrary bytes never make the DL/T 645 codec raise anything but protocols errors."""

from __future__ import annotations

import contextlib
import datetime as dt
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.dlt645 import (
    CATALOGUE,
    Bcd,
    Frame,
    FrameSplitter,
    Item,
    ReplyMatcher,
    build_frame,
    decode_values,
    describe,
    encode_values,
    parse_frame,
    parse_request,
)
from protocols.dlt645.formats import Digits, Record, Stamp, Word, decode, encode
from protocols.errors import ProtocolError

EXAMPLES = settings(max_examples=200, deadline=None)

addresses = st.lists(
    st.one_of(st.integers(0, 99).map(lambda n: f"{n:02d}"), st.just("AA")), min_size=6, max_size=6
).map("".join)
frames = st.builds(Frame, addresses, st.integers(0, 255), st.binary(max_size=200))


@EXAMPLES
@given(frames, st.integers(0, 4))
def test_build_parse_round_trip(frame: Frame, preamble: int) -> None:
    raw = frame.encode(preamble)
    assert parse_frame(raw) == frame
    assert len(raw) == preamble + 12 + len(frame.data)


@EXAMPLES
@given(frames, st.binary(max_size=30).filter(lambda b: 0x68 not in b), st.integers(1, 7))
def test_matcher_finds_a_reply_behind_noise_in_any_chunking(frame: Frame, noise: bytes, step: int) -> None:
    reply = Frame(frame.address.replace("AA", "00"), frame.control | 0x80, frame.data)
    raw = noise + reply.encode(2)
    matcher = ReplyMatcher(reply.address, reply.function)
    got = [matcher.feed(raw[i : i + step]) for i in range(0, len(raw), step)]
    assert got[-1] == reply and all(g is None for g in got[:-1])
    assert matcher.skipped + matcher.preamble == len(noise) + 2
    splitter = FrameSplitter()
    assert [f for i in range(0, len(raw), step) for f in splitter.feed(raw[i : i + step])] == [reply]


def _value_for(fmt: Bcd | Digits | Stamp | Word) -> st.SearchStrategy[object]:
    if isinstance(fmt, Word):
        return st.integers(0, (1 << 8 * fmt.size) - 1)
    if isinstance(fmt, Digits):
        return st.text("0123456789", min_size=2 * fmt.size, max_size=2 * fmt.size)
    if isinstance(fmt, Stamp):
        moments = st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2099, 12, 31), allow_imaginary=True)
        if fmt.layout == "hhmmss":
            return st.times().map(lambda t: t.replace(microsecond=0))
        if "hh" not in fmt.layout:
            return st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31))
        seconds = fmt.layout.endswith("ss")
        return moments.map(lambda d: d.replace(second=d.second if seconds else 0, microsecond=0))
    limit = fmt.limit
    numbers = st.integers(-limit if fmt.signed else 0, limit)
    return numbers if fmt.integer else numbers.map(lambda n: n / 10**fmt.decimals)


def _values_for(item: Item) -> st.SearchStrategy[dict[str, object]]:
    parts = list(item.parts) if item.is_block else [(item.name, item.fmt)]
    if item.tariffs is not None:
        parts += [(item.tariffs.format(n=n), item.fmt) for n in range(1, 5)]

    def one(fmt: object) -> st.SearchStrategy[object]:
        if isinstance(fmt, Record):
            return st.fixed_dictionaries({name: _value_for(f) for name, f in fmt.fields})
        return _value_for(fmt)  # type: ignore[arg-type]

    return st.fixed_dictionaries({name: one(fmt) for name, fmt in parts})


ITEMS = [item for items in CATALOGUE.values() for item in items.values()]


@EXAMPLES
@given(st.sampled_from(ITEMS).flatmap(lambda item: st.tuples(st.just(item), _values_for(item))))
def test_item_value_round_trip(case: tuple[Item, dict[str, object]]) -> None:
    item, values = case
    raw = encode_values(item, values)  # type: ignore[arg-type]
    assert decode_values(item, raw) == values
    assert encode_values(item, decode_values(item, raw)) == raw


@EXAMPLES
@given(st.builds(Bcd, st.integers(1, 4), st.integers(0, 4), st.booleans()), st.data())
def test_bcd_round_trip(fmt: Bcd, data: st.DataObject) -> None:
    value = data.draw(_value_for(fmt))
    raw = encode(fmt, value, "x")  # type: ignore[arg-type]
    assert len(raw) == fmt.size and decode(fmt, raw, "x") == value


@EXAMPLES
@given(st.lists(st.binary(max_size=40), max_size=10), addresses, st.integers(0, 31))
def test_arbitrary_bytes_raise_only_protocol_errors(chunks: list[bytes], address: str, function: int) -> None:
    matcher = ReplyMatcher(address, function, max_buffer=128)
    splitter = FrameSplitter(max_buffer=128)
    for chunk in chunks:
        with contextlib.suppress(ProtocolError):
            matcher.feed(chunk)
        splitter.feed(chunk)
        assert len(splitter.buffered) <= 128 + len(chunk)
    with contextlib.suppress(ProtocolError):
        matcher.finish()
    for chunk in chunks:
        with contextlib.suppress(ProtocolError):
            json.dumps(describe(chunk))


@EXAMPLES
@given(addresses, st.integers(0, 0x7F), st.binary(max_size=60))
def test_describe_and_parse_request_survive_any_valid_frame(address: str, control: int, data: bytes) -> None:
    raw = build_frame(address, control, data)
    json.dumps(describe(raw))
    json.dumps(describe(build_frame(address, control | 0x80, data)))
    with contextlib.suppress(ProtocolError):
        parse_request(parse_frame(raw))
