"""The alert engine's records: a Change it publishes, the Track it keeps per (rule, subject), what
changed since the last save, its counters, and the Control collaborator it reports to.

Layer: ingest alert engine (pure data, no I/O). Must not: decide the life cycle (ingest/alerts/engine.py
does), publish, or read the clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from .model import Alert, Inbound, human_duration
from .store import alert_from_json, alert_to_json

ChangeKind = Literal["firing", "updated", "resolved"]
Key = tuple[str, str]  # (rule, subject)


@dataclass(frozen=True, slots=True)
class Change:
    """One publishable state change: `at` is when it happened (also the InfluxDB point's time)."""

    kind: ChangeKind
    alert: Alert
    at: float
    record: bool = True  # an `alert` point in InfluxDB (not an operator's action: Engine.amend)


@dataclass(slots=True)
class Track:
    """The engine's view of one (rule, subject): the alert and the raw condition behind it."""

    alert: Alert
    active: bool = True  # last reported raw condition
    clearing_since: float | None = None  # condition gone since (firing alerts only)
    pending_s: float = 0.0
    clear_s: float = 0.0
    once: bool = False
    resolved_at: float | None = None  # decision time, for resolved tracks (InfluxDB point time)
    resolve_message: str | None = None  # template of the message once resolved (Signal.resolve_message)
    inhibited_by: tuple[str, str] | None = None  # the firing cause that explains it (held pending)
    hold_from: float | None = None  # its cause resolved: pending_s counts from the cause's end
    explains: list[str] = field(default_factory=list)  # a cause: the first alerts it explained
    explained: int = 0  # a cause: how many alerts it explained

    def to_json(self) -> dict[str, Any]:
        return {
            "alert": alert_to_json(self.alert),
            "active": self.active,
            "clearing_since": self.clearing_since,
            "pending_s": self.pending_s,
            "clear_s": self.clear_s,
            "once": self.once,
            "resolved_at": self.resolved_at,
            "resolve_message": self.resolve_message,
            "inhibited_by": list(self.inhibited_by) if self.inhibited_by else None,
            "hold_from": self.hold_from,
            "explains": self.explains,
            "explained": self.explained,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Track:
        return cls(
            alert=alert_from_json(data["alert"]),
            active=bool(data.get("active", True)),
            clearing_since=data.get("clearing_since"),
            pending_s=float(data.get("pending_s", 0.0)),
            clear_s=float(data.get("clear_s", 0.0)),
            once=bool(data.get("once", False)),
            resolved_at=data.get("resolved_at"),
            resolve_message=data.get("resolve_message"),
            inhibited_by=_key(data.get("inhibited_by")),
            hold_from=data.get("hold_from"),
            explains=list(data.get("explains") or []),
            explained=int(data.get("explained", 0)),
        )


class Control(Protocol):
    """What acts on alert changes (the trip / reconnect policy, ingest/alerts/autocontrol.py)."""

    def on_message(self, inbound: Inbound, now: float) -> bool:
        """See every inbound message before the rules; True: it was the control's own (no rule sees it)."""
        ...

    def on_changes(self, changes: Sequence[Change], now: float) -> None: ...

    def on_tick(self, now: float) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, state: Mapping[str, Any]) -> None: ...


@dataclass
class EngineStats:
    messages: int = 0
    signals: int = 0
    fired: int = 0
    resolved: int = 0
    dropped_pending: int = 0
    rule_errors: int = 0
    damped: int = 0
    inhibited: int = 0  # alerts held back because a firing cause explains them
    withdrawn: int = 0  # of those, already firing ones taken back when their cause fired


@dataclass
class Dirty:
    tracks: set[tuple[str, str]] = field(default_factory=set)
    removed: set[tuple[str, str]] = field(default_factory=set)
    history: list[Track] = field(default_factory=list)
    flaps: set[tuple[str, str]] = field(default_factory=set)


def render_resolved(track: Track) -> None:
    if track.resolve_message is not None:
        a = track.alert
        a.message = track.resolve_message.replace("{duration}", human_duration(a.duration_s))


def _key(value: Any) -> tuple[str, str] | None:
    return (str(value[0]), str(value[1])) if value else None


def linked(track: Track) -> Alert:
    """The published copy: a cause lists what it explains (`inhibits`, the first EXPLAINS_LISTED)."""
    alert = copy_alert(track.alert)
    if track.explained:
        more = track.explained - len(track.explains)
        alert.labels["inhibits"] = ",".join(track.explains) + (f",+{more} more" if more > 0 else "")
    return alert


def copy_alert(alert: Alert) -> Alert:
    return replace(alert, labels=dict(alert.labels))
