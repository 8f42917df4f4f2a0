"""Whatever arrives on the line, the simulated meter never raises (an exception would end the line's
task and silence every meter on it): any request APDU the codec can build, for it or for a wildcard,
plain or wrapped as plaintext + RN, and any frame or random burst, gets a valid reply frame or
silence, and the reply answers the request by the gateway's own checks."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_sim.devices.dlt698 import Dlt698Meter
from protocols.dlt698 import (
    Address,
    ReplyMatcher,
    SecurityRequest,
    mismatch,
    parse_apdu,
    parse_frame,
    parse_reply,
    request_frame,
    unwrap,
)
from tests.dlt698 import strategies as S

from .test_dlt698_sim import ADDR, T0

CHECKS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
METER = Dlt698Meter(ADDR, seed=1, start_time=T0, apdu_size=128)


@CHECKS
@given(S.requests, st.booleans(), st.booleans(), st.binary(min_size=16, max_size=16))
def test_any_request_gets_a_matching_reply(request, wildcard: bool, secured: bool, rn: bytes) -> None:
    apdu = SecurityRequest(request.encode(), rn=rn) if secured else request
    frame = request_frame(Address.wildcard() if wildcard else Address(ADDR), apdu)
    reply = METER.respond(frame.encode(), T0 + 5)
    assert reply is not None
    got = ReplyMatcher.for_request(frame).feed(reply.data)  # raises if it does not answer the request
    assert got is not None and got.address == Address(ADDR)
    answer = parse_reply(got).apdu
    assert mismatch(unwrap(parse_apdu(frame.data)), answer) is None


@CHECKS
@given(S.frames)
def test_any_frame_gets_a_valid_frame_or_silence(frame) -> None:
    reply = METER.respond(frame.encode(), T0 + 5)
    if reply is not None:
        assert parse_frame(reply.data).address == Address(ADDR)


@CHECKS
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(burst: bytes) -> None:
    reply = METER.respond(burst, T0 + 5)
    if reply is not None:
        parse_frame(reply.data)
