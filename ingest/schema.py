"""Contract messages -> InfluxDB line protocol, per the schema in architecture.md.

Layer: pure mapping for the ingest (no I/O). Timestamps are the acquisition times in the payload,
never the arrival time, so a replayed message overwrites its points instead of duplicating them.

| measurement     | tags                                            | fields                          |
| meter           | gw, dev, protocol + topology (site, area, ...)  | canonical values                |
| meter_event     | gw, dev, kind + topology                        | the event's data, seq           |
| hall_event      | gw, hall, counter, kind                         | ticket, wait_s, service_s, ...  |
| rating          | gw, hall, counter, staff                        | score, level                    |
| device_health   | gw, dev                                         | online, state, latency_ms, ...  |
| gateway         | gw                                              | spool_depth, publish_lag_s, ... |

Numbers are written as floats (an integer-looking 230.0 and 230 must not conflict in InfluxDB),
except counters that are integers by nature (seq, polls, failures, errors, spool figures).
"""

from __future__ import annotations

from typing import Any, Final

from protocols import messages as m
from protocols.vocabulary import VOCABULARY

from .lineproto import escape_tag, field_set, point, series
from .topology import Topology

HALL_EVENTS: Final = frozenset(
    {
        m.EventKind.TICKET_ISSUED,
        m.EventKind.TICKET_CALLED,
        m.EventKind.TICKET_RECALLED,
        m.EventKind.TICKET_SUSPENDED,
        m.EventKind.SERVICE_STARTED,
        m.EventKind.SERVICE_FINISHED,
        m.EventKind.TICKET_ABANDONED,
        m.EventKind.TICKET_TRANSFERRED,
        m.EventKind.RATING_TIMEOUT,
        m.EventKind.COUNTER_STATE,
        m.EventKind.STAFF_LOGIN,
        m.EventKind.STAFF_LOGOUT,
    }
)
_HALL_TAGS: Final = ("hall", "counter")


def _field(value: Any) -> Any:
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int | float):
        return float(value)
    return str(value)


def lines_for(message: m.Message, topology: Topology) -> list[str]:
    """The line-protocol lines of one decoded, validated message (may be empty)."""
    if isinstance(message, m.Reading):
        return reading_lines(message, topology)
    if isinstance(message, m.Event):
        return [event_line(message, topology)]
    if isinstance(message, m.Health):
        return [health_line(message)]
    if isinstance(message, m.Status):
        return [status_line(message)]
    return []


_SERIES_LIMIT: Final = 100_000
_series_cache: dict[tuple[int, str, str, str], str] = {}


def reading_lines(r: m.Reading, topology: Topology) -> list[str]:
    # the hot path: the series (measurement + sorted, escaped tags) is built once per device and
    # topology version (never id(): the topology a reload freed can pass its id on to a later one);
    # values were validated by the contract (finite numbers, known names)
    key = (topology.version, r.gw, r.dev, r.protocol)
    head = _series_cache.get(key)
    if head is None:
        if len(_series_cache) >= _SERIES_LIMIT:
            _series_cache.clear()
        tags = {"gw": r.gw, "dev": r.dev, "protocol": r.protocol, **topology.tags(r.gw, r.dev)}
        head = _series_cache[key] = series("meter", tags)
    out = [f"{head} {_fields(r.values)} {r.ts}"] if r.values else []
    for s in r.more:
        if s.values:
            out.append(f"{head} {_fields(s.values)} {s.ts}")
    return out


# Canonical names need no escaping (checked here, not assumed); other keys take the general path.
_PLAIN_NAMES: Final = frozenset(n for n in VOCABULARY if n == escape_tag(n))


def _fields(values: dict[str, m.Scalar]) -> str:
    # fast path: every value a float under a canonical name (a meter reading): one comprehension
    parts = [f"{k}={v!r}" for k, v in values.items() if type(v) is float]
    if len(parts) == len(values) and values.keys() <= _PLAIN_NAMES:
        return ",".join(parts)
    parts = []
    for key, value in values.items():
        kind = type(value)
        if kind is float:
            parts.append(f"{escape_tag(key)}={value!r}")
        elif kind is int:
            parts.append(f"{escape_tag(key)}={float(value)!r}")
        else:
            parts.append(field_set({key: value}))  # bool, str: rare, escaped by the general path
    return ",".join(parts)


def event_line(e: m.Event, topology: Topology) -> str:
    data = {k: v for k, v in e.data.items() if v is not None}
    if e.event is m.EventKind.RATING:
        tags = {"gw": e.gw, "hall": str(data.pop("hall", "")), "counter": str(data.pop("counter", ""))}
        tags["staff"] = str(data.pop("staff", ""))
        fields = {"score": _field(data.pop("level")), "level": str(data.pop("label", "")), "seq": e.seq}
        fields.update({k: _field(v) for k, v in data.items()})
        return point("rating", tags, fields, e.ts)
    if e.event in HALL_EVENTS:
        tags = {"gw": e.gw, "kind": e.event.value, **{t: str(data.pop(t, "")) for t in _HALL_TAGS}}
        fields = {k: _field(v) for k, v in data.items()}
        fields["seq"] = e.seq
        fields["ticket"] = str(fields.get("ticket", ""))
        return point("hall_event", tags, fields, e.ts)
    tags = {"gw": e.gw, "dev": e.dev, "kind": e.event.value, **topology.tags(e.gw, e.dev)}
    fields = {k: _field(v) for k, v in data.items()}
    fields["seq"] = e.seq
    return point("meter_event", tags, fields, e.ts)


def health_line(h: m.Health) -> str:
    fields: dict[str, Any] = {
        "online": h.state == "online",
        "state": h.state,
        "polls": h.polls,
        "failures": h.failures,
        "errors": sum(h.errors.values()),
    }
    if h.latency_ms is not None:
        fields["latency_ms"] = float(h.latency_ms)
    return point("device_health", {"gw": h.gw, "dev": h.dev}, fields, h.ts)


def status_line(s: m.Status) -> str:
    fields: dict[str, Any] = {
        "online": s.state == "online",
        "spool_depth": s.spool_depth,
        "spool_dropped": s.spool_dropped,
        "publish_lag_s": float(s.publish_lag_s),
        "uptime_s": float(s.uptime_s),
    }
    return point("gateway", {"gw": s.gw}, fields, s.ts)
