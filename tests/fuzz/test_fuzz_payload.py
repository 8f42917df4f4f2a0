"""Fuzz properties of the MQTT payload decoder (protocols.messages.decode), the topic parser and the
ingest's payload path (decode + line protocol, `Ingest._add`): any bytes decode or raise
ContractError; the ingest dead-letters what it cannot store and never lets another exception out
(that would kill its consumer task and stop acknowledgements)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import messages as m
from protocols import topics
from protocols.errors import ContractError
from protocols.vocabulary import VOCABULARY
from tests.fuzz.targets import MESSAGE_TYPES, NOW_MS, PAYLOAD_SEEDS, TARGETS, ingest_add

EXAMPLES = settings(max_examples=150, deadline=None)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ["schema", "gw", "dev", "seq", "ts", "values", "quality", "source", "more", "event", "data", "state"]


@st.composite
def near_valid(draw: st.DrawFn) -> bytes:
    """A valid seed payload with fields replaced, removed or added (names from the contract and the
    vocabulary, values of any JSON type)."""
    doc: dict[str, Any] = json.loads(draw(st.sampled_from(PAYLOAD_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(FIELDS + sorted(doc)))
        if draw(st.integers(0, 4)) == 0:
            doc.pop(key, None)
        elif key in ("values", "quality", "data") and draw(st.booleans()):
            name = draw(st.sampled_from(sorted(VOCABULARY)))
            doc.setdefault(key, {})
            if isinstance(doc[key], dict):
                doc[key][name] = draw(json_values)
        else:
            doc[key] = draw(json_values)
    return json.dumps(doc, allow_nan=True).encode()


payloads = st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()), near_valid())


def _decode_or_reject(raw: bytes) -> None:
    with contextlib.suppress(ContractError):
        assert TARGETS["payload"].decode(raw) is True


@EXAMPLES
@given(payloads)
def test_any_payload_decodes_or_raises_contract_error(raw: bytes) -> None:
    _decode_or_reject(raw)


@EXAMPLES
@given(near_valid(), st.binary(min_size=1, max_size=4), st.data())
def test_invalid_utf8_anywhere_is_a_contract_error(raw: bytes, junk: bytes, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(raw)))
    _decode_or_reject(raw[:at] + junk + raw[at:])


@pytest.mark.parametrize("type_", MESSAGE_TYPES, ids=lambda t: t.__name__)
def test_regression_invalid_utf8_inside_a_string(type_: type[Any]) -> None:
    """msgspec raises UnicodeDecodeError (not its DecodeError) for a bad byte inside a JSON string;
    it escaped `messages.decode` and, in the alerts role, the consumer (found by bench/fuzz.py)."""
    raw = b'{"schema":1,"gw":"gw\xf4\xaa1","dev":"m1","seq":1,"ts":1763800000000}'
    with pytest.raises(ContractError) as info:
        m.decode(type_, raw, now_ms=NOW_MS)
    assert info.value.field == "$"


def test_deep_nesting_is_a_contract_error() -> None:
    for depth in (100, 10_000, 100_000):
        _decode_or_reject(b"[" * depth + b"]" * depth)
        _decode_or_reject(b'{"schema":1,"values":' + b'{"a":' * depth + b"1" + b"}" * (depth + 1))


@EXAMPLES
@given(st.one_of(st.text(max_size=60), st.lists(st.text(max_size=8), max_size=6).map("/".join)))
def test_topic_parser_raises_only_contract_errors(text: str) -> None:
    for topic in (text, f"{topics.PREFIX}/{text}"):
        with contextlib.suppress(ContractError):
            topics.parse_topic(topic)


@EXAMPLES
@given(payloads, st.sampled_from(["reading", "event", "health", "status", "cmd", "alerts/r", "x/y/z"]))
def test_ingest_payload_path_never_raises(raw: bytes, kind: str) -> None:
    topic = f"{topics.PREFIX}/gw1/status" if kind == "status" else f"{topics.PREFIX}/gw1/m1/{kind}"
    ingest_add(topic, raw)


def test_ingest_stores_the_valid_seeds() -> None:
    assert ingest_add(f"{topics.PREFIX}/gw1/m1/reading", PAYLOAD_SEEDS[0])
    assert not ingest_add(f"{topics.PREFIX}/gw2/m1/reading", PAYLOAD_SEEDS[0])  # topic/payload mismatch
