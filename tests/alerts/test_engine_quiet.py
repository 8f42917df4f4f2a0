"""The engine at the writer's speed (issue 22): what a quiet reading no longer costs, and that the life
cycle is the same. A quiet reading (no alert about its meter or account) builds no Signal; a signal
that would change something (a current or recently resolved alert, or an active report earlier in the
same message) is still built and applied; the cost-control ledger writes a meter's register once per
batch; `prepare()` encodes its copy (an unencodable rule state is that rule's error, not the save's)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from ingest.alerts.config import AlertsSection
from ingest.alerts.costcontrol.ledger import Account, Ledger
from ingest.alerts.engine import Engine
from ingest.alerts.model import AlertState, Inbound, RuleContext, Signal
from ingest.alerts.rules import reading as r
from ingest.alerts.rules import rulesets
from ingest.alerts.store import Store
from ingest.topology import Topology
from protocols import messages as m

from .clock import T0_S, FakeClock

GW = "gw-q"
MIN = 60.0


def reading(dev: str, t: float, kwh: float, more: Iterable[m.Sample] = ()) -> Inbound:
    values: dict[str, m.Scalar] = {
        "voltage_a_v": 220.1,
        "current_a_a": 4.5,
        "power_active_kw": 1.0,
        "energy_import_kwh": kwh,
        "relay": "closed",
    }
    msg = m.Reading(schema=1, gw=GW, dev=dev, seq=1, ts=int(t * 1000), values=values, more=list(more))
    m.validate(msg)
    return Inbound(f"gridedge/v1/{GW}/{dev}/reading", GW, dev, msg)


def sample(t: float, kwh: float) -> m.Sample:
    return m.Sample(seq=2, ts=int(t * 1000), values={"energy_import_kwh": kwh, "power_active_kw": 1.0})


def build(tmp_path: Path, clock: FakeClock, accounts: int = 3) -> Engine:
    section = AlertsSection.model_validate({"state_path": str(tmp_path / "alerts.sqlite")})
    with Ledger(tmp_path / "costcontrol-ledger.sqlite") as ledger:  # the rule set's default path
        for i in range(accounts):
            ledger.upsert_account(Account(f"A-{i}", GW, f"m{i}", tariff=0.5, opening=500.0))
    store = Store(section.state_path)
    return Engine.build(section, Topology.empty(), rulesets(), clock=clock, store=store)


def test_quiet_readings_build_no_signal_and_change_nothing(tmp_path: Path) -> None:
    """Before: every reading raised ~7 inactive signals (register checks, balance ladder, relay), each
    with its message formatted, for nothing: 279,200 signals for the benchmark's 40,000 readings."""
    clock = FakeClock()
    engine = build(tmp_path, clock)
    for k in range(30):
        clock.t = T0_S + k * MIN
        for i in range(3):
            assert engine.on_message(reading(f"m{i}", clock.t, 1000.0 + k * 0.02)) == []
    assert engine.stats.messages == 90
    assert engine.stats.signals == 0
    assert engine.alerts() == []


def test_a_signal_that_changes_something_is_still_built(tmp_path: Path) -> None:
    """A register that goes down fires; the good readings after it are inactive signals the engine needs
    (they start the clearing clock) and still reach it; once resolved, the alert stays correctable."""
    clock = FakeClock()
    engine = build(tmp_path, clock)
    engine.on_message(reading("m0", clock.t, 1000.0))
    clock.t += MIN
    (change,) = engine.on_message(reading("m0", clock.t, 990.0))
    assert (change.kind, change.alert.rule) == ("firing", "register_decrease")
    before = engine.stats.signals
    clock.t += MIN
    assert engine.on_message(reading("m0", clock.t, 990.1)) == []
    assert engine.stats.signals > before  # the inactive register_decrease was applied
    alert = engine.get("register_decrease", f"{GW}/m0")
    assert alert is not None and alert.state is AlertState.FIRING  # clearing (reading_clear_s 1 h)
    clock.t += 2 * 3600
    changes = [c for c in engine.tick() if c.alert.rule == "register_decrease"]
    assert [c.kind for c in changes] == ["resolved"]
    # resolved: its key is among the recent ones, so a later inactive signal is still wanted
    assert engine.wants("register_decrease", f"{GW}/m0", False)
    assert not engine.wants("register_decrease", f"{GW}/m1", False)


def test_an_inactive_signal_after_an_active_one_in_the_same_message_is_applied(tmp_path: Path) -> None:
    """A spool replay: the first sample goes down (opens the alert), the second is fine. Both are built
    before the engine applies either, so the engine remembers what was reported active in this message
    (without that, the second would be skipped: no alert existed when the rule asked)."""
    clock = FakeClock()
    engine = build(tmp_path, clock)
    engine.on_message(reading("m0", clock.t - 10 * MIN, 1000.0))
    msg = reading("m0", clock.t - 2 * MIN, 990.0, more=[sample(clock.t - MIN, 990.05)])
    changes = engine.on_message(msg)
    assert [(c.kind, c.alert.rule) for c in changes] == [("firing", "register_decrease")]
    alert = engine.get("register_decrease", f"{GW}/m0")
    assert alert is not None
    track = engine._tracks[("register_decrease", f"{GW}/m0")]
    assert not track.active and track.clearing_since == clock.t - MIN


