"""The work desk: operators' actions on alerts (ack, assign, arrived, note, close, callback) applied to
the engine's alerts, recorded in InfluxDB and re-published with the alert's work state.

Layer: ingest alert service helper (synchronous, no I/O: it returns the Changes to publish and keeps
the InfluxDB lines for the role to write). Must not: run the alert life cycle (the engine does; an
action changes only an alert's work fields, `actions.judge`), publish or write itself.

Each accepted action is one point of the measurement `alert_action` (the schema `gridedge report`
reads): tags `rule`, `subject`, `action`; string fields `by`, `note`, `crew`, `cause`, `outcome`,
`work_state` (the alert's work state after it); time = when the action was taken (its `ts`, else when
it arrived). An action on no known alert (none current, none recently resolved: another partition's,
or a typo) or one `judge` refuses is logged with the rule, subject and reason, and counted; it is not
recorded. Every action gets an answer on `gridedge/v1/alerts/action/result` (`AlertActionResult`:
accepted with the work state, or the reason of the refusal), except, in a partitioned engine, an action
about an alert it does not hold (another partition answers it). Who may act is the broker's business
(deploy/compose/mosquitto/acl: per verb).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from protocols import messages as m
from protocols import operations as ops

from ..lineproto import point
from .actions import Action, action_of, judge
from .model import Alert, Inbound
from .track import Change

__all__ = ["MEASUREMENT", "WorkDesk", "WorkStats", "action_line"]

log = logging.getLogger("ingest.alerts")

MEASUREMENT = "alert_action"
FUTURE_S = 300.0  # an action's `ts` may be this far ahead of the engine's clock (an operator's clock)


class Alerts(Protocol):
    """What the desk needs of the engine."""

    @property
    def clock(self) -> Callable[[], float]: ...

    def get(self, rule: str, subject: str) -> Alert | None: ...

    def amend(self, rule: str, subject: str, now: float) -> Change | None: ...


@dataclass
class WorkStats:
    actions: int = 0  # accepted and recorded
    refused: int = 0  # refused by the work-state rules (e.g. close while the condition holds)
    unknown: int = 0  # about no alert this engine knows


def action_line(action: Action, work_state: str, at: float) -> str:
    """The `alert_action` point of one accepted action."""
    tags = {"rule": action.rule, "subject": action.subject, "action": action.verb}
    fields = {
        "by": action.by,
        "note": action.note,
        "crew": action.crew,
        "cause": action.cause,
        "outcome": action.outcome,
        "work_state": work_state,
    }
    return point(MEASUREMENT, tags, fields, round(at * 1000))


class WorkDesk:
    def __init__(self, alerts: Alerts, *, partitioned: bool = False) -> None:
        self.alerts = alerts
        self._partitioned = partitioned  # it gets every action, mostly about other partitions' alerts
        self.stats = WorkStats()
        self._lines: list[str] = []
        self._results: list[bytes] = []

    def act(self, inbound: Inbound) -> list[Change]:
        """An operator's action (anything else: nothing): the alert's re-published state, if any."""
        action = action_of(inbound)
        if action is None:
            return []
        now = self.alerts.clock()
        at = action.at if action.at is not None else now
        alert = self.alerts.get(action.rule, action.subject)
        if alert is None:
            self.stats.unknown += 1
            if self._partitioned:  # the partition holding the alert answers it
                log.info(
                    "alerts: %s on %s %s: not this partition's alert",
                    action.verb,
                    action.rule,
                    action.subject,
                )
                return []
            self._refuse(action, now, "no such alert (current or recently resolved)")
            return []
        reason = "its time is in the future" if at > now + FUTURE_S else judge(alert, action, at)
        if reason is not None:
            self.stats.refused += 1
            self._refuse(action, now, reason)
            return []
        self.stats.actions += 1
        self._lines.append(action_line(action, alert.work, at))
        self._answer(action, now, work=alert.work)
        change = self.alerts.amend(action.rule, action.subject, now)
        return [] if change is None else [change]

    def _refuse(self, action: Action, now: float, reason: str) -> None:
        what = f"{action.verb} by {action.by} on {action.rule} {action.subject}"
        log.warning("alerts: %s refused: %s", what, reason)
        self._answer(action, now, reason=reason)

    def _answer(self, action: Action, now: float, *, work: str = "", reason: str = "") -> None:
        result = ops.AlertActionResult(
            schema=m.SCHEMA_VERSION,
            ts=round(now * 1000),
            action=action.verb,
            rule=action.rule,
            subject=action.subject,
            by=action.by,
            accepted=not reason,
            action_ts=None if action.at is None else round(action.at * 1000),
            work=work,
            reason=reason,
        )
        self._results.append(ops.encode_operation(result))

    def take_results(self) -> list[bytes]:
        """The answers (`gridedge/v1/alerts/action/result`) since the last call, in order (the role
        publishes them after the batch's alert changes)."""
        results, self._results = self._results, []
        return results

    def take_lines(self) -> list[str]:
        """The `alert_action` points recorded since the last call (the role writes them)."""
        lines, self._lines = self._lines, []
        return lines
