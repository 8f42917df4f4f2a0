"""The alert state file: a round trip of alerts, history, flap counters and rule snapshots; bounds."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from ingest.alerts.engine import Track
from ingest.alerts.model import Alert, AlertState, Severity
from ingest.alerts.store import Store, alert_from_json, alert_to_json

T0 = 1_763_800_000.0


def alert(subject: str = "gw-1/m1", state: AlertState = AlertState.FIRING, fired: float = T0) -> Alert:
    return Alert(
        rule="device_offline",
        subject=subject,
        state=state,
        severity=Severity.MAJOR,
        started_at=T0 - 10,
        fired_at=fired,
        value=1.5,
        message="offline",
        labels={"gw": "gw-1", "area": "a"},
        flaps=2,
    )


def test_alert_json_round_trip() -> None:
    a = alert()
    assert alert_from_json(alert_to_json(a)) == a


def test_store_round_trip_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = Store(path)
    firing = Track(alert(), active=False, clearing_since=T0 + 5, pending_s=60, clear_s=30)
    done = Track(alert("gw-1/m2", AlertState.RESOLVED), resolved_at=T0 + 100)
    store.save(
        tracks={firing.alert.key: firing.to_json()},
        history=[done.to_json()],
        flaps={firing.alert.key: [T0, T0 + 1]},
        rules={"devices:0:device_offline": {"offline": {"gw-1/m1": T0}}},
    )
    store.close()
    store = Store(path)
    state = store.load()
    assert [Track.from_json(t) for t in state.tracks] == [firing]
    assert [Track.from_json(t) for t in state.history] == [done]
    assert state.flaps == {("device_offline", "gw-1/m1"): [T0, T0 + 1]}
    assert state.rules == {"devices:0:device_offline": {"offline": {"gw-1/m1": T0}}}
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # resolving removes the current row
    store.save(removed=[firing.alert.key])
    assert store.load().tracks == []
    store.close()


def test_history_is_bounded_and_a_correction_updates_its_row(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite", history=5)
    for i in range(8):
        t = Track(alert(f"gw-1/m{i}", AlertState.RESOLVED, fired=T0 + i), resolved_at=T0 + i + 1)
        store.save(history=[t.to_json()])
    assert [a.subject for a in store.history(10)] == [f"gw-1/m{i}" for i in (7, 6, 5, 4, 3)]
    corrected = Track(alert("gw-1/m7", AlertState.RESOLVED, fired=T0 + 7), resolved_at=T0 + 8)
    corrected.alert.ended_at = T0 + 7.5
    store.save(history=[corrected.to_json()])
    newest = store.history(10)
    assert len(newest) == 5 and newest[0].ended_at == T0 + 7.5
    store.close()


def test_a_failed_save_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.save(rules={"a": {"n": 1}})
    bad = {"b": {"not json": object()}}
    with pytest.raises(TypeError):
        store.save(rules={"a": {"n": 2}, **bad})  # type: ignore[dict-item]
    assert store.load().rules == {"a": {"n": 1}}
    store.close()


async def test_a_commit_writes_the_meters_that_changed_and_a_restart_has_them_all(tmp_path: Path) -> None:
    """Per-meter rule state is written as parts: a commit after one reading writes that meter's part,
    not all of them (20,000 meters were 5.6 MB and 0.65 s per commit), and a restart restores every one."""
    from ingest.alerts.role import AlertsRole
    from ingest.alerts.rules.reading import ReadingHealth
    from ingest.config import IngestConfig
    from ingest.subscriber import Delivery
    from protocols import topics
    from tests.ingest.helpers import T0, reading

    cfg = IngestConfig.model_validate({"alerts": {"state_path": str(tmp_path / "alerts.sqlite")}})

    def deliver(role: AlertsRole, dev: str, seq: int) -> None:
        payload = reading("gw-1", dev, seq, T0 + seq * 60_000)
        role._process(Delivery(1, seq, 1, topics.reading_topic("gw-1", dev), payload, 0.0))

    def meters(role: AlertsRole) -> dict[str, Any]:
        [rule] = [r for _, r in role.engine.rules if isinstance(r, ReadingHealth)]
        return {k: dataclasses.asdict(v) for k, v in rule.meters.items()}

    role = AlertsRole(cfg)
    for i in range(300):
        deliver(role, f"m{i:04d}", 1)
    role.engine.commit()
    before = role.store._db.total_changes
    deliver(role, "m0007", 2)
    role.engine.commit()
    written = role.store._db.total_changes - before
    assert written <= 10, written  # one meter part and the rules' small heads, not 300 meters
    heads = dict(
        role.store._db.execute("SELECT name, length(state) FROM rule_state WHERE name LIKE 'reading:%'")
    )
    assert list(heads.values()) and max(heads.values()) < 100  # {"first_tick": ...}; meters are parts
    kept = meters(role)
    role.store.close()
    await role.writer.close()

    again = AlertsRole(cfg)
    try:
        assert meters(again) == kept and len(kept) == 300
    finally:
        again.store.close()
        await again.writer.close()
