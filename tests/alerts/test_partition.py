"""Partitioned alert engines (ingest/alerts/partition.py): the pure ownership rules, and, on the real
broker and InfluxDB, one engine against two partitions on the same stream and a repartition from 1 to
2 mid-stream (tests/alerts/partition_stream.py drives them)."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import pytest

from ingest.alerts.config import AlertsSection, PartitionSection
from ingest.alerts.handover import handover, partition_of
from ingest.alerts.partition import Partition, group_keys, owner
from ingest.alerts.role import AlertsRole
from ingest.alerts.store import Store
from ingest.config import IngestConfig
from ingest.topology import Topology
from protocols import topics
from protocols.errors import ConfigError

from .partition_stream import TOPOLOGY, Engines, run_stream

# ---- pure --------------------------------------------------------------------------------------------


def _topology(doc: dict[str, Any], tmp_path: Path) -> Topology:
    import yaml

    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(doc))
    return Topology.load(path)


def test_owner_is_crc32_of_the_group_key() -> None:
    for gw in ("gw-outage", "gw-hall", "gw-e", "gw-lit"):
        assert owner(gw, 2) == zlib.crc32(gw.encode()) % 2
    assert owner("gw-outage", 2) == 1 and owner("gw-hall", 2) == 0  # what the stream test relies on
    # m a multiple of n: new partition j of m holds only gateways of old partition j mod n
    keys = [f"gw-{i}" for i in range(500)]
    assert all(owner(k, 4) % 2 == owner(k, 2) for k in keys)


def test_gateways_sharing_an_area_or_hall_are_one_group(tmp_path: Path) -> None:
    topo = _topology(
        {
            "gateways": {"gw-z": {}, "gw-b": {}, "gw-m": {}, "gw-solo": {}},
            "areas": {"a1": {}},
            "devices": {
                "gw-z/m1": {"area": "a1"},
                "gw-b/m2": {"area": "a1"},
                "gw-b/pad": {"hall": "h1"},
                "gw-m/pad": {"hall": "h1"},
                "gw-solo/m3": {"area": ""},
            },
        },
        tmp_path,
    )
    assert group_keys(topo) == {"gw-z": "gw-b", "gw-b": "gw-b", "gw-m": "gw-b", "gw-solo": "gw-solo"}
    for count in (2, 3, 5):
        parts = [Partition(PartitionSection(index=i, count=count), topo) for i in range(count)]
        for gw in ("gw-z", "gw-b", "gw-m", "gw-solo", "gw-unknown"):
            assert sum(p.owns_gateway(gw) for p in parts) == 1, (count, gw)
        assert len({i for i, p in enumerate(parts) if p.owns_gateway("gw-z") or p.owns_gateway("gw-m")}) == 1


def test_deliveries_are_judged_on_the_topics_gateway_before_decoding() -> None:
    p1 = Partition(PartitionSection(index=1, count=2), Topology.empty())
    assert p1.wants(topics.reading_topic("gw-outage", "m1"), b"not even json")  # not decoded
    assert not p1.wants(topics.reading_topic("gw-hall", "m1"), b"")
    assert not p1.wants(topics.status_topic("gw-hall"), b"")
    # billing (applied once per id), decisions and what is not the contract's reach every partition
    assert p1.wants(topics.billing_topic("payment"), b'{"account": "A-9", "id": "P", "amount_cny": 1}')
    assert p1.wants("gridedge/v1/approve/abc", b"") and p1.wants("gridedge-test/sync/x", b"")
    assert p1.foreign_messages == 2


def test_signals_are_owned_by_label_subject_area_hall_or_account(tmp_path: Path) -> None:
    topo = Topology.load(_write(tmp_path, TOPOLOGY))
    p1 = Partition(PartitionSection(index=1, count=2), topo)

    def owns(subject: str, **labels: str) -> bool:
        return p1.owns_subject(subject, labels)

    assert owns("gw-outage/m1") and owns("gw-outage") and not owns("gw-hall/pad")
    assert owns("area/area-out") and owns("area/area-out/phase-A") and not owns("area/area-lit")
    assert not owns("hall/hall-main") and not owns("hall/hall-main/counter-2")
    assert owns("account/A-1")  # the topology's device with that account is behind gw-e
    assert not owns("account/A-2", gw="gw-hall")  # the rule's gw label places what the topology does not
    assert owns("something/unplaceable")  # kept: it came from a message this engine took


def test_partition_section(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="index 2 must be below count 2"):
        PartitionSection(index=2, count=2)
    section = AlertsSection.model_validate(
        {"state_path": str(tmp_path / "alerts.sqlite"), "partition": {"index": 1, "count": 4}}
    )
    assert section.partition is not None and section.partition.suffix == "-p1of4"
    assert section.partition.own_state_path(section.state_path) == tmp_path / "alerts-p1of4.sqlite"
    fixed = PartitionSection.model_validate(
        {"index": 0, "count": 2, "state_path": "mine.sqlite", "inherit_from": "alerts-p0of1.sqlite"}
    )
    assert fixed.own_state_path(tmp_path / "alerts.sqlite") == tmp_path / "mine.sqlite"
    assert fixed.inherited_states(tmp_path / "alerts.sqlite") == [tmp_path / "alerts-p0of1.sqlite"]
    assert partition_of(Path("alerts-p3of8.sqlite")) == PartitionSection(index=3, count=8)
    assert partition_of(Path("alerts.sqlite")) == PartitionSection(index=0, count=1)


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    import yaml

    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


# ---- real engines --------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("own_ledgers", [False, True], ids=["shared-ledger", "ledger-per-partition"])
async def test_two_partitions_raise_the_alerts_of_one_engine(
    mosquitto: Any, influxdb: Any, tmp_path: Path, own_ledgers: bool
) -> None:
    engines = Engines(mosquitto, influxdb, tmp_path, own_ledgers)
    try:
        ref = await engines.start("ref", None)
        parts = [await engines.start(f"p{i}", {"index": i, "count": 2}) for i in range(2)]
        await run_stream(engines)
    finally:
        await engines.close()
    expected = ref.changes
    kinds = {(rule, kind) for kind, rule, _ in expected}
    assert {("area_outage", "firing"), ("area_outage", "resolved"), ("hall_wait", "firing")} <= kinds
    assert {("hall_wait", "resolved"), ("arrears", "firing"), ("arrears", "resolved")} <= kinds
    assert sorted(parts[0].changes + parts[1].changes) == sorted(expected)
    assert sorted(parts[0].details + parts[1].details, key=repr) == sorted(ref.details, key=repr)
    for i, part in enumerate(parts):  # each raised only what it owns
        assert part.changes and all(owner(subject_gateway(s), 2) == i for _, _, s in part.changes)
        assert part.role.partition is not None and part.role.partition.foreign_messages > 0


def subject_gateway(subject: str) -> str:
    for key, gw in (("area/area-out", "gw-outage"), ("area/area-lit", "gw-lit"), ("hall/", "gw-hall")):
        if subject.startswith(key):
            return gw
    return "gw-e" if subject.startswith("account/") else subject.partition("/")[0]


LAYOUTS = [(1, 2, False), (1, 2, True), (2, 1, False), (2, 3, False)]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("n", "m", "own_ledgers"), LAYOUTS, ids=["1to2", "1to2-ledger-per-partition", "2to1", "2to3"]
)
async def test_repartition_loses_no_alert_and_raises_none_twice(
    mosquitto: Any, influxdb: Any, tmp_path: Path, n: int, m: int, own_ledgers: bool
) -> None:
    """Mid-stream (area outage and balance_low firing, a ticket waiting) n engines hand over to m: the
    new sessions exist first, the old engines stop, the new ones start from the old state files."""
    engines = Engines(mosquitto, influxdb, tmp_path, own_ledgers)
    inherit: dict[str, Any] = {"inherit_from": [f"alerts-p{i}of{n}.sqlite" for i in range(n)]}
    if own_ledgers:  # each new partition's ledger starts as a copy of its old partition's (m = k x n)
        inherit["inherit_ledger_from"] = f"ledger-p0of{n}.sqlite"
    new = [{"index": j, "count": m, **inherit} for j in range(m)]
    firing_at_switch: set[tuple[str, str]] = set()
    olds: list[Any] = []

    async def prepare() -> None:  # step 1: the new partitions' sessions exist before the old ones stop
        for j, partition in enumerate(new):
            await engines.open_session(f"new{j}", partition)

    async def switch() -> None:  # steps 2-3: stop the old engines, start the new ones from their state
        for i in range(n):
            run = await engines.stop(f"old{i}")
            olds.append(run)
            firing_at_switch.update(a.key for a in run.role.engine.alerts() if a.state.value == "firing")
        for j, partition in enumerate(new):
            await engines.start(f"new{j}", partition)

    try:
        ref = await engines.start("ref", None)
        for i in range(n):
            await engines.start(f"old{i}", {"index": i, "count": n})
        await run_stream(engines, prepare, switch)
        news = [engines.running[f"new{j}"] for j in range(m)]
        current = [{a.key for a in run.role.engine.alerts()} for run in news]
    finally:
        await engines.close()
    assert {("area_outage", "area/area-out"), ("balance_low", "account/A-1")} <= firing_at_switch
    before = [c for run in olds for c in run.changes]
    after = [c for run in news for c in run.changes]
    assert sorted(before + after) == sorted(ref.changes)  # none lost, none twice
    details = [d for run in [*olds, *news] for d in run.details]
    assert sorted(details, key=repr) == sorted(ref.details, key=repr)  # and each says the same
    assert not [c for c in after if c[0] == "firing" and (c[1], c[2]) in firing_at_switch]
    resolved_after = {(rule, subject) for kind, rule, subject in after if kind == "resolved"}
    assert ("area_outage", "area/area-out") in resolved_after  # handed over, then resolved by its owner
    assert all(not (a & b) for i, a in enumerate(current) for b in current[i + 1 :])


def _track(rule: str, subject: str, **labels: str) -> dict[str, Any]:
    alert = {"rule": rule, "subject": subject, "state": "firing", "severity": "major", "started_at": 1.0}
    return {"alert": {**alert, "fired_at": 2.0, "labels": labels}}


def _old_state(path: Path, meters: dict[str, Any]) -> None:
    """A state file as an engine of both gateways leaves it (gw-outage: partition 1 of 2, gw-hall: 0)."""
    store = Store(path)
    store.save(
        tracks={
            ("area_outage", "area/area-out"): _track("area_outage", "area/area-out"),
            ("hall_wait", "hall/hall-main"): _track("hall_wait", "hall/hall-main", gw="gw-hall"),
            ("balance_low", "account/A-1"): _track("balance_low", "account/A-1", gw="gw-e"),
        },
        rules={
            "outage:0": {"meters": meters, "reported": [["area_outage", "area/area-out"]], "tick": 7},
            "hall:0": {"hall-main": {"gw": "gw-hall", "waiting": {"101": 5.0}}},
        },
        parts={"costcontrol:0": ({"level:A-1": {"v": "warning"}, "relay:gw-hall/pad": {"v": {}}}, set())},
    )
    store.close()


def test_handover_takes_what_the_old_partition_owned_and_the_new_one_owns(tmp_path: Path) -> None:
    topo = Topology.load(_write(tmp_path, TOPOLOGY))
    _old_state(tmp_path / "alerts.sqlite", {"gw-outage/o1": {"last_seen": 1.0}, "gw-hall/pad": {"x": 1}})
    loaded = []
    for j in range(2):
        part = Partition(PartitionSection(index=j, count=2), topo)
        target = tmp_path / f"alerts-p{j}of2.sqlite"
        handover([tmp_path / "alerts.sqlite"], target, part, topo)
        store = Store(target)
        loaded.append(store.load())
        store.close()
    p0, p1 = loaded
    assert {t["alert"]["subject"] for t in p0.tracks} == {"hall/hall-main"}
    assert {t["alert"]["subject"] for t in p1.tracks} == {"area/area-out", "account/A-1"}
    assert p1.rules["outage:0"] == {
        "meters": {"gw-outage/o1": {"last_seen": 1.0}},
        "reported": [["area_outage", "area/area-out"]],
        "tick": 7,  # about no gateway: every partition keeps it
    }
    assert (
        p0.rules["outage:0"]["meters"] == {"gw-hall/pad": {"x": 1}} and p0.rules["outage:0"]["reported"] == []
    )
    assert p0.rules["hall:0"] == {"hall-main": {"gw": "gw-hall", "waiting": {"101": 5.0}}}
    assert p1.rules["hall:0"] == {}
    assert set(p0.parts["costcontrol:0"]) == {"relay:gw-hall/pad"} and set(p1.parts["costcontrol:0"]) == {
        "level:A-1"
    }


def test_a_merge_takes_each_entry_from_its_owner_not_a_stale_copy(tmp_path: Path) -> None:
    topo = Topology.load(_write(tmp_path, TOPOLOGY))
    # both were split from one engine and kept its memory of each other's meters, now stale
    _old_state(
        tmp_path / "alerts-p0of2.sqlite", {"gw-outage/o1": {"last_seen": 1.0}, "gw-hall/pad": {"x": 9}}
    )
    _old_state(
        tmp_path / "alerts-p1of2.sqlite", {"gw-outage/o1": {"last_seen": 99.0}, "gw-hall/pad": {"x": 1}}
    )
    merged = Partition(PartitionSection(index=0, count=1), topo)
    sources = [tmp_path / "alerts-p0of2.sqlite", tmp_path / "alerts-p1of2.sqlite"]
    handed = handover(sources, tmp_path / "alerts-p0of1.sqlite", merged, topo)
    assert handed.tracks == 3
    store = Store(tmp_path / "alerts-p0of1.sqlite")
    state = store.load()
    store.close()
    assert state.rules["outage:0"]["meters"] == {"gw-outage/o1": {"last_seen": 99.0}, "gw-hall/pad": {"x": 9}}
    assert state.rules["outage:0"]["reported"] == [["area_outage", "area/area-out"]]
    with pytest.raises(ConfigError, match="exists: a handover only starts a new state file"):
        handover(sources, tmp_path / "alerts-p0of1.sqlite", merged, topo)


async def test_a_reload_that_would_move_a_gateway_is_refused(tmp_path: Path, caplog: Any) -> None:
    path = _write(tmp_path, TOPOLOGY)
    doc = {
        "mqtt": {"host": "127.0.0.1", "port": 1},
        "topology": str(path),
        "alerts": {"state_path": str(tmp_path / "alerts.sqlite"), "partition": {"index": 1, "count": 2}},
    }
    role = AlertsRole(IngestConfig.model_validate(doc), Topology.load(path))
    try:
        assert role.partition is not None and role.partition.owns_gateway("gw-outage")
        before = role.topology
        # a meter of area-out behind gw-lit: one group keyed gw-lit, which hashes to partition 0
        linked = {**TOPOLOGY, "devices": {**TOPOLOGY["devices"], "gw-lit/l9": {"area": "area-out"}}}
        _write(tmp_path, linked)
        role.reload_topology()
        assert role.topology is before and "moves gateway(s) gw-outage" in caplog.text
        grown = {**TOPOLOGY, "devices": {**TOPOLOGY["devices"], "gw-outage/o9": {"area": "area-out"}}}
        _write(tmp_path, grown)
        role.reload_topology()
        assert role.topology is not before and ("gw-outage", "o9") in role.topology.devices
    finally:
        role.store.close()
        await role.writer.close()
