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

Persistence (ingest/alerts/persist.py) is in two steps so the role can keep evaluating while a batch's
publishes are in flight: `prepare()` (synchronous, at a batch boundary) makes the rules' own stores
durable and encodes what changed; `save(prepared)` writes it once its changes are acknowledged;
`commit()` is both.

Speed (issue 22): a rule asks `wants(rule, subject, active)` before building a signal (model.Wants), so
the ~7 inactive signals a quiet reading raised, each with its message formatted, are not built; what
would change something (a current or recent alert, an active report earlier in the same message) is.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterable, Sequence

from ..topology import Topology
from .amend import Amending
from .config import AlertsSection, FlapSection
from .inhibit import Inhibiting, Inhibitor
from .model import Alert, AlertState, Inbound, Rule, RuleContext, RuleSet, Severity, Signal
from .persist import CONTROL_KEY, Persisting, Prepared
from .store import Store
from .track import Change, Control, Dirty, EngineStats, Track, copy_alert, linked, render_resolved

__all__ = ["CONTROL_KEY", "Change", "Control", "Engine", "EngineStats", "Prepared", "Track"]

log = logging.getLogger("ingest.alerts")


class Engine(Inhibiting, Persisting, Amending):
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
        self._dirty = Dirty()
        self._prepared_rules: dict[str, str] = {}
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
            return [Change("updated", linked(track), now)]
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
        return Change("firing", linked(track), now)

    def _resolve(self, k: tuple[str, str], track: Track, now: float, ended_at: float) -> Change:
        a = track.alert
        a.state = AlertState.RESOLVED
        a.ended_at = max(ended_at, a.started_at)
        track.resolved_at = now
        render_resolved(track)
        del self._tracks[k]
        self._dirty.tracks.discard(k)
        self._dirty.removed.add(k)
        self._dirty.history.append(track)
        self._remember(k, track)
        if not track.once:
            self._flip(k, now)
        self.stats.resolved += 1
        self._release(k, a)
        return Change("resolved", linked(track), now)

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
        changes.append(Change("firing", copy_alert(a), now))
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
        render_resolved(track)
        self._dirty.history.append(track)
        return [Change("resolved", copy_alert(a), track.resolved_at or self.clock())]

    # ---- flaps --------------------------------------------------------------------------------------

    def _flip(self, k: tuple[str, str], now: float) -> None:
        flips = self._recent_flips(k, now)
        flips.append(now)
        self._flips[k] = flips
        self._dirty.flaps.add(k)

    def _recent_flips(self, k: tuple[str, str], now: float) -> list[float]:
        return [t for t in self._flips.get(k, ()) if t > now - self.flap.window_s]
