"""The MQTT contract: payload validation with precise errors, topics, and a real-broker round trip."""

from __future__ import annotations

import contextlib
import json

import aiomqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridedge.services import Mosquitto
from protocols import ContractError, messages, signing, topics
from protocols.vocabulary import CANONICAL_NAMES

TS = 1_763_820_000_000


def reading(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "schema": 1,
        "gw": "gw1",
        "dev": "m001",
        "seq": 7,
        "ts": TS,
        "values": {
            "energy_import_kwh": 1206.42,
            "voltage_a_v": 230.1,
            "relay": "closed",
            "keep_power": False,
        },
        "quality": {"current_a_a": "error"},
    }
    base.update(overrides)
    return base


def decode_error(payload: object, type_: type = messages.Reading, **kw: object) -> ContractError:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(ContractError) as info:
        messages.decode(type_, raw, **kw)
    return info.value


def test_reading_round_trip() -> None:
    msg = messages.decode(messages.Reading, json.dumps(reading()).encode())
    assert msg.values["voltage_a_v"] == 230.1 and msg.quality == {"current_a_a": "error"}
    assert messages.decode(messages.Reading, messages.encode(msg)) == msg


@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [
        ({k: v for k, v in reading().items() if k != "seq"}, "$.seq", "required field is missing"),
        (reading(seq="7"), "$.seq", "Expected `int`, got `str`"),
        (reading(values={"volts": 1.0}), "$.values.volts", "unknown canonical name 'volts'"),
        (reading(values={"relay": "half"}), "$.values.relay", "relay state must be"),
        (reading(values={"keep_power": 1}), "$.values.keep_power", "expected a boolean"),
        (reading(values={"purchase_count": 1.5}), "$.values.purchase_count", "expected an integer"),
        (reading(schema=2), "$.schema", "unsupported schema version 2"),
        (reading(ts=1_700_000), "$.ts", "before 2000-01-01"),
        (reading(gw="gw/1"), "$.gw", "not a valid identifier"),
        (reading(extra=1), "$", "unknown field `extra`"),
        (reading(quality={"voltage_a_v": "meh"}), "$.quality[...]", "Invalid enum value 'meh'"),
        (reading(quality={"volts": "error"}), "$.quality.volts", "unknown canonical name 'volts'"),
        # no number a receiver cannot hold: a 400-digit integer crashed the writer with OverflowError
        (reading(values={"voltage_a_v": 10**400}), "$.values[...]", "<= 9223372036854775807"),
        (reading(seq=2**63), "$.seq", "<= 9223372036854775807"),
        (reading(gw="gw1\n"), "$.gw", "not a valid identifier"),  # `$` matched before a newline
        (reading(gw="alerts"), "$.gw", "reserved"),
        # the all-float fast path falls back to value-by-value checks, which name the value
        (reading(values={"voltage_a_v": 230.1, "voltage_b_v": True}), "$.values.voltage_b_v", "a number"),
        (reading(values={"voltage_a_v": 230.1, "voltage_b_v": "230"}), "$.values.voltage_b_v", "a number"),
    ],
)
def test_malformed_reading_names_field(payload: dict[str, object], field: str, reason: str) -> None:
    err = decode_error(payload)
    assert err.field == field
    assert reason in err.reason


def test_fast_paths_agree_with_the_rules() -> None:
    floats = {"voltage_a_v": 230.1, "voltage_b_v": 229.8, "energy_import_kwh": 1e300}
    assert messages.finite_floats(floats.values())
    assert not messages.finite_floats({"a": 1e308, "b": 1e308}.values())  # sum overflows: exact path
    messages.decode(
        messages.Reading, json.dumps(reading(values={"voltage_a_v": 1.7e308, "voltage_b_v": 1.7e308}))
    )
    assert not messages.finite_floats({"a": 1.0, "b": 2}.values())  # an int: the exact path accepts it
    messages.decode(messages.Reading, json.dumps(reading(values={"voltage_a_v": 230})).encode())
    assert not messages.finite_floats({}.values())
    # an id valid as a device is remembered, and still refused as a gateway
    messages.decode(messages.Reading, json.dumps(reading(dev="alerts")).encode())
    assert "reserved" in decode_error(reading(gw="alerts")).reason


def test_oversize_and_bad_json() -> None:
    assert "exceeds" in decode_error(b"{" + b" " * (messages.MAX_PAYLOAD_BYTES + 1) + b"}").reason
    assert "not valid JSON" in decode_error(b'{"schema": 1,').reason


def test_future_timestamp_needs_receiver_clock() -> None:
    future = reading(ts=TS + 2 * 86_400_000)
    messages.decode(messages.Reading, json.dumps(future).encode())  # no clock: accepted
    assert "ahead" in decode_error(future, now_ms=TS).reason


def test_batched_samples_are_validated_each() -> None:
    more = [{"seq": 8, "ts": TS + 60_000, "values": {"bogus": 1}}]
    assert decode_error(reading(more=more)).field == "$.more[0].values.bogus"
    ok = messages.decode(messages.Reading, json.dumps(reading(more=[{**more[0], "values": {}}])).encode())
    assert [s.seq for s in ok.samples()] == [7, 8]


