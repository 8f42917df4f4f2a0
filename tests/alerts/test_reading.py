"""Reading-health rules in compressed time: each rule id fires on a bad scenario and stays quiet on a
good one; a rule restored from its snapshot carries on."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from ingest.alerts.model import Inbound, RuleContext, Severity, Signal
from ingest.alerts.rules import reading as r
from ingest.topology import Topology
from protocols import messages as m

GW = "gw-t"
HOME, SHOP, MILL = "000000000001", "000000000002", "000000000003"
T0 = 1_700_006_400.0  # 2023-11-15 00:00 UTC+8: a local midnight
DAY = 86400.0
TOPOLOGY = f"""
gateways: {{{GW}: {{site: s1}}}}
areas: {{area-1: {{region: urban}}}}
devices:
  {GW}/{HOME}: {{area: area-1, phase: A, account: "A-1"}}
  {GW}/{SHOP}: {{area: area-1, phase: B, account: "A-2", customer_class: commercial}}
  {GW}/{MILL}: {{area: area-1, phase: ABC, account: "A-3", customer_class: industrial}}
  {GW}/hall-1: {{hall: hall-main}}
"""


@pytest.fixture
def topology(tmp_path: Path) -> Topology:
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    return Topology.load(path)


def make(topology: Topology, **cfg: Any) -> r.ReadingHealth:
    rules = r.RULESET.build(r.ReadingConfig(**cfg), RuleContext(topology))
    assert len(rules) == 1
    rule: r.ReadingHealth = rules[0]
    return rule


def sample(ts: float, source: m.Source = "live", seq: int = 0, **values: float) -> m.Sample:
    return m.Sample(seq=seq, ts=int(ts * 1000), values=dict(values), source=source)


def reading(ts: float, dev: str = HOME, more: Iterable[m.Sample] = (), **values: float) -> Inbound:
    msg = m.Reading(schema=1, gw=GW, dev=dev, seq=1, ts=int(ts * 1000), values=dict(values), more=list(more))
    m.validate(msg)
    return Inbound(topic=f"gridedge/v1/{GW}/{dev}/reading", gw=GW, dev=dev, message=msg)


def of(signals: Iterable[Signal], rule: str, dev: str = HOME) -> list[Signal]:
    return [s for s in signals if s.rule == rule and s.subject == f"{GW}/{dev}"]


def last(signals: Iterable[Signal], rule: str, dev: str = HOME) -> Signal:
    found = of(signals, rule, dev)
    assert found, f"no {rule} signal"
    return found[-1]


def feed(rule: r.ReadingHealth, inbound: Inbound) -> list[Signal]:
    assert isinstance(inbound.message, m.Reading)
    return list(rule.on_message(inbound, inbound.message.ts / 1000))


# ---- missed_reading


def test_missed_reading_fires_after_the_window_and_back_fill_recovers_it(topology: Topology) -> None:
    rule = make(topology, interval_s=900, window_factor=3)
    feed(rule, reading(T0, energy_import_kwh=100.0))
    assert not last(rule.on_tick(T0 + 2000), "missed_reading").active  # inside 45 min
    fired = [s for s in of(rule.on_tick(T0 + 3000), "missed_reading") if s.subject == f"{GW}/{HOME}"]
    assert fired[0].active and fired[0].value == 3000 and fired[0].started_at == T0
    assert fired[0].labels["area"] == "area-1" and fired[0].labels["customer_class"] == "residential"
    # the meter comes back with the missed quarter-hours back-filled from its load profile
    backfill = [sample(T0 + k * 900, "backfilled", seq=k, energy_import_kwh=100 + k) for k in range(1, 4)]
    got = feed(rule, reading(T0 + 3600, more=backfill, energy_import_kwh=104.0))
    final, resolved = of(got, "missed_reading")
    assert final.active and "back-fill recovered" in final.message and "3 samples" in final.message
    assert not resolved.active and resolved.ended_at == T0 + 900


def test_missed_reading_resolves_without_recovery_when_the_hole_stays(topology: Topology) -> None:
    rule = make(topology)
    feed(rule, reading(T0, energy_import_kwh=100.0))
    assert last(rule.on_tick(T0 + 3 * 3600), "missed_reading").active is True
    frozen = [sample(T0 + 3600, "frozen", seq=2, energy_import_kwh=101.0)]
    got = feed(rule, reading(T0 + 4 * 3600, more=frozen, energy_import_kwh=104.0))
    final, resolved = of(got, "missed_reading")
    assert "not recovered" in final.message and "1 back-filled" in final.message and final.value == 3 * 3600
    assert not resolved.active and resolved.ended_at == T0 + 3600


def test_missed_reading_quiet_while_readings_keep_coming(topology: Topology) -> None:
    rule = make(topology, interval_by_class={"commercial": 60})
    for k in range(10):
        feed(rule, reading(T0 + k * 900, energy_import_kwh=100.0 + k))
        feed(rule, reading(T0 + k * 900, dev=SHOP, energy_import_kwh=5.0 + k))
        feed(rule, reading(T0 + k * 900, dev=MILL, energy_import_kwh=5.0 + k))
        assert not any(s.active for s in rule.on_tick(T0 + k * 900 + 100))
    # a commercial meter on a 60 s interval is missed after 3 minutes, a residential one is not
    late = {s.subject: s.active for s in rule.on_tick(T0 + 9 * 900 + 200)}
    assert late == {f"{GW}/{HOME}": False, f"{GW}/{SHOP}": True, f"{GW}/{MILL}": False}


def test_topology_meter_that_never_reports_is_missed(topology: Topology) -> None:
    rule = make(topology)
    assert not any(s.active for s in rule.on_tick(T0))
    active = {s.subject for s in rule.on_tick(T0 + 3000) if s.active}
    assert active == {f"{GW}/{HOME}", f"{GW}/{SHOP}", f"{GW}/{MILL}"}  # not the hall device
    assert not make(topology, expect_topology_meters=False).on_tick(T0)


# ---- register_decrease / register_runaway


def test_register_decrease_fires_beyond_tolerance(topology: Topology) -> None:
    rule = make(topology)
    feed(rule, reading(T0, energy_import_kwh=100.0, power_active_kw=1.0))
    assert not last(feed(rule, reading(T0 + 900, energy_import_kwh=99.995)), "register_decrease").active
    got = last(feed(rule, reading(T0 + 1800, energy_import_kwh=97.0)), "register_decrease")
    assert got.active and got.value == pytest.approx(2.995) and got.severity is Severity.MAJOR
    assert not last(feed(rule, reading(T0 + 2700, energy_import_kwh=97.2)), "register_decrease").active


def test_register_runaway_against_power_times_time(topology: Topology) -> None:
    rule = make(topology)  # 3x plus 0.5 kWh
    feed(rule, reading(T0, energy_import_kwh=100.0, power_active_kw=2.0))
    # 2 kW for 15 min = 0.5 kWh; 1.5 kWh is within 3x + floor (2.0)
    ok = feed(rule, reading(T0 + 900, energy_import_kwh=101.5, power_active_kw=2.0))
    assert not last(ok, "register_runaway").active
    bad = last(
        feed(rule, reading(T0 + 1800, energy_import_kwh=111.5, power_active_kw=2.0)), "register_runaway"
    )
    assert bad.active and bad.value == pytest.approx(10.0)
    # a long gap cannot be judged from spot power
    assert not of(
        feed(rule, reading(T0 + 9 * 3600, energy_import_kwh=150.0, power_active_kw=0.1)), "register_runaway"
    )


# ---- register_stopped


def test_register_stopped_under_load(topology: Topology) -> None:
    rule = make(topology, stopped_window_s=3600)
    got: list[Signal] = []
    for k in range(6):
        got += of(
            feed(rule, reading(T0 + k * 900, energy_import_kwh=100.0, power_active_kw=1.5)),
            "register_stopped",
        )
    assert [s.active for s in got] == [False, False, False, False, True]
    assert got[-1].started_at == T0 + 900
    moving = feed(rule, reading(T0 + 6 * 900, energy_import_kwh=100.4, power_active_kw=1.5))
    assert not last(moving, "register_stopped").active


def test_register_unchanged_without_load_is_not_stopped(topology: Topology) -> None:
    rule = make(topology)
    for k in range(12):
        idle = reading(T0 + k * 900, energy_import_kwh=100.0, power_active_kw=0.0, current_a_a=0.05)
        assert not any(s.active for s in of(feed(rule, idle), "register_stopped"))
    # currents alone show load
    rule = make(topology)
    feed(rule, reading(T0, energy_import_kwh=100.0, current_a_a=8.0))
    states = [
        last(
            feed(rule, reading(T0 + k * 900, energy_import_kwh=100.0, current_a_a=8.0)), "register_stopped"
        ).active
        for k in range(1, 7)
    ]
    assert states == [False, False, False, False, True, True]


# ---- zero_consumption


def test_zero_consumption_after_n_days(topology: Topology) -> None:
    rule = make(topology, zero_days=3)
    feed(rule, reading(T0, energy_import_kwh=50.0))
    states = [
        last(feed(rule, reading(T0 + d * DAY / 2, energy_import_kwh=50.0)), "zero_consumption").active
        for d in range(1, 9)
    ]
    assert states == [False, False, False, False, False, True, True, True]
    assert not last(feed(rule, reading(T0 + 5 * DAY, energy_import_kwh=51.0)), "zero_consumption").active


def test_small_daily_use_is_not_zero_consumption(topology: Topology) -> None:
    rule = make(topology, zero_days=3)
    feed(rule, reading(T0, energy_import_kwh=50.0))
    for d in range(1, 10):
        got = last(feed(rule, reading(T0 + d * DAY, energy_import_kwh=50.0 + d * 0.5)), "zero_consumption")
        assert not got.active


# ---- consumption_swing


def days_of_use(rule: r.ReadingHealth, dev: str, uses: list[float]) -> list[Signal]:
    """One reading at each local midnight (the daily freeze), so day k used uses[k]."""
    kwh, out = 1000.0, []
    out += feed(rule, reading(T0, dev=dev, energy_import_kwh=kwh))
    for k, use in enumerate(uses, start=1):
        kwh += use
        out += feed(rule, reading(T0 + k * DAY, dev=dev, energy_import_kwh=kwh))
    return of(out, "consumption_swing", dev)


def test_consumption_swing_per_class(topology: Topology) -> None:
    # residential 50 %: 10 -> 16 kWh (+60 %) fires; commercial 30 %: 10 -> 12 (+20 %) does not
    home = days_of_use(make(topology), HOME, [10.0, 16.0, 16.5])
    assert [s.active for s in home] == [True, False]
    assert home[0].value == pytest.approx(60.0) and "residential" in home[0].message
    shop = days_of_use(make(topology), SHOP, [10.0, 12.0, 8.0])
    assert [s.active for s in shop] == [False, True]  # 12 -> 8 is -33 %
    mill = days_of_use(make(topology), MILL, [100.0, 250.0, 900.0])
    assert [s.active for s in mill] == [False, True]  # +150 % is fine for industrial, +260 % is not
    strict = days_of_use(make(topology, swing_threshold={"industrial": 1.0}), MILL, [100.0, 250.0])
    assert [s.active for s in strict] == [True]


def test_consumption_swing_needs_a_base(topology: Topology) -> None:
    # 0.2 -> 2 kWh is +900 % but below the 1 kWh minimum base: noise, not a swing
    assert [s.active for s in days_of_use(make(topology), HOME, [0.2, 2.0, 2.1])] == [False, False]
    # a missing day breaks the comparison rather than comparing two days apart
    rule = make(topology)
    feed(rule, reading(T0, energy_import_kwh=0.0))
    feed(rule, reading(T0 + DAY, energy_import_kwh=10.0))
    assert not of(feed(rule, reading(T0 + 3 * DAY, energy_import_kwh=40.0)), "consumption_swing")


# ---- clock_drift


def test_clock_drift_warning_and_critical(topology: Topology) -> None:
    rule = make(topology)
    assert not last(feed(rule, reading(T0, meter_clock_skew_s=-120.0)), "clock_drift").active
    warn = last(feed(rule, reading(T0 + 900, meter_clock_skew_s=-400.0)), "clock_drift")
    assert warn.active and warn.severity is Severity.WARNING and warn.value == -400
    crit = last(feed(rule, reading(T0 + 1800, meter_clock_skew_s=700.0)), "clock_drift")
    assert crit.active and crit.severity is Severity.CRITICAL
    assert not last(feed(rule, reading(T0 + 2700, meter_clock_skew_s=3.0)), "clock_drift").active


# ---- snapshot / restore


def test_snapshot_restore_continues(topology: Topology) -> None:
    import json

    rule = make(topology)
    days_of_use(rule, HOME, [10.0])
    for k in range(1, 4):
        feed(rule, reading(T0 + DAY + k * 900, energy_import_kwh=1010.0, power_active_kw=2.0))
    assert last(rule.on_tick(T0 + DAY + 2 * 3600), "missed_reading").active
    state = json.loads(json.dumps(rule.snapshot()))
    changed, removed = rule.take_changes()
    parts = json.loads(json.dumps(changed))
    assert f"{GW}/{HOME}" in parts and not removed  # (and the topology meters watched since the first tick)
    assert rule.take_changes() == ({}, set())  # written once: nothing changed since
    again = make(topology)
    again.restore(state)
    again.restore_parts(parts)
    assert again.snapshot() == state and again.take_changes() == ({}, set())  # nothing new to write
    assert {k: dataclasses.asdict(v) for k, v in again.meters.items()} == parts
    # the stopped clock, the silence and the day history all survived
    got = feed(again, reading(T0 + DAY + 3 * 3600, energy_import_kwh=1010.0, power_active_kw=2.0))
    assert last(got, "register_stopped").active
    assert not last(got, "missed_reading").active
    swing = days_of_use_from(again, T0 + 2 * DAY, 1030.0)
    assert swing.active and swing.value == pytest.approx(100.0)


def days_of_use_from(rule: r.ReadingHealth, at: float, kwh: float) -> Signal:
    return last(feed(rule, reading(at, energy_import_kwh=kwh)), "consumption_swing")


def test_state_written_before_meters_were_parts_is_taken_over(topology: Topology) -> None:
    """An alert state file of an earlier version holds every meter inside the rule's snapshot: restored,
    and all of it written as parts at the next commit."""
    rule = make(topology)
    days_of_use(rule, HOME, [10.0])
    meters, _ = rule.take_changes()
    again = make(topology)
    again.restore({"first_tick": None, "meters": meters})
    again.restore_parts({})
    assert again.take_changes() == (meters, set())
