"""Turn driver output into contract messages (pure: the spool supplies `seq`, the caller the time).

Layer: gateway core. The only place the gateway builds `protocols.messages` payloads, so the topics
and fields it publishes are exactly the contract.
"""

from __future__ import annotations

from protocols import messages as m
from protocols import topics

from .drivers.base import DeviceEvent, Sample
from .health import DeviceHealth

reading_topic = topics.reading_topic
event_topic = topics.event_topic


def reading(gw: str, dev: str, protocol: str, sample: Sample, seq: int) -> tuple[str, m.Reading]:
    msg = m.Reading(
        schema=m.SCHEMA_VERSION,
        gw=gw,
        dev=dev,
        seq=seq,
        ts=sample.ts_ms,
        values=dict(sample.values),
        quality=dict(sample.quality),
        source=sample.source,
        protocol=protocol,
    )
    return topics.reading_topic(gw, dev), msg


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