def test_a_rule_on_its_own_raises_every_signal(tmp_path: Path) -> None:
    """Without an engine (tests, tools) `wants` is `always`: the rule's reports are as they were."""
    rule = r.ReadingHealth(r.ReadingConfig.model_validate({}), RuleContext(Topology.empty()))
    rule.on_message(reading("m0", T0_S, 1000.0), T0_S)
    signals = list(rule.on_message(reading("m0", T0_S + MIN, 1000.02), T0_S + MIN))
    assert {s.rule for s in signals} == {"register_decrease", "register_runaway", "register_stopped",
                                         "zero_consumption"}  # fmt: skip
    assert not any(s.active for s in signals)


def test_the_ledger_writes_a_register_once_per_batch(tmp_path: Path) -> None:
    """Before: an INSERT (and a JSON encoding) per sample; now the batch's last register of each meter,
    written at flush, in the same transaction. Balances seen meanwhile are the charged ones."""
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.upsert_account(Account("A-1", GW, "m1", tariff=0.5, opening=100.0))
    writes: list[str] = []
    ledger._db.set_trace_callback(lambda sql: writes.append(sql) if "INTO registers" in sql else None)
    for k in range(10):
        ledger.record_sample(GW, "m1", int((T0_S + k * MIN) * 1000), {"energy_import_kwh": 1000.0 + k})
    assert writes == []
    assert ledger.balance("A-1") == pytest.approx(100.0 - 9 * 0.5)
    ledger.apply_payment("p-1", "A-1", 10.0, T0_S)  # empties the cache inside the batch
    assert ledger.balance("A-1") == pytest.approx(110.0 - 9 * 0.5)
    assert ledger.balances() == {"A-1": pytest.approx(110.0 - 9 * 0.5)}
    ledger.flush()
    assert len(writes) == 1
    ledger.close()
    other = sqlite3.connect(tmp_path / "ledger.sqlite")
    row = other.execute("SELECT ts_ms, consumed_kwh FROM registers WHERE account='A-1'").fetchone()
    assert row == (int((T0_S + 9 * MIN) * 1000), pytest.approx(9.0))
    again = Ledger(tmp_path / "ledger.sqlite")
    assert again.balance("A-1") == pytest.approx(110.0 - 9 * 0.5)
    again.close()


class Unencodable:
    ids: tuple[str, ...] = ("zero_consumption",)

    def on_message(self, inbound: Inbound, now: float) -> list[Signal]:
        return []

    def on_tick(self, now: float) -> list[Signal]:
        return []

    def snapshot(self) -> dict[str, Any]:
        return {"when": object()}

    def restore(self, state: Mapping[str, Any]) -> None: ...


def test_prepare_encodes_its_copy_and_a_rule_state_json_cannot_hold_is_that_rules_error(
    tmp_path: Path,
) -> None:
    """Before: prepare() deep-copied the state and the later save raised TypeError in the committer
    (the role stopped). Now the copy is the encoded text: what changes after prepare() is not in it,
    and the rule whose state does not encode is counted and logged, the others are saved."""
    clock = FakeClock()
    engine = build(tmp_path, clock)
    engine.rules.append(("bad:0", Unencodable()))
    engine.on_message(reading("m0", clock.t, 1000.0))
    prepared = engine.prepare()
    assert engine.stats.rule_errors == 1
    clock.t += MIN
    engine.on_message(reading("m0", clock.t, 990.0))  # changes the meter's state after prepare()
    engine.save(prepared)
    assert engine.store is not None
    state = engine.store.load()
    assert "bad:0" not in state.rules
    (key,) = [k for k in state.parts if k.startswith("reading:")]
    meter = state.parts[key][f"{GW}/m0"]
    assert meter["e_kwh"] == 1000.0


def test_the_engines_ledger_asks_sqlite_for_other_writers_once_per_batch(tmp_path: Path) -> None:
    """A meter without an account: before, every reading ran `PRAGMA data_version` (no write
    transaction was open to trust the cache in). Now once per batch; what another process commits is
    seen from the next batch on."""
    clock = FakeClock()
    engine = build(tmp_path, clock, accounts=1)
    ledger = next(r for _, r in engine.rules if hasattr(r, "ledger")).ledger
    pragmas: list[str] = []
    ledger._db.set_trace_callback(lambda sql: pragmas.append(sql) if "data_version" in sql else None)
    for k in range(50):
        engine.on_message(reading("m9", clock.t + k * MIN, 1000.0 + k))  # no account
    assert len(pragmas) == 1
    engine.prepare()  # the batch boundary: the ledger is flushed
    with Ledger(tmp_path / "costcontrol-ledger.sqlite") as other:  # `gridedge ingest billing import`
        other.upsert_account(Account("A-9", GW, "m9", tariff=0.5, opening=-5.0))
    clock.t += 60 * MIN
    changes = engine.on_message(reading("m9", clock.t, 1050.0))
    arrears = [(c.kind, c.alert.subject) for c in changes if c.alert.rule == "arrears"]
    assert arrears == [("firing", "account/A-9")]
    assert len(pragmas) == 3  # the next batch's first read, and its write transaction (a charge) opening
