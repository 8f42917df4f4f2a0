"""The alert engine's side of operators' actions (mixed into `Engine`): an alert whose work fields an
action changed (ingest/alerts/work.py) is saved and re-published.

Layer: ingest alert engine. Must not: decide the work state (work.py does), the life cycle, publish or
read the clock.
"""

from __future__ import annotations

import collections

from .model import AlertState
from .track import Change, Dirty, Key, Track, copy_alert, linked


class Amending:
    """Mixed into `Engine` (its current and recently resolved tracks, what changed since the save)."""

    _tracks: dict[Key, Track]
    _recent: collections.OrderedDict[Key, Track]
    _dirty: Dirty

    def amend(self, rule: str, subject: str, now: float) -> Change | None:
        """The alert `get(rule, subject)` returns was changed in place by an operator's action: save
        it; the Change that re-publishes it (`updated` while it fires, its `resolved` record otherwise;
        `record=False`: the action is its own InfluxDB point), None for a pending alert (not published
        yet) or no alert at all."""
        k = (rule, subject)
        track = self._tracks.get(k)
        if track is not None:
            self._dirty.tracks.add(k)
            firing = track.alert.state is AlertState.FIRING
            return Change("updated", linked(track), now, record=False) if firing else None
        track = self._recent.get(k)
        if track is None:
            return None
        self._dirty.history.append(track)
        return Change("resolved", copy_alert(track.alert), now, record=False)
