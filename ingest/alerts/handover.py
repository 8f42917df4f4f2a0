"""Handing alert state over when the partition count changes: the state file of new partition j of m is
built from the state files of the old partitions (i of n), taking from each what old partition i owned
and new partition j owns.

Layer: ingest alert state (reads the old state files and writes the new one through `Store`, once,
before the engine starts). Must not: publish, read the clock or touch the old files.

What is handed over: current alerts (pending and firing, with their inhibition links), resolved
history, flap counters, and the rules' memory. Alerts are attributed by their `gw` label or subject.
Rule memory is generic JSON; an entry is attributed by (first) a `gw` field of its value, else its key
or, in a list, the item (a `[rule, subject]` pair, a subject, a gateway) read as `Partition.gateway_of`
reads it. An entry that names no gateway (a timestamp, a counter) is kept by every new partition from
the first old one that has it. So a split (m a multiple of n) gives new partition j the share of old
partition j mod n, and a merge the union of the old shares, both without the stale copies a partition
keeps of what it no longer owns (its memory as of an earlier split).

An old file's partition is read from its name: `...-p{i}of{n}.sqlite`; a name without it is a single
engine's (0 of 1).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocols.errors import ConfigError

from ..topology import Topology
from .config import PartitionSection
from .partition import Partition
from .store import Store

__all__ = ["Handed", "handover", "partition_of"]

_SUFFIX = re.compile(r"-p(\d+)of(\d+)$")
Keep = Callable[[str | None], bool]


def partition_of(path: Path) -> PartitionSection:
    """The partition a state file belongs to, from its name (`alerts-p1of4.sqlite`: 1 of 4)."""
    found = _SUFFIX.search(path.stem)
    if found is None:
        return PartitionSection(index=0, count=1)
    return PartitionSection(index=int(found.group(1)), count=int(found.group(2)))


@dataclass
class Handed:
    """What `handover` wrote: alerts, history rows, rule memory entries, per old file."""

    tracks: int = 0
    history: int = 0
    entries: int = 0
    sources: list[str] = field(default_factory=list)


def handover(
    sources: Sequence[Path],
    target: Path,
    new: Partition,
    topology: Topology,
    *,
    account_of: Callable[[str], Any] = lambda _: None,
    history: int = 10_000,
) -> Handed:
    """Write `target` (which must not exist) from `sources` for partition `new`; ConfigError naming
    `alerts.partition` when a source is missing or the target exists."""
    if target.exists():
        raise ConfigError([f"alerts.partition: {target} exists: a handover only starts a new state file"])
    out = _State()
    handed = Handed()
    for path in sources:
        if not path.exists():
            raise ConfigError([f"alerts.partition.inherit_from: {path} does not exist"])
        old = Partition(partition_of(path), topology)
        old.account_of = account_of

        def keep(gw: str | None, old: Partition = old) -> bool:
            return gw is None or (old.owns_gateway(gw) and new.owns_gateway(gw))

        store = Store(path, history)
        try:
            out.take(store, old, keep)
        finally:
            store.close()
        handed.sources.append(path.name)
    written = Store(target, history)
    try:
        written.save(
            tracks=out.tracks, history=out.history, flaps=out.flaps, rules=out.rules, parts=out.parts
        )
    finally:
        written.close()
    handed.tracks, handed.history = len(out.tracks), len(out.history)
    handed.entries = out.entries
    return handed


class _State:
    """The new state file's content, gathered from the old ones."""

    def __init__(self) -> None:
        self.tracks: dict[tuple[str, str], dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []
        self.flaps: dict[tuple[str, str], list[float]] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.parts: dict[str, tuple[dict[str, dict[str, Any]], set[str]]] = {}
        self.entries = 0

    def take(self, store: Store, old: Partition, keep: Keep) -> None:
        state = store.load()
        for track in state.tracks:
            if keep(_alert_gateway(old, track)):
                alert = track["alert"]
                self.tracks[(alert["rule"], alert["subject"])] = track
        self.history += [t for t in state.history if keep(_alert_gateway(old, t))]
        for (rule, subject), times in state.flaps.items():
            if keep(old.gateway_of(subject)):
                self.flaps[(rule, subject)] = times
        for name, snapshot in state.rules.items():
            self.rules[name] = _merge(self.rules.get(name), _share(snapshot, old, keep))
        for name, parts in state.parts.items():
            changed, _ = self.parts.setdefault(name, ({}, set()))
            for key, value in parts.items():
                if key not in changed and keep(_entry_gateway(old, key, value)):
                    changed[key] = value
                    self.entries += 1


def _alert_gateway(p: Partition, track: dict[str, Any]) -> str | None:
    alert = track["alert"]
    return str(alert.get("labels", {}).get("gw") or "") or p.gateway_of(alert["subject"])


def _entry_gateway(p: Partition, key: str, value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("gw"), str) and value["gw"]:
        return str(value["gw"])
    return p.gateway_of(key)


def _item_gateway(p: Partition, item: Any) -> str | None:
    if isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item):
        return p.gateway_of(item[1])  # a (rule, subject) pair
    if isinstance(item, str):
        return p.gateway_of(item)
    if isinstance(item, dict) and isinstance(item.get("gw"), str):
        return str(item["gw"])
    return None  # a number, a timestamp: about no gateway


def _share(snapshot: dict[str, Any], p: Partition, keep: Keep) -> dict[str, Any]:
    """A rule's snapshot without the entries of gateways `keep` refuses. Its top level holds either
    sections (a dict of entries, a list of items) or entries (a dict carrying `gw`)."""
    out: dict[str, Any] = {}
    for name, value in snapshot.items():
        if isinstance(value, dict) and "gw" in value:
            if keep(_entry_gateway(p, name, value)):
                out[name] = value
        elif isinstance(value, dict):
            out[name] = {k: v for k, v in value.items() if keep(_entry_gateway(p, k, v))}
        elif isinstance(value, list):
            out[name] = [item for item in value if keep(_item_gateway(p, item))]
        else:
            out[name] = value
    return out


def _merge(into: dict[str, Any] | None, share: dict[str, Any]) -> dict[str, Any]:
    """Two old partitions' shares of one rule's memory (disjoint but for entries about no gateway,
    which the first share keeps)."""
    if into is None:
        return share
    for name, value in share.items():
        have = into.get(name)
        if isinstance(have, dict) and isinstance(value, dict) and "gw" not in value:
            into[name] = {**value, **have}
        elif isinstance(have, list) and isinstance(value, list):
            seen = {json.dumps(x, sort_keys=True) for x in have}
            into[name] = have + [x for x in value if json.dumps(x, sort_keys=True) not in seen]
        elif name not in into:
            into[name] = value
    return into
