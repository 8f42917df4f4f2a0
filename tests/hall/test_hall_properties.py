"""Hypothesis round trips: frames, events, requests; and the splitter finds frames among noise."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.hall import (
    EVENT_FIELDS,
    Clock,
    Event,
    Evt,
    Frame,
    FrameSplitter,
    Level,
    ReplyMatcher,
    build_frame,
    clock_broadcast,
    display_request,
    parse_frame,
    parse_poll_reply,
    parse_request,
    poll_reply,
    split_frames,
    start_eval_request,
)

addresses = st.integers(1, 0xFE)
u16 = st.integers(0, 0xFFFF)
frames = st.builds(Frame, st.integers(0, 0xFE), st.integers(0, 0xFF), st.binary(max_size=62))


@st.composite
def events(draw: st.DrawFn) -> Event:
    code = draw(st.sampled_from(list(Evt)))
    values: dict[str, object] = {}
    for field in EVENT_FIELDS[code]:
        values[field] = draw(
            st.sampled_from(list(Level))
            if field == "level"
            else u16
            if field != "business"
            else st.integers(0, 255)
        )
    return Event(draw(st.integers(1, 255)), code, **values)  # type: ignore[arg-type]


@settings(max_examples=200)
@given(frames)
def test_frame_round_trip(frame: Frame) -> None:
    assert parse_frame(frame.encode()) == frame


@settings(max_examples=200)
@given(addresses, events())
def test_event_round_trip(address: int, event: Event) -> None:
    assert parse_poll_reply(parse_frame(poll_reply(address, event).encode())) == event


@settings(max_examples=200)
@given(addresses, u16, u16, u16, st.integers(0, 255))
def test_request_round_trip(address: int, a: int, b: int, staff: int, counter: int) -> None:
    for frame in (display_request(address, a, b), start_eval_request(address, a, counter, staff)):
        assert parse_request(parse_frame(frame.encode())) is not None
    assert parse_request(start_eval_request(address, a, counter, staff)).staff == staff  # type: ignore[union-attr]


@settings(max_examples=100)
@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31)))
def test_clock_round_trip(when: dt.datetime) -> None:
    parsed = parse_request(parse_frame(clock_broadcast(when).encode()))
    assert isinstance(parsed, Clock) and parsed.when == when.replace(microsecond=0)


@settings(max_examples=200)
@given(st.binary(max_size=30), frames, st.binary(max_size=30), st.integers(1, 7))
def test_splitter_finds_frames_among_noise(noise1: bytes, frame: Frame, noise2: bytes, chunk: int) -> None:
    raw = frame.encode()
    stream = noise1 + raw + noise2 + raw
    found = split_frames(stream)
    assert found and found[-1] == frame
    s = FrameSplitter()  # never raises, whatever the chunking
    for i in range(0, len(stream), chunk):
        s.feed(stream[i : i + chunk])


@settings(max_examples=200)
@given(st.binary(max_size=40).filter(lambda b: b"\xff" not in b), addresses, events(), st.integers(1, 5))
def test_matcher_finds_reply_after_ff_free_noise(
    noise: bytes, address: int, event: Event, chunk: int
) -> None:
    raw = poll_reply(address, event).encode()
    stream = noise + build_frame(address, 0x10, b"\x00") + raw
    m = ReplyMatcher(address, 0x10)
    results = [m.feed(stream[i : i + chunk]) for i in range(0, len(stream), chunk)]
    assert [r for r in results if r is not None] == [parse_frame(raw)]
    assert m.skipped == len(noise) and m.echoes == 1
