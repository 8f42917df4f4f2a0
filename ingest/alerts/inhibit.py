"""Inhibition: one alert per cause. What a firing cause explains is inhibited, not fired beside it.

Layer: ingest alert engine (pure, synchronous). Must not: publish, read the clock, look at rule state or
import the engine, rules or outputs. `Inhibitor` answers, for an alert about to fire, which alerts
could explain it (`sources`), and, for a cause that fires or resolves, which alerts it explains
(`explains`); `Inhibiting`, mixed into the engine, does the hold, inhibit, withdraw and release on the
engine's tracks (the engine's life cycle calls it when an alert is due to fire or resolves).

Like Alertmanager's inhibit rules, but evaluated inside the engine, so an inhibited alert never
publishes. `TABLE` says which source rule explains which target rules and how their subjects relate:

- `same`:    the same subject (one meter's device_offline explains its comm_fault and missed_reading);
- `area`:    the target's meter is in the source's transformer area (`area/{area}`, topology);
- `phase`:   the target's meter is on the source's phase of that area (`area/{area}/phase-{p}`; a
             three-phase meter on any of its phases);
- `gateway`: the target's device is behind the source gateway (`{gw}` explains `{gw}/{dev}`).

Why device_offline is the cause of a dead meter's three alerts: it is the gateway's own observation
(the meter stopped answering on its bus, the bus and the gateway being fine, since the gateway reports
it and polls the others), dated from the last successful poll; comm_fault is the ingest inferring the
same fact from afar (silence while the neighbours report) and missed_reading its consequence in the
data (a billing gap anything upstream could cause). Repairing the device clears all three; it is also,
with the default timings, the first to fire. Without a device_offline (a gateway not reporting health),
comm_fault explains missed_reading.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Final, Literal

from ..topology import Topology
from .model import Alert, AlertState, area_subject, gateway_subject, phase_subject
from .track import Change, Dirty, EngineStats, Track, copy_alert

__all__ = [
    "EXPLAINS_LISTED",
    "METER_EFFECTS",
    "SELF_TIMED",
    "TABLE",
    "Inhibiting",
    "Inhibition",
    "Inhibitor",
    "Key",
    "Verdict",
    "link",
]

Key = tuple[str, str]  # (rule, subject)
EXPLAINS_LISTED: Final = 20  # what a cause lists of the alerts it explains (a big area explains thousands)
Relation = Literal["same", "area", "phase", "gateway"]

# what a meter shows when its supply, its gateway or itself is gone
METER_EFFECTS: Final = (
    "missed_reading",
    "device_offline",
    "comm_fault",
    "meter_supply_lost",
    "zero_consumption",
)


# Targets whose rule already counts their delay from a cause's end: the outage rule judges comm_fault and
# meter_supply_lost per area, never raises them for an outage's members or an offline gateway's meters,
# and restarts a member's comm_fault delay when its outage ends (its `pending_s` is counted from the
# meter's last answer, not a hold the engine could restart). The engine only inhibits them.
SELF_TIMED: Final = frozenset({"comm_fault", "meter_supply_lost"})


@dataclass(frozen=True, slots=True)
class Inhibition:
    """While an alert of `source` fires, alerts of `targets` whose subject relates to its subject by
    `relation` are inhibited; once it resolves they may fire only after their own hold time counted
    from its end (the gap it explained does not count)."""

    source: str
    targets: tuple[str, ...]
    relation: Relation


TABLE: Final = (
    Inhibition("area_outage", METER_EFFECTS, "area"),
    Inhibition("phase_outage", METER_EFFECTS, "phase"),
    Inhibition("gateway_offline", METER_EFFECTS, "gateway"),
    Inhibition("device_offline", ("comm_fault", "missed_reading"), "same"),
    Inhibition("comm_fault", ("missed_reading",), "same"),
)

# what the engine knows of a source: its state, and the cause that inhibits it (None: none)
Lookup = Callable[[Key], tuple[AlertState, Key | None] | None]
# ("inhibit", cause): a cause fires, do not fire; ("hold", source): a possible cause is still pending
Verdict = tuple[Literal["inhibit", "hold"], Key]


def link(key: Key) -> str:
    """How an alert names another one: its topic tail under gridedge/v1/alerts/, `rule/subject`."""
    return f"{key[0]}/{key[1]}"


class Inhibitor:
    """The table, indexed both ways, and the topology that relates meters to areas and phases."""

    def __init__(self, topology: Topology, table: tuple[Inhibition, ...] = TABLE) -> None:
        self._topo = topology
        # the last span (start, end) of each resolved cause: a target that opens after it resolved
        # for a gap that began before it ended counts its hold from that end. Kept in memory only
        # (one entry per cause subject): after a restart such a target counts from its own start.
        self.spans: dict[Key, tuple[float, float]] = {}
        self._by_target: dict[str, list[Inhibition]] = {}
        self._targets_of: dict[str, set[str]] = {}
        for inh in table:
            for target in inh.targets:
                self._by_target.setdefault(target, []).append(inh)
            self._targets_of.setdefault(inh.source, set()).update(inh.targets)

    def set_topology(self, topology: Topology) -> None:
        self._topo = topology

    def is_source(self, rule: str) -> bool:
        return rule in self._targets_of

    def is_target(self, rule: str) -> bool:
        return rule in self._by_target

    def sources(self, target: Key) -> Iterator[Key]:
        """Every (rule, subject) whose firing alert would explain `target`."""
        rule, subject = target
        for inh in self._by_target.get(rule, ()):
            yield from self._related(inh, subject)

    def explains(self, source: Key, target: Key) -> bool:
        return target[0] in self._targets_of.get(source[0], ()) and source in self.sources(target)

    def verdict(self, target: Key, lookup: Lookup) -> Verdict | None:
        """Whether `target` may fire now: a firing cause (or a pending one that is itself inhibited:
        its own cause explains the target too) inhibits it; a pending one holds it until it fires or
        goes away, so that the order in which timers expire does not decide what the dispatcher sees."""
        held: Key | None = None
        for source in self.sources(target):
            found = lookup(source)
            if found is None:
                continue
            state, cause = found
            if state is AlertState.FIRING:
                return "inhibit", source
            if cause is not None:
                return "inhibit", cause
            held = held or source
        return None if held is None else ("hold", held)

    def resolved(self, source: Key, started_at: float, ended_at: float) -> None:
        if self.is_source(source[0]):
            self.spans[source] = (started_at, ended_at)

    def restarts(self, rule: str) -> bool:
        """Whether a target of `rule` counts its hold again from its cause's end (see SELF_TIMED)."""
        return rule not in SELF_TIMED

    def explained_until(self, target: Key, started_at: float, hold_s: float) -> float | None:
        """The end of the latest resolved cause whose span explains `target`'s gap: the gap began
        before the cause ended, and the target would not have fired before the cause began."""
        if not self.restarts(target[0]):
            return None
        until = None
        for source in self.sources(target):
            span = self.spans.get(source)
            if span is not None and started_at < span[1] and started_at + hold_s > span[0]:
                until = span[1] if until is None else max(until, span[1])
        return until

    def _related(self, inh: Inhibition, subject: str) -> Iterator[Key]:
        if inh.relation == "same":
            yield inh.source, subject
            return
        gw, sep, dev = subject.partition("/")
        if not sep or gw in ("area", "hall", "account"):
            return  # not a device subject
        if inh.relation == "gateway":
            yield inh.source, gateway_subject(gw)
            return
        info = self._topo.device(gw, dev)
        if info is None or not info.area:
            return
        if inh.relation == "area":
            yield inh.source, area_subject(info.area)
        else:
            for phase in info.phase if info.phase in ("A", "B", "C", "ABC") else "":
                yield inh.source, phase_subject(info.area, phase)


class Inhibiting:
    """The engine's side of inhibition (mixed into `Engine`): hold, inhibit, withdraw and release
    tracks as the table says. It keeps nothing of its own: the tracks, the dirty set and the counters
    are the engine's."""

    inhibitor: Inhibitor | None
    stats: EngineStats
    _tracks: dict[Key, Track]
    _dirty: Dirty

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
        out = copy_alert(a)
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
