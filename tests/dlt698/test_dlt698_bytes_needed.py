"""The 698.45 reply matcher tells the bus how many bytes a reply still needs (the bus then sleeps through
their wire time instead of waking per byte, as for DL/T 645): never more than are really missing, and
exactly the rest once a frame's L is in, whatever noise, preamble or 68 look-alikes came first."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocols.dlt698 import ReplyMatcher, parse_frame
from protocols.errors import ProtocolError
from tests.dlt698.vectors import VECTORS


def _answers(request: str, reply: bytes) -> bool:
    try:
        return ReplyMatcher.for_request(parse_frame(bytes.fromhex(request))).feed(reply) is not None
    except ProtocolError:
        return False


PAIRS = [
    (q, r)
    for q in VECTORS
    for r in VECTORS
    if not q.reply and r.reply and q.id.split("-")[0] == r.id.split("-")[0] and _answers(q.hex, r.raw)
]


def _check(request_hex: str, reply: bytes, noise: bytes) -> None:
    matcher = ReplyMatcher.for_request(parse_frame(bytes.fromhex(request_hex)))
    wire = noise + reply
    got = None
    for n, byte in enumerate(wire):
        remaining = len(wire) - n
        assert 1 <= matcher.bytes_needed() <= remaining, (n, matcher.bytes_needed(), remaining)
        got = matcher.feed(bytes([byte]))
        if n >= len(noise) + 3:  # the reply's L is in: the need is exact unless noise still looks longer
            assert matcher.bytes_needed() <= len(wire) - n - 1 or got is not None
    assert got is not None


def test_every_reference_reply_byte_by_byte() -> None:
    assert PAIRS
    for request, reply in PAIRS:
        _check(request.hex, b"\xfe\xfe" + reply.raw, b"")


@given(st.binary(max_size=40).map(lambda b: b.replace(b"\x16", b"\x00")))
def test_noise_before_a_reply_never_makes_the_need_too_large(noise: bytes) -> None:
    request, reply = PAIRS[0]
    _check(request.hex, reply.raw, noise)
