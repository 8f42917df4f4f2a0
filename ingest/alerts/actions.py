"""Operators' actions on alerts as the alert engine sees them, and the work state they move.

Layer: ingest alert model (pure: no I/O, no clock). Must not: import the engine, stores or outputs.
Rules (the outage's arrival clock, the rating follow-up) read actions through `action_of`.

An action arrives on `gridedge/v1/alerts/action/{verb}` (protocols.operations.AlertAction) and enters
the engine as an `Inbound` whose message is a plain mapping (the model's fields plus `action`: the
verb), like the other operator inputs; `action_of` gives it back typed.

Work states, in order: `open` -> `acknowledged` -> `assigned` -> `on_site` -> `closed`. An action never
moves the state back (a late `ack` of an assigned alert is recorded, the state stays `assigned`).
`close` is refused while the alert's condition holds (pending or firing): such an alert can only be
acknowledged, assigned, reached and noted. `callback` closes a dissatisfied rating's follow-up.
Nothing but `note` is taken on a closed alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, get_args

import msgspec

from protocols import messages as m
from protocols import operations as ops
from protocols import topics
from protocols.errors import ContractError

from .model import Alert, AlertState, Inbound

__all__ = ["ACTION_PREFIX", "CALLBACK_RULES", "Action", "action_of", "decode", "judge"]

ACTION_PREFIX: Final = topics.action_topic("")  # gridedge/v1/alerts/action/
WORK_ORDER: Final[tuple[m.WorkState, ...]] = get_args(m.WorkState)
CALLBACK_RULES: Final = frozenset({"rating_followup", "dissatisfied_rating"})
_TARGET: Final[dict[str, m.WorkState]] = {
    "ack": "acknowledged",
    "assign": "assigned",
    "arrived": "on_site",
    "close": "closed",
    "callback": "closed",
}


@dataclass(frozen=True, slots=True)
class Action:
    """One operator's action: `at` (UNIX s) is when it was taken, None when the payload has no `ts`."""

    verb: str
    rule: str
    subject: str
    by: str
    at: float | None = None
    note: str = ""
    crew: str = ""
    cause: str = ""
    outcome: str = ""


def decode(topic: str, payload: bytes) -> Inbound:
    """A delivery on an action topic as the engine sees it; ContractError naming the field otherwise."""
    where = topics.parse_topic(topic)
    if where.kind is not topics.TopicKind.ALERT_ACTION:
        raise ContractError("topic", f"{topic!r} is not an alert action topic")
    action = topics.decode_payload(where, payload)
    assert isinstance(action, ops.AlertAction)
    return Inbound(topic, "", "", {"action": where.rule, **msgspec.structs.asdict(action)})


def action_of(inbound: Inbound) -> Action | None:
    """The operator's action an Inbound carries, None for anything else."""
    d = inbound.message
    if not inbound.topic.startswith(ACTION_PREFIX) or not isinstance(d, Mapping):
        return None
    ts = d.get("ts")
    return Action(
        verb=str(d["action"]),
        rule=str(d["rule"]),
        subject=str(d["subject"]),
        by=str(d["by"]),
        at=None if ts is None else ts / 1000,
        note=str(d.get("note") or ""),
        crew=str(d.get("crew") or ""),
        cause=str(d.get("cause") or ""),
        outcome=str(d.get("outcome") or ""),
    )


def judge(alert: Alert, action: Action, at: float) -> str | None:
    """Apply `action` (taken at `at`) to `alert`'s work fields; the reason when it is refused (then
    nothing changes)."""
    if alert.work == "closed" and action.verb != "note":
        return "its work is already closed"
    if action.verb == "close" and alert.state is not AlertState.RESOLVED:
        return f"its condition still holds ({alert.state.value}): acknowledge it; close it once resolved"
    if action.verb == "callback" and action.rule not in CALLBACK_RULES:
        return f"a callback answers a dissatisfied rating ({', '.join(sorted(CALLBACK_RULES))})"
    target = _TARGET.get(action.verb)
    if target is not None and WORK_ORDER.index(target) > WORK_ORDER.index(alert.work):
        alert.work = target
    if action.verb in ("assign", "arrived") and action.crew:
        alert.assignee = action.crew
    if action.verb == "arrived" and alert.arrived_at is None:
        alert.arrived_at = at  # the first crew on site is what the arrival promise counts
    return None
