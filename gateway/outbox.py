"""Turn driver output into contract messages (pure: the spool supplies `seq`, the caller the time).

Layer: gateway core. The only place the gateway builds `protocols.messages` payloads, so the topics
and fields it publishes are exactly the contract. A sample is encoded once, when it is spooled
(`sample`); the publisher wraps the spooled bytes of one or more samples into a reading
(`reading_payload`) without decoding them. Must not: do I/O or read the clock.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from protocols import messages as m
from protocols import topics

from .drivers.base import DeviceEvent, Sample
from .health import DeviceHealth

reading_topic = topics.reading_topic
event_topic = topics.event_topic


_json = msgspec.json.encode


def sample(s: Sample, seq: int) -> bytes:
    """A driver's sample (the contract's `Sample`) as JSON, with the seq the spool gave it."""
    return _json(msgspec.structs.replace(s, seq=seq))


def reading_payload(gw: str, dev: str, protocol: str, samples: Sequence[bytes]) -> bytes:
    """A `Reading` of `dev` from encoded `m.Sample`s (as `sample` made them), in JSON, without decoding
    them: the first sample's fields are the reading's own (a Reading is its first Sample plus the
    envelope: `Reading.samples()`), the others go into `more` as they are. Same message as building
    the `m.Reading` and encoding it (the fields in another order, which JSON does not care about)."""
    first, more = samples[0], samples[1:]
    parts = [b'{"schema":%d,"gw":%b,"dev":%b,' % (m.SCHEMA_VERSION, _json(gw), _json(dev)), first[1:-1]]
    if protocol:
        parts += (b',"protocol":', _json(protocol))
    if more:
        parts += (b',"more":[', b",".join(more), b"]")
    parts.append(b"}")
    return b"".join(parts)


def event(gw: str, dev: str, ev: DeviceEvent, seq: int) -> tuple[str, m.Event]:
    dev = ev.dev or dev
    msg = m.Event(
        schema=m.SCHEMA_VERSION,
        gw=gw,
        dev=dev,
        seq=seq,
        ts=ev.ts_ms,
        event=ev.kind,
        data=dict(ev.data),
        source=ev.source,
    )
    return topics.event_topic(gw, dev), msg


def health(gw: str, dev: str, h: DeviceHealth, seq: int, ts_ms: int) -> tuple[str, m.Health]:
    msg = m.Health(
        schema=m.SCHEMA_VERSION,
        gw=gw,
        dev=dev,
        seq=seq,
        ts=ts_ms,
        state=h.state,
        last_success_ts=h.last_success_ms,
        latency_ms=None if h.last_latency_ms is None else round(h.last_latency_ms, 1),
        polls=h.polls,
        failures=h.failures,
        errors=dict(h.errors),
    )
    return topics.health_topic(gw, dev), msg
