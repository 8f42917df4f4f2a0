"""Partitioned alert engines (`alerts.partition: {index: i, count: n}`): which share of the stream one
engine owns, so that n engines, each an ordinary persistent MQTT subscriber, split the alert work with
nothing in gridedge coordinating them.

Layer: ingest alert partitioning (pure lookups on the topology and the cost-control ledger it is given).
Must not: publish, read the clock, talk to the other engines or decide alerts.

The key is the **gateway**. A gateway serves one transformer area or one business hall, and every
aggregate rule needs all members of its aggregate in one engine (an area outage every meter of the
area, the hall rules every device of the hall, gateway_offline the gateway's own status and all its
devices, whose alerts it inhibits). Gateways the topology links (devices of one area or hall behind
several gateways) form one group, keyed by the group's smallest gateway id; an unlinked gateway, or one
not in the topology, is its own group. A group belongs to partition `crc32(key) % n` (zlib.crc32 of the
UTF-8 key: stable across processes, Python versions and machines, unlike `hash()`).

What has no gateway in its topic reaches every partition: billing records are applied once per id,
so with the one shared ledger (the default: `alerts.rules.costcontrol.ledger_path` is next to the
state files) each is applied once, and a partition with a ledger of its own (that path set per
partition) gets every account, as the CSV import gives it; the ladder they move is raised by the
partition of the account's meter only. Operators' approve/reject decisions: only the engine holding
the action acts on one.

Ignoring is cheap: the gateway is the third topic level, looked up in a dict before anything is
decoded. Behind that, every signal a rule raises passes `owns_subject` (labels' `gw`, else the subject's
gateway, area, hall or account): rules that judge what they never heard (topology meters expected to
report, every ledger account on the timer, rule memory inherited from a larger partition) cannot
raise another partition's alert.

Changing n (docs/production.md, "Repartitioning the alert engines"): each new engine's state file is
handed over from the old ones (ingest/alerts/handover.py); `PartitionedEngine.own` then forgets any
current alert about another partition's subject without publishing anything (its owner has it).
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from protocols.errors import ConfigError
from protocols.topics import PREFIX

from ..topology import DeviceInfo, Topology
from .config import PartitionSection
from .engine import Change, Engine
from .model import Signal, subject_kind

__all__ = ["Partition", "PartitionedEngine", "copy_state", "group_keys", "owner"]

_DEVICE_TOPIC = f"{PREFIX}/"
_NOT_GATEWAYS = frozenset({"billing", "approve", "reject", "alerts"})  # PREFIX/{these}/...


def owner(key: str, count: int) -> int:
    """The partition of a group key (documented above; tools outside gridedge can compute it too)."""
    return zlib.crc32(key.encode()) % count


def group_keys(topology: Topology) -> dict[str, str]:
    """Every gateway the topology names -> its group key: the smallest gateway id among the gateways
    linked to it by a shared area or hall."""
    parent: dict[str, str] = {gw: gw for gw in topology.sites}

    def find(gw: str) -> str:
        parent.setdefault(gw, gw)
        while parent[gw] != gw:
            parent[gw] = parent[parent[gw]]
            gw = parent[gw]
        return gw

    first: dict[str, str] = {}  # "area:x" / "hall:y" -> the first gateway seen with it
    for (gw, _), info in topology.devices.items():
        find(gw)
        for place in _places(info):
            other = first.setdefault(place, gw)
            a, b = find(gw), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {gw: find(gw) for gw in parent}


def _places(info: DeviceInfo) -> list[str]:
    """The aggregates a device belongs to: its area and its hall."""
    return [f"{kind}:{name}" for kind, name in (("area", info.area), ("hall", info.hall)) if name]


class Partition:
    """One engine's share: `wants` (a delivery, before decoding), `owns_subject`, `share` (the topology
    the rules get). Built from the full topology; `set_topology` on every reload."""

    def __init__(self, section: PartitionSection, topology: Topology) -> None:
        self.index, self.count = section.index, section.count
        # the cost-control ledger's account lookup (autocontrol.ledger_of), set once the rules exist
        self.account_of: Callable[[str], Any] = lambda _: None
        self.foreign_messages = 0  # deliveries left to another partition
        self.foreign_signals = 0  # signals of a rule about another partition's subject, dropped
        self._owns: dict[str, bool] = {}
        self._subjects: dict[str, bool] = {}
        self.set_topology(topology)

    def set_topology(self, topology: Topology) -> None:
        """Take a reloaded topology (one `moved_by` found nothing wrong with)."""
        self.topology = topology
        self._groups = group_keys(topology)
        self._owns, self._subjects = {}, {}
        self._area_gw: dict[str, str] = {}
        self._hall_gw: dict[str, str] = {}
        self._account_gw: dict[str, str] = {}
        for (gw, _), info in sorted(topology.devices.items()):
            if info.area:
                self._area_gw.setdefault(info.area, gw)
            if info.hall:
                self._hall_gw.setdefault(info.hall, gw)
            if info.account:
                self._account_gw.setdefault(info.account, gw)

    def moved_by(self, topology: Topology) -> list[str]:
        """The gateways seen so far that `topology` would give to another partition (linked anew into a
        group that hashes elsewhere, or unlinked): taking it needs the repartition procedure."""
        trial = Partition(PartitionSection(index=self.index, count=self.count), topology)
        return sorted(gw for gw, owned in self._owns.items() if trial.owns_gateway(gw) != owned)

    # ---- ownership ----------------------------------------------------------------------------------

    def owns_gateway(self, gw: str) -> bool:
        owned = self._owns.get(gw)
        if owned is None:
            owned = self._owns[gw] = owner(self._groups.get(gw, gw), self.count) == self.index
        return owned

    def account_gateway(self, account: str) -> str | None:
        """The gateway of an account's meter: the cost-control ledger's, else the topology's; or None."""
        known = self.account_of(account)
        return str(known.gw) if known is not None else self._account_gw.get(account)

    def wants(self, topic: str, payload: bytes) -> bool:
        """Whether this engine evaluates a delivery: a gateway's topic is judged on its third level
        alone, before anything is decoded. Anything else is taken: billing records (applied once per
        id, so a shared ledger takes each once and a partition's own ledger gets every account, as
        the CSV import gives it; the ladder they move is then raised by the account's partition
        only, see `owns_subject`), operators' decisions, and what does not parse (refused where it is
        decoded)."""
        if topic.startswith(_DEVICE_TOPIC):
            gw = topic[len(_DEVICE_TOPIC) :].partition("/")[0]
            if gw not in _NOT_GATEWAYS and not self.owns_gateway(gw):
                self.foreign_messages += 1
                return False
        return True

    def owns_subject(self, subject: str, labels: Mapping[str, str]) -> bool:
        """Whether an alert's subject is ours: its `gw` label, else the gateway its subject names or
        the topology / ledger places it behind. One the partition cannot place is kept (it came from a
        message this engine took)."""
        owned = self._subjects.get(subject)
        if owned is None:
            gw = labels.get("gw") or self._subject_gateway(subject)
            if gw is None:
                return True  # not remembered: an account may yet be created with its meter
            owned = self._subjects[subject] = self.owns_gateway(gw)
        return owned

    def _subject_gateway(self, subject: str) -> str | None:
        kind = subject_kind(subject)
        name = subject.split("/")[1] if "/" in subject else ""
        if kind in ("device", "gateway"):
            return subject.partition("/")[0]
        if kind in ("area", "phase"):
            return self._area_gw.get(name)
        if kind in ("hall", "counter"):
            return self._hall_gw.get(name)
        return self.account_gateway(name) if kind == "account" else None

    def gateway_of(self, key: str) -> str | None:
        """The gateway a key of rule memory is about: a subject (`gw/dev`, `area/x`, `hall/y`,
        `account/z`), a `kind:` prefix before one (`relay:gw/dev`), or a bare gateway, area, hall or
        account name, looked up in that order; a bare name nobody knows is taken for a gateway."""
        kind, sep, rest = key.partition(":")
        if sep and "/" not in kind:
            key = rest
        if "/" in key or key in self._groups:
            return self._subject_gateway(key)
        for places in (self._area_gw, self._hall_gw):
            if key in places:
                return places[key]
        return self.account_gateway(key) or key

    # ---- what the rules see -------------------------------------------------------------------------

    def share(self, topology: Topology) -> Topology:
        """The topology of the owned gateways only: rules that expect topology meters to report, or
        judge every area on the timer, work on this engine's share, not the whole city."""
        devices = {k: v for k, v in topology.devices.items() if self.owns_gateway(k[0])}
        areas = {v.area for v in devices.values() if v.area}
        return Topology._build(  # the same constructor Topology.load ends in
            {gw: site for gw, site in topology.sites.items() if self.owns_gateway(gw)},
            {name: info for name, info in topology.areas.items() if name in areas},
            devices,
            topology.source,
        )


