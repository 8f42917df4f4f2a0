"""The alert engine: rules' raw Signals -> the alert life cycle `pending -> firing -> resolved`.

Layer: ingest alert engine (synchronous, no network I/O, no wall clock: time comes from the injected
`clock` callable, UNIX seconds). It persists through an optional `Store` (SQLite, local file) and
returns `Change`s; the role (ingest/alerts/role.py) hands those to the outputs. Must not: publish,
write InfluxDB or sleep.

Life cycle of one (rule, subject):
- an active Signal opens a PENDING alert (started_at = the signal's `started_at` or `at`); it FIRES once
  the condition has held `pending_s` (at once when 0), checked on every signal and every tick;
- a pending alert whose condition goes away before firing is dropped without a trace;
- an inactive Signal starts the clearing clock (since the signal's `ended_at` or `at`); a firing alert
  RESOLVES after `clear_s` without the condition coming back (hysteresis) with ended_at = when the
  condition went away, and its duration;
- flap damping: a subject that changed firing <-> resolved more than `flap.max_flips` times within
  `flap.window_s` needs `max(clear_s, flap.hold_s)` of quiet to resolve;
- `once` signals fire immediately and resolve by themselves `clear_s` later; they stay retrievable in
  `recent()` (and the store's history);
- repeated identical signals change nothing; a change of severity, message or start time of a firing
  alert is an `updated` Change (re-published); value-only changes are kept but not re-published;
- `started_at`/`ended_at` in a later Signal correct the alert (also a just-resolved one);
- an inactive Signal's `resolve_message` becomes the resolved alert's message (`{duration}` filled in
  from the final times, again after a correction); without one the firing message stays.

A rule raising an exception is logged and counted (`rule_errors`), never stops the engine.

Inhibition (ingest/alerts/inhibit.py, one alert per cause): an alert about to fire that a firing cause
explains stays pending with `inhibited_by` (counted: `inhibited`), one a pending cause may explain waits
for it; a cause that fires takes over what it explains (an explained alert that already fired after the
cause began is withdrawn: a resolved record with label `inhibited_by`, counted: `withdrawn`) and lists
it (label `inhibits`); once it resolves, what it explained may fire only after its own `pending_s`
counted from the cause's end.

Auto-control has one way in: the optional `Control` collaborator given at construction (`control=`, or
`Engine.build(control=factory)` when it needs the built rules). It sees every inbound message first
(and keeps the ones that are its own: an operator's decision), every evaluation's changes and every
tick; its state is persisted with the alerts under `CONTROL_KEY`.

Persistence is in two steps so the role can keep evaluating while a batch's publishes are in flight:
`prepare()` (synchronous, at a batch boundary) makes the rules' own stores durable and takes a copy of
what changed; `save(prepared)` writes that copy once its changes are acknowledged; `commit()` is both.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, Protocol

from ..topology import Topology
from .config import AlertsSection, FlapSection
from .inhibit import Inhibitor, link
from .model import (
    Alert,
    AlertState,
    Flushes,
    Inbound,
    Partitioned,
    Rule,
    RuleContext,
    RuleSet,
    Severity,
    Signal,
    human_duration,
)
from .store import Snapshot, Store, alert_from_json, alert_to_json, encode, encode_parts

log = logging.getLogger("ingest.alerts")

ChangeKind = Literal["firing", "updated", "resolved"]
RECENT = 1000  # resolved alerts kept in memory for `recent()`
CONTROL_KEY: Final = "autocontrol"  # the control's snapshot among the rules' (the key it always had)
EXPLAINS_LISTED = 20  # what a cause lists of the alerts it explains (a big area explains thousands)


@dataclass(frozen=True, slots=True)
class Change:
    """One publishable state change: `at` is when it happened (also the InfluxDB point's time)."""

    kind: ChangeKind
    alert: Alert
    at: float


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


Prepared = Snapshot  # what `Engine.prepare` hands the committer: encoded, so the engine may go on


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
class _Dirty:
    tracks: set[tuple[str, str]] = field(default_factory=set)
    removed: set[tuple[str, str]] = field(default_factory=set)
    history: list[Track] = field(default_factory=list)
    flaps: set[tuple[str, str]] = field(default_factory=set)


class Engine:
    """Feeds every Inbound to every rule, ticks them, and runs the alert life cycle on their Signals."""

    def __init__(
        self,
        rules: Sequence[tuple[str, Rule]],
        *,
        clock: Callable[[], float],
        store: Store | None = None,
        flap: FlapSection | None = None,
        inhibitor: Inhibitor | None = None,
        control: Control | None = None,
    ) -> None:
        self.rules = list(rules)  # (snapshot key, rule)
        self.control = control
        self.clock = clock
        self.store = store
        self.flap = flap or FlapSection()
        self.inhibitor = inhibitor
        self.stats = EngineStats()
        self._tracks: dict[tuple[str, str], Track] = {}
        self._recent: collections.OrderedDict[tuple[str, str], Track] = collections.OrderedDict()
        self._flips: dict[tuple[str, str], list[float]] = {}
        self._dirty = _Dirty()
        self._announced: set[tuple[str, str]] = set()  # reported active in this evaluation (wants)
        if store is not None:
            self._restore(store)

    @classmethod
    def build(
        cls,
        section: AlertsSection,
        topology: Topology,
        sets: Iterable[RuleSet],
        *,
        clock: Callable[[], float],
        store: Store | None = None,
        control: Callable[[Sequence[Rule]], Control] | None = None,
    ) -> Engine:
        """Build every rule set's rules from `section.rules` (validated) with a context bound to us;
        `control` makes the engine's Control from the built rules (the cost-control ledger)."""
        sets = list(sets)
        configs = section.rule_configs(sets)
        engine = cls([], clock=clock, store=None, flap=section.flap, inhibitor=Inhibitor(topology))
        ctx = RuleContext(
            topology=topology, firing=engine.firing, state_dir=section.state_path.parent, wants=engine.wants
        )
        for rs in sets:
            for index, rule in enumerate(rs.build(configs[rs.name], ctx)):
                engine.rules.append((f"{rs.name}:{index}:{','.join(rule.ids)}", rule))
        if control is not None:
            engine.control = control([rule for _, rule in engine.rules])
        if store is not None:
            engine.store = store
            engine._restore(store)
        return engine

    def set_topology(self, topology: Topology) -> None:
        """A reloaded topology: every rule that looks things up in it (`set_topology`) gets the new one."""
        if self.inhibitor is not None:
            self.inhibitor.set_topology(topology)
        for key, rule in self.rules:
            setter = getattr(rule, "set_topology", None)
            if setter is None:
                continue
            try:
                setter(topology)
            except Exception:
                self.stats.rule_errors += 1
                log.exception("rule %s: topology reload failed", key)

    # ---- queries ------------------------------------------------------------------------------------

    def firing(self, rule: str, subject: str) -> Alert | None:
        track = self._tracks.get((rule, subject))
        return track.alert if track is not None and track.alert.state is AlertState.FIRING else None

    def alerts(self) -> list[Alert]:
        """Current alerts (pending and firing)."""
        return [t.alert for t in self._tracks.values()]

    def recent(self) -> list[Alert]:
        """Resolved alerts, oldest first (bounded; the store keeps a longer history)."""
        return [t.alert for t in self._recent.values()]

    def get(self, rule: str, subject: str) -> Alert | None:
        """The current alert of (rule, subject), else its last resolved one."""
        track = self._tracks.get((rule, subject)) or self._recent.get((rule, subject))
        return track.alert if track is not None else None

    def wants(self, rule: str, subject: str, active: bool) -> bool:
        """The rules' `model.Wants`: whether a signal would be looked at (see there)."""
        k = (rule, subject)
        if active:
            self._announced.add(k)
            return True
        return k in self._tracks or k in self._recent or k in self._announced

    # ---- input --------------------------------------------------------------------------------------

    def on_message(self, inbound: Inbound) -> list[Change]:
        now = self.clock()
        self.stats.messages += 1
        changes: list[Change] = []
        if self.control is not None and self.control.on_message(inbound, now):
            return changes
        self._announced.clear()
        for key, rule in self.rules:
            try:
                signals = list(rule.on_message(inbound, now))
            except Exception:
                self.stats.rule_errors += 1
                log.exception("rule %s failed on %s", key, inbound.topic)
                continue
            if signals:
                changes += self.apply(signals, now)
        if self.control is not None and changes:
            self.control.on_changes(changes, now)
        return changes

    def tick(self) -> list[Change]:
        now = self.clock()
        changes: list[Change] = []
        self._announced.clear()
        for key, rule in self.rules:
            try:
                signals = list(rule.on_tick(now))
            except Exception:
                self.stats.rule_errors += 1
                log.exception("rule %s failed on tick", key)
                continue
            changes += self.apply(signals, now)
        for k in list(self._tracks):
            changes += self._advance(k, now)
        if self.control is not None:
            self.control.on_tick(now)
            if changes:
                self.control.on_changes(changes, now)
        return changes

    def apply(self, signals: Iterable[Signal], now: float) -> list[Change]:
        changes: list[Change] = []
        for s in signals:
            self.stats.signals += 1
            changes += self._signal(s, now)
        return changes

    # ---- the life cycle -----------------------------------------------------------------------------

    def _signal(self, s: Signal, now: float) -> list[Change]:
        k = (s.rule, s.subject)
        track = self._tracks.get(k)
        if s.once:
            return self._once(s, track, now) if s.active else []
        if not s.active:
            if track is None:
                return self._correct_resolved(s)
            return self._inactive(k, track, s, now)
        if track is None:
            track = self._open(s)
            return self._advance(k, now)
        return self._active(k, track, s, now)

    def _open(self, s: Signal) -> Track:
        alert = Alert(
            rule=s.rule,
            subject=s.subject,
            state=AlertState.PENDING,
            severity=Severity(s.severity),
            started_at=s.started_at if s.started_at is not None else s.at,
            value=s.value,
            message=s.message,
            labels=dict(s.labels),
        )
        track = Track(alert, pending_s=s.pending_s, clear_s=s.clear_s)
        k = alert.key
        self._tracks[k] = track
        self._dirty.tracks.add(k)
        self._dirty.removed.discard(k)
        return track

    def _active(self, k: tuple[str, str], track: Track, s: Signal, now: float) -> list[Change]:
        a = track.alert
        before = (a.severity, a.message, a.started_at, dict(a.labels), a.value)
        track.active = True
        track.clearing_since = None
        track.pending_s, track.clear_s = s.pending_s, s.clear_s
        a.severity = Severity(s.severity)
        a.message = s.message
        a.value = s.value
        a.labels = dict(s.labels)
        if s.started_at is not None:
            a.started_at = s.started_at
        after = (a.severity, a.message, a.started_at, a.labels, a.value)
        if after != before:
            self._dirty.tracks.add(k)
        if a.state is AlertState.PENDING:
            return self._advance(k, now)
        if after[:4] != before[:4]:
            return [Change("updated", _linked(track), now)]
        return []

    def _inactive(self, k: tuple[str, str], track: Track, s: Signal, now: float) -> list[Change]:
        a = track.alert
        if a.state is AlertState.PENDING:
            del self._tracks[k]
            self._dirty.tracks.discard(k)
            self._dirty.removed.add(k)
            self.stats.dropped_pending += 1
            return []
        gone = s.ended_at if s.ended_at is not None else s.at
        if track.active:
            track.clearing_since = gone  # the condition just went away
            self._dirty.tracks.add(k)
        elif s.ended_at is not None and track.clearing_since != s.ended_at:
            track.clearing_since = s.ended_at  # a better end time
            self._dirty.tracks.add(k)
        track.active = False
        track.clear_s = s.clear_s
        if s.resolve_message is not None and s.resolve_message != track.resolve_message:
            track.resolve_message = s.resolve_message
            self._dirty.tracks.add(k)
        if s.started_at is not None and s.started_at != a.started_at:
            a.started_at = s.started_at
            self._dirty.tracks.add(k)
        return self._advance(k, now)

    def _advance(self, k: tuple[str, str], now: float) -> list[Change]:
        """Time-driven transitions: pending -> firing, clearing -> resolved, once -> resolved."""
        track = self._tracks[k]
        a = track.alert
        if a.state is AlertState.PENDING:
            start = a.started_at if track.hold_from is None else max(a.started_at, track.hold_from)
            if track.active and now >= start + track.pending_s and not self._inhibited(k, track, now):
                withdrawn = self._explain(k, now)
                return [self._fire(k, track, now), *withdrawn]
            return []
        if track.once:
            if now >= (a.fired_at or now) + track.clear_s:
                return [self._resolve(k, track, now, ended_at=a.fired_at or now)]
            return []
        if track.active or track.clearing_since is None:
            return []
        hold = track.clear_s
        if len(self._recent_flips(k, now)) > self.flap.max_flips:
            hold = max(hold, self.flap.hold_s)
            if a.flaps == 0:
                self.stats.damped += 1
            a.flaps = len(self._flips.get(k, ()))
        if now >= track.clearing_since + hold:
            return [self._resolve(k, track, now, ended_at=track.clearing_since)]
        return []

    def _fire(self, k: tuple[str, str], track: Track, now: float) -> Change:
        a = track.alert
        a.state = AlertState.FIRING
        a.fired_at = now
        self._flip(k, now)
        self._dirty.tracks.add(k)
        self.stats.fired += 1
        return Change("firing", _linked(track), now)

    def _resolve(self, k: tuple[str, str], track: Track, now: float, ended_at: float) -> Change:
        a = track.alert
        a.state = AlertState.RESOLVED
        a.ended_at = max(ended_at, a.started_at)
        track.resolved_at = now
        _render_resolved(track)
        del self._tracks[k]
        self._dirty.tracks.discard(k)
        self._dirty.removed.add(k)
        self._dirty.history.append(track)
        self._remember(k, track)
        if not track.once:
            self._flip(k, now)
        self.stats.resolved += 1
        self._release(k, a)
        return Change("resolved", _linked(track), now)

    def _once(self, s: Signal, track: Track | None, now: float) -> list[Change]:
        changes: list[Change] = []
        k = (s.rule, s.subject)
        if track is not None:
            if track.alert.fired_at == s.at:
                return []  # the same instantaneous event again (a redelivery)
            changes.append(self._resolve(k, track, now, ended_at=now))
        last = self._recent.get(k)
        if last is not None and last.once and last.alert.fired_at == s.at:
            return changes
        track = self._open(s)
        track.once = True
        track.clear_s = s.clear_s
        a = track.alert
        a.state = AlertState.FIRING
        a.fired_at = s.at
        self.stats.fired += 1
        changes.append(Change("firing", _copy(a), now))
        return changes + self._advance(k, now)

    def _correct_resolved(self, s: Signal) -> list[Change]:
        """A late, better start or end time for an alert that has already resolved."""
        track = self._recent.get((s.rule, s.subject))
        if track is None or track.once:
            return []
        a = track.alert
        started = s.started_at if s.started_at is not None else a.started_at
        ended = s.ended_at if s.ended_at is not None else a.ended_at
        template = s.resolve_message if s.resolve_message is not None else track.resolve_message
        if (started, ended, template) == (a.started_at, a.ended_at, track.resolve_message):
            return []
        a.started_at, a.ended_at, track.resolve_message = started, ended, template
        _render_resolved(track)
        self._dirty.history.append(track)
        return [Change("resolved", _copy(a), track.resolved_at or self.clock())]

    # ---- inhibition (ingest/alerts/inhibit.py) ------------------------------------------------------

    def _inhibited(self, k: tuple[str, str], track: Track, now: float) -> bool:
        """Whether a cause holds back the alert of `k`, due to fire now."""
        inh = self.inhibitor
        if inh is None or not inh.is_target(k[0]):
            return False
        verdict = inh.verdict(k, self._cause_of)
        if verdict is not None:
            if verdict[0] == "inhibit" and track.inhibited_by != verdict[1]:
                self._mark(k, track, verdict[1])
            return True
        if track.inhibited_by is not None:  # its cause is gone without resolving (state lost)
            track.inhibited_by = None
            self._dirty.tracks.add(k)
        until = inh.explained_until(k, track.alert.started_at, track.pending_s)
        if until is not None and now < until + track.pending_s:
            track.hold_from = until  # its gap began in a cause that has since ended: count from that end
            self._dirty.tracks.add(k)
            return True
        return False

    def _cause_of(self, k: tuple[str, str]) -> tuple[AlertState, tuple[str, str] | None] | None:
        track = self._tracks.get(k)
        return None if track is None else (track.alert.state, track.inhibited_by)

    def _mark(self, k: tuple[str, str], track: Track, cause: tuple[str, str]) -> None:
        track.inhibited_by = cause
        self._dirty.tracks.add(k)
        self.stats.inhibited += 1
        source = self._tracks.get(cause)
        if source is not None:
            source.explained += 1
            if len(source.explains) < EXPLAINS_LISTED:
                source.explains.append(link(k))
            self._dirty.tracks.add(cause)

    def _explain(self, k: tuple[str, str], now: float) -> list[Change]:
        """A cause fires: what it explains is inhibited; what already fired since it began is withdrawn."""
        inh = self.inhibitor
        if inh is None or not inh.is_source(k[0]):
            return []
        began = self._tracks[k].alert.started_at
        changes: list[Change] = []
        for tk, t in list(self._tracks.items()):
            if t.inhibited_by is not None or t.once or not inh.explains(k, tk):
                continue
            if t.alert.state is AlertState.PENDING:
                self._mark(tk, t, k)
            elif (t.alert.fired_at or 0.0) >= began:
                changes.append(self._withdraw(tk, t, k, now))
        return changes

    def _withdraw(self, k: tuple[str, str], track: Track, cause: tuple[str, str], now: float) -> Change:
        a = track.alert
        out = _copy(a)
        out.state, out.ended_at = AlertState.RESOLVED, max(now, a.started_at)
        out.message = f"{a.message}; explained by {link(cause)}"
        out.labels["inhibited_by"] = link(cause)
        self._dirty.history.append(replace(track, alert=out, resolved_at=now))
        a.state, a.fired_at = AlertState.PENDING, None  # held again, as if it had never fired
        self._mark(k, track, cause)
        self.stats.withdrawn += 1
        return Change("resolved", out, now)

    def _release(self, k: tuple[str, str], alert: Alert) -> None:
        """A cause resolved: what it explained may fire after its own hold, counted from the end."""
        inh = self.inhibitor
        if inh is None or not inh.is_source(k[0]) or alert.ended_at is None:
            return
        inh.resolved(k, alert.started_at, alert.ended_at)
        for tk, t in self._tracks.items():
            if t.inhibited_by == k:
                t.inhibited_by = None
                t.hold_from = alert.ended_at if inh.restarts(tk[0]) else t.hold_from
                self._dirty.tracks.add(tk)

    # ---- flaps --------------------------------------------------------------------------------------

    def _flip(self, k: tuple[str, str], now: float) -> None:
        flips = self._recent_flips(k, now)
        flips.append(now)
        self._flips[k] = flips
        self._dirty.flaps.add(k)

    def _recent_flips(self, k: tuple[str, str], now: float) -> list[float]:
        return [t for t in self._flips.get(k, ()) if t > now - self.flap.window_s]

    def _remember(self, k: tuple[str, str], track: Track) -> None:
        self._recent.pop(k, None)
        self._recent[k] = track
        while len(self._recent) > RECENT:
            self._recent.popitem(last=False)

    # ---- persistence --------------------------------------------------------------------------------

    def commit(self, snapshots: bool = True) -> None:
        """Write what changed (and, with `snapshots`, every rule's state) in one transaction; rules
        with a store of their own make theirs durable first."""
        self.save(self.prepare(snapshots))

    def prepare(self, snapshots: bool = True) -> Prepared | None:
        """Make the rules' own stores durable and copy what changed since the last `prepare` (None
        without a store). A copy: the engine goes on evaluating while it waits for its acks."""
        for _, rule in self.rules:
            if isinstance(rule, Flushes):
                rule.flush()
        if self.store is None:
            self._dirty = _Dirty()
            return None
        d, self._dirty = self._dirty, _Dirty()
        snap = encode(
            tracks={k: self._tracks[k].to_json() for k in d.tracks if k in self._tracks},
            removed=d.removed - set(self._tracks),
            history=[t.to_json() for t in d.history],
            flaps={k: self._flips.get(k, []) for k in d.flaps},
        )
        if snapshots:
            for key, rule in self._stateful():
                try:
                    snap.rules[key] = json.dumps(rule.snapshot())
                    if isinstance(rule, Partitioned):
                        snap.parts[key] = encode_parts(*rule.take_changes())
                except Exception:
                    self.stats.rule_errors += 1
                    log.exception("rule %s: snapshot failed", key)
        return snap

    def save(self, prepared: Prepared | None) -> None:
        """Write a `prepare`d copy in one transaction (in the order they were prepared)."""
        if prepared is not None and self.store is not None:
            self.store.write(prepared)

    def _stateful(self) -> list[tuple[str, Any]]:
        """The rules and the control, each with the key its state is stored under."""
        found: list[tuple[str, Any]] = list(self.rules)
        if self.control is not None:
            found.append((CONTROL_KEY, self.control))
        return found

    def _restore(self, store: Store) -> None:
        state = store.load()
        self._tracks = {}
        for data in state.tracks:
            track = Track.from_json(data)
            self._tracks[track.alert.key] = track
        for data in state.history[-RECENT:]:
            track = Track.from_json(data)
            self._remember(track.alert.key, track)
        self._flips = {k: list(v) for k, v in state.flaps.items()}
        for key, rule in self._stateful():
            snap = state.rules.get(key)
            if snap is None:
                continue
            try:
                rule.restore(snap)
                if isinstance(rule, Partitioned):
                    rule.restore_parts(state.parts.get(key, {}))
            except Exception:
                self.stats.rule_errors += 1
                log.exception("rule %s: restore failed; it starts empty", key)
        if self._tracks:
            log.info("alerts: restored %d current alert(s) from %s", len(self._tracks), store.path)


def _render_resolved(track: Track) -> None:
    if track.resolve_message is not None:
        a = track.alert
        a.message = track.resolve_message.replace("{duration}", human_duration(a.duration_s))


def _key(value: Any) -> tuple[str, str] | None:
    return (str(value[0]), str(value[1])) if value else None


def _linked(track: Track) -> Alert:
    """The published copy: a cause lists what it explains (`inhibits`, the first EXPLAINS_LISTED)."""
    alert = _copy(track.alert)
    if track.explained:
        more = track.explained - len(track.explains)
        alert.labels["inhibits"] = ",".join(track.explains) + (f",+{more} more" if more > 0 else "")
    return alert


def _copy(alert: Alert) -> Alert:
    return replace(alert, labels=dict(alert.labels))
