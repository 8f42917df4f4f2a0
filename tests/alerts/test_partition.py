"""Partitioned alert engines (ingest/alerts/partition.py): the pure ownership rules, and, on the real
broker and InfluxDB, one engine against two partitions on the same stream and a repartition from 1 to
2 mid-stream (tests/alerts/partition_stream.py drives them)."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import pytest

from ingest.alerts.config import AlertsSection, PartitionSection
from ingest.alerts.partition import Partition, group_keys, owner
from ingest.topology import Topology
from protocols import topics

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
    fixed = PartitionSection(
        index=0, count=2, state_path=Path("mine.sqlite"), inherit_from=Path("old.sqlite")
    )
    assert fixed.own_state_path(tmp_path / "alerts.sqlite") == tmp_path / "mine.sqlite"
    assert fixed.inherited_state(tmp_path / "alerts.sqlite") == tmp_path / "old.sqlite"


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
    for i, part in enumerate(parts):  # each raised only what it owns
        assert part.changes and all(owner(subject_gateway(s), 2) == i for _, _, s in part.changes)
        assert part.role.partition is not None and part.role.partition.foreign_messages > 0


def subject_gateway(subject: str) -> str:
    for key, gw in (("area/area-out", "gw-outage"), ("area/area-lit", "gw-lit"), ("hall/", "gw-hall")):
        if subject.startswith(key):
            return gw
    return "gw-e" if subject.startswith("account/") else subject.partition("/")[0]


@pytest.mark.integration
@pytest.mark.parametrize("own_ledgers", [False, True], ids=["shared-ledger", "ledger-per-partition"])
async def test_repartition_from_one_to_two_loses_no_alert_and_raises_none_twice(
    mosquitto: Any, influxdb: Any, tmp_path: Path, own_ledgers: bool
) -> None:
    engines = Engines(mosquitto, influxdb, tmp_path, own_ledgers)
    inherit = {"inherit_from": "alerts-p0of1.sqlite"}
    if own_ledgers:  # each new partition's ledger starts as a copy of the old engine's
        inherit["inherit_ledger_from"] = "ledger-p0of1.sqlite"
    new = [{"index": i, "count": 2, **inherit} for i in range(2)]
    firing_at_switch: set[tuple[str, str]] = set()

    async def prepare() -> None:  # step 1: the new partitions' sessions exist before the old one stops
        for i, partition in enumerate(new):
            await engines.open_session(f"new{i}", partition)

    async def switch() -> None:  # steps 2-3: stop the old engine, start the new ones from its state
        old_run = await engines.stop("old")
        firing_at_switch.update(a.key for a in old_run.role.engine.alerts() if a.state.value == "firing")
        for i, partition in enumerate(new):
            await engines.start(f"new{i}", partition)

    try:
        ref = await engines.start("ref", None)
        old = await engines.start("old", {"index": 0, "count": 1})
        await run_stream(engines, prepare, switch)
        news = [engines.running[f"new{i}"] for i in range(2)]
        owned = [{a.key for a in run.role.engine.alerts()} for run in news]
    finally:
        await engines.close()
    assert {("area_outage", "area/area-out"), ("balance_low", "account/A-1")} <= firing_at_switch
    after = news[0].changes + news[1].changes
    assert sorted(old.changes + after) == sorted(ref.changes)  # none lost, none twice
    assert not [c for c in after if c[0] == "firing" and (c[1], c[2]) in firing_at_switch]
    resolved_after = {(rule, subject) for kind, rule, subject in after if kind == "resolved"}
    assert ("area_outage", "area/area-out") in resolved_after  # inherited, then resolved by its owner
    assert not owned[0] & owned[1]