class PartitionedEngine(Engine):
    """The engine of one partition: the life cycle sees only the signals about what it owns. (A hook
    on `apply`, the one door every rule's signals pass through; build it with `PartitionedEngine.build`
    and then `own(partition)`.)"""

    partition: Partition | None = None

    def own(self, partition: Partition) -> int:
        """From now on drop what another partition owns, starting with the current alerts restored
        (or inherited) from a state file: forgotten without a change published, their owner has them.
        Returns how many were forgotten."""
        self.partition = partition
        foreign = [k for k, t in self._tracks.items() if not partition.owns_subject(k[1], t.alert.labels)]
        for k in foreign:
            del self._tracks[k]
            self._dirty.tracks.discard(k)
            self._dirty.removed.add(k)
        return len(foreign)

    def apply(self, signals: Iterable[Signal], now: float) -> list[Change]:
        if self.partition is None:
            return super().apply(signals, now)
        signals = list(signals)
        kept = [s for s in signals if self.partition.owns_subject(s.subject, s.labels)]
        self.partition.foreign_signals += len(signals) - len(kept)
        return super().apply(kept, now)


def copy_state(source: Path, target: Path) -> None:
    """A consistent copy of an SQLite state file (its WAL included) through SQLite's backup API."""
    if not source.exists():
        raise ConfigError([f"alerts.partition.inherit_ledger_from: {source} does not exist"])
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    partial.replace(target)