def test_event_requires_its_data() -> None:
    event = {
        "schema": 1,
        "gw": "gw1",
        "dev": "k3",
        "seq": 1,
        "ts": TS,
        "event": "rating",
        "data": {"hall": "h1", "ticket": 291, "counter": 3, "staff": 1057, "level": 4},
    }
    assert decode_error(event, messages.Event).field == "$.data.label"
    event["data"]["label"] = "dissatisfied"  # type: ignore[index]
    assert messages.decode(messages.Event, json.dumps(event).encode()).event is messages.EventKind.RATING
    assert "Invalid enum value" in decode_error({**event, "event": "nope"}, messages.Event).reason


@pytest.mark.parametrize(
    ("topic", "kind", "gw", "dev"),
    [
        ("gridedge/v1/gw1/status", topics.TopicKind.STATUS, "gw1", ""),
        ("gridedge/v1/gw1/m001/reading", topics.TopicKind.READING, "gw1", "m001"),
        ("gridedge/v1/gw1/m001/event", topics.TopicKind.EVENT, "gw1", "m001"),
        ("gridedge/v1/gw1/m001/health", topics.TopicKind.HEALTH, "gw1", "m001"),
        ("gridedge/v1/gw1/m001/cmd", topics.TopicKind.CMD, "gw1", "m001"),
        ("gridedge/v1/gw1/m001/cmd/result", topics.TopicKind.CMD_RESULT, "gw1", "m001"),
    ],
)
def test_topics_build_and_parse(topic: str, kind: topics.TopicKind, gw: str, dev: str) -> None:
    parsed = topics.parse_topic(topic)
    assert (parsed.kind, parsed.gw, parsed.dev) == (kind, gw, dev)
    if kind is topics.TopicKind.STATUS:
        rebuilt = topics.status_topic(gw)
    else:
        rebuilt = topics.device_topic(gw, dev, kind)
    assert rebuilt == topic


def test_alert_deadletter_and_bad_topics() -> None:
    alert = topics.parse_topic(topics.alert_topic("area_outage", "area:A01"))
    assert (alert.kind, alert.rule, alert.subject) == (topics.TopicKind.ALERT, "area_outage", "area:A01")
    assert topics.parse_topic(topics.DEADLETTER_TOPIC).kind is topics.TopicKind.DEADLETTER
    for bad in [
        "other/v1/gw/x/reading",
        "gridedge/v1/gw1/m1/bogus",
        "gridedge/v1/gw 1/m1/reading",
        "gridedge/v1/alerts/only-rule",
        "gridedge/v1/gw1",
    ]:
        with pytest.raises(ContractError) as info:
            topics.parse_topic(bad)
        assert info.value.field == "topic"


def test_command_signature_rotation() -> None:
    fields = {
        "id": "c1",
        "gw": "gw1",
        "dev": "m001",
        "action": "trip",
        "params": {},
        "issued_at": TS,
        "expires_at": TS + 60_000,
        "nonce": "n-1",
    }
    cmd = signing.signed(fields, b"new-key")
    assert signing.verify(cmd, [b"old-key", b"new-key"])
    assert not signing.verify(cmd, [b"old-key"])
    assert not signing.verify({**cmd, "action": "close"}, [b"new-key"])
    assert not signing.verify(fields, [b"new-key"])  # unsigned
    assert messages.decode(messages.Command, json.dumps(cmd).encode()).sig == cmd["sig"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_only_raise_contract_errors(data: bytes) -> None:
    for type_ in (messages.Reading, messages.Event, messages.Command, messages.Health):
        with contextlib.suppress(ContractError):
            messages.decode(type_, data)


FINITE = st.floats(allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(CANONICAL_NAMES)), FINITE, max_size=8))
def test_numeric_values_pass_or_fail_by_vocabulary_type(values: dict[str, float]) -> None:
    try:
        messages.decode(messages.Reading, json.dumps(reading(values=values, quality={})).encode())
    except ContractError as err:
        assert err.field.startswith("$.values.")


@pytest.mark.integration
async def test_reading_round_trip_through_real_broker(mosquitto: Mosquitto) -> None:
    msg = messages.decode(messages.Reading, json.dumps(reading()).encode())
    topic = topics.reading_topic(msg.gw, msg.dev)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="test-sub") as sub:
        await sub.subscribe(topics.gateway_filter(topics.TopicKind.READING), qos=1)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="test-pub") as pub:
            await pub.publish(topic, messages.encode(msg), qos=1)
        async for received in sub.messages:
            parsed = topics.parse_topic(str(received.topic))
            got = messages.decode(messages.Reading, bytes(received.payload))  # type: ignore[arg-type]
            assert (parsed.kind, parsed.gw, parsed.dev) == (topics.TopicKind.READING, "gw1", "m001")
            assert got == msg
            break
