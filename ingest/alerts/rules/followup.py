"""Rating follow-up (`rating_followup`): a dissatisfied customer must be called back within a deadline.

Layer: ingest alert rules (pure). Must not: do I/O, read the wall clock (the rating's own `ts` starts
the clock), or import the engine, stores or outputs.

Every dissatisfied rating (judged as the hall rules judge it: label "dissatisfied", or without a label
a level in `dissatisfied_levels`; keep both lists equal) opens a follow-up on
`hall/{hall}/counter-{n}/ticket-{ticket}`: a pending alert that fires when `callback_deadline_s` has
passed since the rating without a callback. It ends with an operator's `callback` action (its
`outcome` in the resolved message): on the follow-up itself, or on the counter's `dissatisfied_rating`
(then the counter's oldest open follow-up is the one called back). A callback in time drops the
pending alert (the action stays in `alert_action`); a late one resolves the fired alert. A follow-up
nobody calls back is given up after `give_up_s` (resolved, saying so), so the memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from protocols import messages as m
from protocols.config import Frozen

from ..actions import Action, action_of
from ..model import Inbound, RuleContext, RuleSet, Severity, Signal, counter_subject

__all__ = ["RULESET", "FollowupConfig", "FollowupRule"]

RULE = "rating_followup"


class FollowupConfig(Frozen):
    callback_deadline_s: float = Field(
        24 * 3600.0, gt=0, description="a dissatisfied customer is called back within this (s)"
    )
    dissatisfied_levels: tuple[int, ...] = Field(
        (4,), description="levels that are 'dissatisfied' without a label (as alerts.rules.hall)"
    )
    give_up_s: float = Field(
        30 * 86400.0, gt=0, description="a follow-up without a callback is given up after this (s)"
    )


@dataclass(slots=True)
class _Open:
    at: float  # the rating's time
    counter: str  # hall/{hall}/counter-{n}
    labels: dict[str, str] = field(default_factory=dict)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


class FollowupRule:
    ids: tuple[str, ...] = (RULE,)

    def __init__(self, cfg: FollowupConfig) -> None:
        self.cfg = cfg
        self._open: dict[str, _Open] = {}  # subject -> its follow-up

    def on_message(self, inbound: Inbound, now: float) -> Iterable[Signal]:
        msg = inbound.message
        if isinstance(msg, m.Event):
            return self._rating(msg) if msg.event is m.EventKind.RATING and "hall" in msg.data else []
        action = action_of(inbound) if not inbound.gw else None
        if action is None or action.verb != "callback":
            return []
        return self._callback(action, now)

    def on_tick(self, now: float) -> Iterable[Signal]:
        stale = [s for s, f in self._open.items() if now - f.at >= self.cfg.give_up_s]
        out = []
        for subject in stale:
            del self._open[subject]
            text = f"follow-up given up: no callback recorded in {self.cfg.give_up_s / 86400:.0f} days"
            out.append(Signal(RULE, subject, False, now, resolve_message=text))
        return out

    def _rating(self, e: m.Event) -> list[Signal]:
        level, label = e.data.get("level"), str(e.data.get("label") or "").lower()
        if not (label == "dissatisfied" if label else level in self.cfg.dissatisfied_levels):
            return []
        hall, counter, staff, ticket = (
            str(e.data.get(k) or "") for k in ("hall", "counter", "staff", "ticket")
        )
        at = e.ts / 1000
        subject = f"{counter_subject(hall, counter)}/ticket-{ticket or e.ts}"
        labels = {"hall": hall, "gw": e.gw, "counter": counter, "staff": staff, "ticket": ticket}
        self._open.setdefault(subject, _Open(at, counter_subject(hall, counter), labels))
        deadline = self.cfg.callback_deadline_s
        text = (
            f"dissatisfied customer (ticket {ticket}, {hall} counter {counter}, staff {staff}, rated "
            f"{_when(at)}) not called back within {deadline / 3600:g} h"
        )
        return [
            Signal(
                RULE,
                subject,
                True,
                at,
                severity=Severity.MAJOR,
                message=text,
                pending_s=deadline,
                started_at=at,
                labels=labels,
            )
        ]

    def _callback(self, action: Action, now: float) -> list[Signal]:
        subject = action.subject if action.rule == RULE else self._oldest(action)
        if subject is None or subject not in self._open:
            return []
        del self._open[subject]
        text = f"called back by {action.by} after {{duration}}: {action.outcome}"
        at = action.at if action.at is not None else now
        return [Signal(RULE, subject, False, now, ended_at=at, resolve_message=text)]

    def _oldest(self, action: Action) -> str | None:
        """A callback on a counter's `dissatisfied_rating`: that counter's oldest open follow-up."""
        if action.rule != "dissatisfied_rating":
            return None
        mine = [(f.at, s) for s, f in self._open.items() if f.counter == action.subject]
        return min(mine)[1] if mine else None

    def snapshot(self) -> dict[str, Any]:
        return {"open": {s: asdict(f) for s, f in self._open.items()}}

    def restore(self, state: Mapping[str, Any]) -> None:
        self._open = {s: _Open(**f) for s, f in dict(state.get("open") or {}).items()}


def _build(cfg: FollowupConfig, ctx: RuleContext) -> list[FollowupRule]:
    return [FollowupRule(cfg)]


RULESET = RuleSet("followup", FollowupConfig, _build, topics=())
