"""Business-hall service (营业厅): long waits, deep queues, counters paused too long, dissatisfied ratings
(immediate) and a low satisfaction rate over the last hour.

Layer: ingest alert rules (pure). Must not: do I/O, read the wall clock (waits are `now` minus the
events' own `ts`), or own the alert life cycle (the engine does). "Hall device offline" is the
devices rule set's `device_offline`, not repeated here.

The queue is rebuilt from the gateway's hall events (`protocols.messages.EventKind`, data keys per
`EVENT_REQUIRED`): a ticket waits from `ticket_issued` until it is called, served or abandoned (the
gateway abandons unserved tickets at day end); a `ticket_transferred` ticket queues again for its new
business from the transfer time; a suspended ticket waits on the customer, not the hall.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import Field

from protocols import messages as m
from protocols.config import Frozen

from ...topology import Topology
from ..model import Inbound, RuleContext, RuleSet, Severity, Signal, counter_subject, hall_subject

__all__ = ["RULESET", "HallConfig", "HallService"]

K = m.EventKind
_LEAVE_QUEUE: Final = frozenset(
    {K.TICKET_CALLED, K.SERVICE_STARTED, K.SERVICE_FINISHED, K.TICKET_ABANDONED, K.TICKET_SUSPENDED}
)
_SATISFIED_LABELS: Final = frozenset({"very satisfied", "satisfied"})
HOUR: Final = 3600.0


class HallConfig(Frozen):
    """Section `alerts.rules.hall` of ingest.yaml; `*_by_hall` override the defaults per hall (site)."""

    wait_target_s: float = Field(900.0, gt=0, description="hall_wait: longest current wait above (s)")
    wait_target_by_hall: dict[str, float] = Field(default_factory=dict, description="per-hall wait target")
    wait_critical_factor: float = Field(2.0, ge=1, description="hall_wait is critical above target x this")
    queue_depth_max: int = Field(20, ge=0, description="queue_depth: waiting tickets above this")
    queue_depth_by_hall: dict[str, int] = Field(default_factory=dict, description="per-hall queue limit")
    paused_max_s: float = Field(1200.0, gt=0, description="counter_paused: paused longer than (s)")
    dissatisfied_levels: tuple[int, ...] = Field(
        (4,), description="rating levels that are 'dissatisfied' when the event has no label (4-key pads)"
    )
    rating_hold_s: float = Field(
        900.0, ge=0, description="dissatisfied_rating: how long the once-alert stays before resolving"
    )
    satisfaction_target: float = Field(0.9, ge=0, le=1, description="satisfaction_low: rate below this")
    satisfaction_window_s: float = Field(3600.0, gt=0, description="satisfaction_low: over the last (s)")
    satisfaction_min_ratings: int = Field(5, ge=1, description="satisfaction_low: judged from this many")
    max_ticket_age_s: float = Field(
        14 * 3600.0,
        gt=0,
        description="forget a waiting ticket after this (a lost event must not hold an alert)",
    )


@dataclass(slots=True)
class _Hall:
    gw: str = ""
    waiting: dict[str, float] = field(default_factory=dict)  # ticket -> queued since (s)
    ratings: list[tuple[float, bool]] = field(default_factory=list)  # (ts, satisfied), oldest first
    counters: dict[str, list[Any]] = field(default_factory=dict)  # counter -> [state, since, staff]


def _text(value: m.Scalar | None) -> str:
    return "" if value is None else str(value)


def _when(ts: float) -> str:
    # a stable wording (no running counters) so a firing alert is not re-published on every tick
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _mins(seconds: float) -> str:
    return f"{seconds / 60:.0f} min"


class HallService:
    ids = ("hall_wait", "queue_depth", "counter_paused", "dissatisfied_rating", "satisfaction_low")

    def __init__(self, cfg: HallConfig, ctx: RuleContext) -> None:
        self.cfg = cfg
        self.topology = ctx.topology
        self.halls: dict[str, _Hall] = {}

    def set_topology(self, topology: Topology) -> None:
        self.topology = topology

    # ---- interface

    def on_message(self, inbound: Inbound, now: float) -> Iterable[Signal]:
        e = inbound.message
        if not isinstance(e, m.Event) or "hall" not in e.data:
            return []
        name = _text(e.data["hall"])
        hall = self.halls.setdefault(name, _Hall())
        hall.gw = e.gw
        at = e.ts / 1000
        out: list[Signal] = []
        if e.event in (K.TICKET_ISSUED, K.TICKET_TRANSFERRED):
            hall.waiting[_text(e.data["ticket"])] = at
        elif e.event in _LEAVE_QUEUE:
            hall.waiting.pop(_text(e.data["ticket"]), None)
        if e.event is K.RATING:
            out += self._rating(name, hall, e, at)
        elif e.event is K.COUNTER_STATE:
            self._counter(hall, e, at)
        elif e.event in (K.TICKET_CALLED, K.SERVICE_STARTED, K.STAFF_LOGIN):
            self._staff(hall, e, at)
        return out + self._judge(name, hall, now)

    def on_tick(self, now: float) -> Iterable[Signal]:
        out = []
        for name, hall in self.halls.items():
            out += self._judge(name, hall, now)
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            name: {
                "gw": h.gw,
                "waiting": dict(h.waiting),
                "ratings": [[t, ok] for t, ok in h.ratings],
                "counters": {c: list(v) for c, v in h.counters.items()},
            }
            for name, h in self.halls.items()
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.halls = {
            name: _Hall(
                gw=h.get("gw", ""),
                waiting={str(k): float(v) for k, v in h.get("waiting", {}).items()},
                ratings=[(float(t), bool(s)) for t, s in h.get("ratings", [])],
                counters={str(k): list(v) for k, v in h.get("counters", {}).items()},
            )
            for name, h in state.items()
        }

    # ---- state updates

    def _counter(self, hall: _Hall, e: m.Event, at: float) -> None:
        counter, state = _text(e.data["counter"]), _text(e.data["state"])
        entry = hall.counters.setdefault(counter, ["", at, ""])
        if entry[0] != state:
            entry[0], entry[1] = state, at
        if e.data.get("staff") is not None:
            entry[2] = _text(e.data["staff"])

    def _staff(self, hall: _Hall, e: m.Event, at: float) -> None:
        entry = hall.counters.setdefault(_text(e.data["counter"]), ["", at, ""])
        entry[2] = _text(e.data["staff"])

    def _rating(self, name: str, hall: _Hall, e: m.Event, at: float) -> list[Signal]:
        level, label = e.data.get("level"), _text(e.data.get("label")).lower()
        satisfied = label in _SATISFIED_LABELS if label else isinstance(level, int) and level <= 2
        hall.ratings.append((at, satisfied))
        hall.ratings.sort()
        bad = label == "dissatisfied" if label else level in self.cfg.dissatisfied_levels
        if not bad:
            return []
        counter, staff, ticket = (_text(e.data[k]) for k in ("counter", "staff", "ticket"))
        return [
            Signal(
                rule="dissatisfied_rating",
                subject=counter_subject(name, counter),
                active=True,
                at=at,
                severity=Severity.MAJOR,
                value=float(level) if isinstance(level, int | float) else None,
                message=f"dissatisfied rating at {name} counter {counter}: staff {staff}, ticket {ticket}",
                once=True,
                clear_s=self.cfg.rating_hold_s,
                labels={**self._labels(name, hall), "counter": counter, "staff": staff, "ticket": ticket},
            )
        ]

    # ---- judgement of one hall at `now`

    def _labels(self, name: str, hall: _Hall) -> dict[str, str]:
        site = self.topology.site(hall.gw)
        return {"hall": name, "gw": hall.gw, **({"site": site} if site else {})}

    def _judge(self, name: str, hall: _Hall, now: float) -> list[Signal]:
        cfg = self.cfg
        stale = [t for t, since in hall.waiting.items() if now - since > cfg.max_ticket_age_s]
        for ticket in stale:
            del hall.waiting[ticket]
        cut = now - cfg.satisfaction_window_s
        hall.ratings = [r for r in hall.ratings if r[0] > cut]
        return [
            self._wait(name, hall, now),
            self._depth(name, hall, now),
            self._satisfaction(name, hall, now),
        ] + [self._paused(name, hall, counter, entry, now) for counter, entry in hall.counters.items()]

    def _wait(self, name: str, hall: _Hall, now: float) -> Signal:
        target = self.cfg.wait_target_by_hall.get(name, self.cfg.wait_target_s)
        ticket, since = min(hall.waiting.items(), key=lambda kv: kv[1], default=("", now))
        longest = max(0.0, now - since)
        critical = longest > target * self.cfg.wait_critical_factor
        return Signal(
            rule="hall_wait",
            subject=hall_subject(name),
            active=longest > target,
            at=now,
            severity=Severity.CRITICAL if critical else Severity.WARNING,
            value=round(longest, 1),
            message=f"{name}: ticket {ticket} waiting since {_when(since)} (target {_mins(target)})"
            if ticket
            else f"{name}: nobody waiting",
            labels={**self._labels(name, hall), **({"ticket": ticket} if ticket else {})},
        )

    def _depth(self, name: str, hall: _Hall, now: float) -> Signal:
        limit = self.cfg.queue_depth_by_hall.get(name, self.cfg.queue_depth_max)
        depth = len(hall.waiting)
        return Signal(
            rule="queue_depth",
            subject=hall_subject(name),
            active=depth > limit,
            at=now,
            value=float(depth),
            message=f"{name}: more than {limit} tickets waiting",
            labels=self._labels(name, hall),
        )

    def _paused(self, name: str, hall: _Hall, counter: str, entry: list[Any], now: float) -> Signal:
        state, since, staff = entry
        paused = now - since if state == "paused" else 0.0
        return Signal(
            rule="counter_paused",
            subject=counter_subject(name, counter),
            active=paused > self.cfg.paused_max_s,
            at=now,
            value=round(paused, 1),
            started_at=since if state == "paused" else None,
            message=f"{name} counter {counter} (staff {staff or '?'}) paused since {_when(since)} "
            f"(limit {_mins(self.cfg.paused_max_s)})",
            labels={**self._labels(name, hall), "counter": counter, **({"staff": staff} if staff else {})},
        )

    def _satisfaction(self, name: str, hall: _Hall, now: float) -> Signal:
        cfg = self.cfg
        rated = len(hall.ratings)
        rate = sum(s for _, s in hall.ratings) / rated if rated else 1.0
        window = _mins(cfg.satisfaction_window_s)
        return Signal(
            rule="satisfaction_low",
            subject=hall_subject(name),
            active=rated >= cfg.satisfaction_min_ratings and rate < cfg.satisfaction_target,
            at=now,
            value=round(rate, 3),
            message=f"{name}: satisfaction {rate:.0%} of {rated} ratings in the last {window} "
            f"(target {cfg.satisfaction_target:.0%})",
            labels=self._labels(name, hall),
        )


def _build(cfg: HallConfig, ctx: RuleContext) -> list[Any]:
    return [HallService(cfg, ctx)]


RULESET: Final = RuleSet(name="hall", config=HallConfig, build=_build)
