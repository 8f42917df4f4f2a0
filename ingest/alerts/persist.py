"""The alert engine's persistence (mixed into `Engine`): what changed since the last save, encoded at
a batch boundary (`prepare`) and written once its changes are acknowledged (`save`); the state restored
at start; the resolved alerts kept in memory for `recent()`.

Layer: ingest alert engine. Must not: decide the life cycle, publish or read the clock. The store is a
local SQLite file (ingest/alerts/store.py), written synchronously.

Why `prepare` encodes: the role keeps evaluating while a batch's publishes are in flight, so what it
saves later must be a copy; the JSON text is that copy (it used to be a deep copy of the dicts, then
encoded at the write: ~5 % of the engine's time per reading).
"""

from __future__ import annotations

import collections
import json
import logging
from typing import Any, Final

from .model import Flushes, Partitioned, Rule
from .store import Snapshot, Store, encode, encode_parts
from .track import Control, Dirty, EngineStats, Key, Track

log = logging.getLogger("ingest.alerts")

RECENT: Final = 1000  # resolved alerts kept in memory for `recent()`
CONTROL_KEY: Final = "autocontrol"  # the control's snapshot among the rules' (the key it always had)
Prepared = Snapshot  # what `prepare` hands the committer: encoded, so the engine may go on


class Persisting:
    """Mixed into `Engine` (its rules, control, store, tracks, flaps and counters)."""

    rules: list[tuple[str, Rule]]
    control: Control | None
    store: Store | None
    stats: EngineStats
    _tracks: dict[Key, Track]
    _recent: collections.OrderedDict[Key, Track]
    _flips: dict[Key, list[float]]
    _dirty: Dirty
    _prepared_rules: dict[str, str]  # each rule's snapshot as last prepared

    def _remember(self, k: Key, track: Track) -> None:
        self._recent.pop(k, None)
        self._recent[k] = track
        while len(self._recent) > RECENT:
            self._recent.popitem(last=False)

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
            self._dirty = Dirty()
            return None
        d, self._dirty = self._dirty, Dirty()
        snap = encode(
            tracks={k: self._tracks[k].to_json() for k in d.tracks if k in self._tracks},
            removed=d.removed - set(self._tracks),
            history=[t.to_json() for t in d.history],
            flaps={k: self._flips.get(k, []) for k in d.flaps},
        )
        if snapshots:
            for key, rule in self._stateful():
                try:
                    text = json.dumps(rule.snapshot())
                    if self._prepared_rules.get(key) != text:  # unchanged: the store has it (a row a batch)
                        snap.rules[key] = self._prepared_rules[key] = text
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
