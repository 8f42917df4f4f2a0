"""Cost-control rules in compressed time: the balance ladder, reconnection after payment, keep-power,
balance divergence of local-cost-control meters, relay misoperation, restart."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from ingest.alerts.costcontrol.ledger import Account, Ledger
from ingest.alerts.costcontrol.rule import RULESET, CostControlConfig, CostControlRule
from ingest.alerts.model import Inbound, RuleContext, Severity, Signal
from ingest.topology import Topology
from protocols import messages as m
from protocols.errors import ContractError

T0 = 1_710_000_000.0  # compressed day starts here
H = 3600.0
GW = "gw-demo-01"
METER = "000000000001"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Meter:
    """Builds the readings one meter publishes."""

    def __init__(self, dev: str = METER) -> None:
        self.dev = dev
        self.seq = 0

    def reading(self, t: float, **values: Any) -> Inbound:
        self.seq += 1
        msg = m.Reading(schema=1, gw=GW, dev=self.dev, seq=self.seq, ts=int(t * 1000), values=values)
        return Inbound(f"gridedge/v1/{GW}/{self.dev}/reading", GW, self.dev, msg)

    def event(self, t: float, relay: str) -> Inbound:
        self.seq += 1
        msg = m.Event(schema=1, gw=GW, dev=self.dev, seq=self.seq, ts=int(t * 1000),
                      event=m.EventKind.RELAY_CHANGE, data={"relay": relay})  # fmt: skip
        return Inbound(f"gridedge/v1/{GW}/{self.dev}/event", GW, self.dev, msg)

    def result(self, t: float, **state: Any) -> Inbound:
        self.seq += 1
        msg = m.CommandResult(schema=1, gw=GW, dev=self.dev, seq=self.seq, ts=int(t * 1000),
                              id="c-1", status="done", state=state)  # fmt: skip
        return Inbound(f"gridedge/v1/{GW}/{self.dev}/cmd/result", GW, self.dev, msg)


def billing(account: str, kind: str, **data: Any) -> Inbound:
    return Inbound(f"gridedge/v1/billing/{account}/{kind}", "", "", data)


def latest(signals: Iterable[Signal], rule: str) -> Signal | None:
    found = [s for s in signals if s.rule == rule]
    return found[-1] if found else None


@pytest.fixture
def topology() -> Topology:
    return Topology.load(EXAMPLES / "topology.yaml")


@pytest.fixture
def cfg(tmp_path: Path) -> CostControlConfig:
    return CostControlConfig(ledger_path=tmp_path / "ledger.sqlite")


def make_rule(cfg: CostControlConfig, topology: Topology) -> CostControlRule:
    (rule,) = RULESET.build(cfg, RuleContext(topology))
    assert isinstance(rule, CostControlRule)
    return rule


def open_account(rule: CostControlRule, account: str = "A-0001", **extra: Any) -> None:
    data = {"tariff_cny_kwh": 1.0, "opening_balance_cny": 60.0, **extra}
    list(rule.on_message(billing(account, "account", **data), T0))


def test_ruleset_contract() -> None:
    assert RULESET.name == "costcontrol" and RULESET.topics == ("gridedge/v1/billing/#",)
    cfg = CostControlConfig()
    assert cfg.thresholds("any", "residential").reminder_cny == 50.0
    assert cfg.thresholds("any", "residential").warning_cny == 10.0
    assert cfg.reconnect_deadline("any") == 24 * H
    assert CostControlConfig(reconnect_preset="csg").reconnect_deadline("x") == 12 * H
    per_site = CostControlConfig.model_validate(
        {
            "sites": {
                "demo-site": {"classes": {"residential": {"reminder_cny": 80}}, "reconnect_deadline_s": 3600}
            }
        }
    )
    assert per_site.thresholds("demo-site", "residential").reminder_cny == 80.0
    assert per_site.thresholds("other", "residential").reminder_cny == 50.0
    assert per_site.reconnect_deadline("demo-site") == 3600.0


def run_ladder(rule: CostControlRule, meter: Meter) -> list[Signal]:
    """60 CNY at 1 CNY/kWh: 15 kWh by 06:00 -> 45 (reminder), 55 kWh by 18:00 -> 5 (warning),
    65 kWh by 23:00 -> -5 (arrears); the relay is tripped at 23:30."""
    out: list[Signal] = []
    for hour, kwh in [(0, 1000.0), (6, 1015.0), (12, 1040.0), (18, 1055.0), (23, 1065.0)]:
        t = T0 + hour * H
        sig = list(rule.on_message(meter.reading(t, energy_import_kwh=kwh, relay="closed",
                                                 relay_commanded="closed", current_a_a=3.0), t))  # fmt: skip
        out += sig
        low, arrears = latest(sig, "balance_low"), latest(sig, "arrears")
        assert low is not None and arrears is not None
        if hour == 0:
            assert not low.active and not arrears.active
        elif hour in (6, 12):
            assert low.active and low.severity is Severity.INFO and not arrears.active
        elif hour == 18:
            assert low.active and low.severity is Severity.WARNING and low.value == pytest.approx(5.0)
        else:
            assert arrears.active and not low.active and arrears.value == pytest.approx(-5.0)
            assert arrears.subject == "account/A-0001" and arrears.labels["area"] == "area-a01"
    t = T0 + 23.5 * H
    out += rule.on_message(meter.reading(t, energy_import_kwh=1065.0, relay="open", relay_commanded="open",
                                         current_a_a=0.0), t)  # fmt: skip
    return out


def test_day_of_consumption_payment_and_reconnection(cfg: CostControlConfig, topology: Topology) -> None:
    rule, meter = make_rule(cfg, topology), Meter()
    open_account(rule)
    run_ladder(rule, meter)
    paid_at = T0 + 24 * H
    ts_ms = int(paid_at * 1000)
    sig = list(rule.on_message(billing("A-0001", "payment", id="P-1", amount_cny=100.0, ts=ts_ms), paid_at))
    arrears, low = latest(sig, "arrears"), latest(sig, "balance_low")
    assert arrears is not None and not arrears.active
    assert low is not None and not low.active  # 95 CNY
    clock = latest(sig, "reconnect_overdue")
    assert clock is not None and not clock.active
    # the payment again (MQTT redelivery): applied once
    list(rule.on_message(billing("A-0001", "payment", id="P-1", amount_cny=100.0, ts=ts_ms), paid_at))
    assert rule.ledger.balance("A-0001") == pytest.approx(95.0)
    # relay stays open: not yet overdue at 23 h, overdue past 24 h
    s = latest(rule.on_tick(paid_at + 23 * H), "reconnect_overdue")
    assert s is not None and not s.active
    s = latest(rule.on_tick(paid_at + 24 * H + 60), "reconnect_overdue")
    assert s is not None and s.active and s.started_at == pytest.approx(paid_at + 24 * H)
    t = paid_at + 25 * H
    s = latest(
        rule.on_message(meter.reading(t, energy_import_kwh=1065.0, relay="open"), t), "reconnect_overdue"
    )
    assert s is not None and s.active
    # the relay is read back closed: resolved, value = payment -> closed
    t = paid_at + 26 * H
    sig = list(rule.on_message(meter.event(t, "closed"), t))
    s = latest(sig, "reconnect_overdue")
    assert s is not None and not s.active and s.value == pytest.approx(26 * H) and s.ended_at == t
    assert latest(rule.on_tick(t + H), "reconnect_overdue") is None  # the clock is done


def test_reconnection_within_the_promise_never_fires(cfg: CostControlConfig, topology: Topology) -> None:
    rule, meter = make_rule(cfg.model_copy(update={"reconnect_preset": "csg"}), topology), Meter()
    open_account(rule)
    run_ladder(rule, meter)
    paid_at = T0 + 24 * H
    list(rule.on_message(billing("A-0001", "payment", id="P-1", amount_cny=10.0), paid_at))
    t = paid_at + 2 * H
    sig = list(rule.on_message(meter.reading(t, energy_import_kwh=1065.0, relay="closed"), t))
    s = latest(sig, "reconnect_overdue")
    assert s is not None and not s.active and s.value == pytest.approx(2 * H)
    assert all(not s.active for s in rule.on_tick(paid_at + 13 * H) if s.rule == "reconnect_overdue")


def test_keep_power_account_is_informed_but_never_tripped(cfg: CostControlConfig, topology: Topology) -> None:
    rule, meter = make_rule(cfg, topology), Meter()
    open_account(rule, keep_power=True)
    signals = run_ladder(rule, meter)
    arrears = latest(signals, "arrears")
    assert arrears is not None and arrears.active
    assert arrears.labels["keep_power"] == "true" and "no trip" in arrears.message
    assert not hasattr(rule, "commands")  # no automatic trip policy: the rules only inform


def test_arrears_only_from_the_ledger_not_the_meter_display(
    cfg: CostControlConfig, topology: Topology
) -> None:
    rule, meter = make_rule(cfg, topology), Meter()
    open_account(rule, mode="local")
    t = T0 + H
    sig = list(
        rule.on_message(meter.reading(t, energy_import_kwh=10.0, balance_cny=0.0, overdraft_cny=20.0), t)
    )
    arrears = latest(sig, "arrears")
    assert arrears is not None and not arrears.active  # the meter says -20; the ledger says 60


def test_balance_divergence_local_meter(cfg: CostControlConfig, topology: Topology) -> None:
    rule, meter = make_rule(cfg, topology), Meter()
    open_account(rule, mode="local")
    t = T0
    s = latest(
        rule.on_message(meter.reading(t, energy_import_kwh=100.0, balance_cny=60.0), t), "balance_divergence"
    )
    assert s is not None and not s.active
    t += H  # 10 kWh: computed 50; meter 50.8 -> within 1 CNY
    s = latest(
        rule.on_message(meter.reading(t, energy_import_kwh=110.0, balance_cny=50.8), t), "balance_divergence"
    )
    assert s is not None and not s.active
    t += H  # 10 kWh more: computed 40; meter 47 -> drifted 7 CNY
    s = latest(
        rule.on_message(meter.reading(t, energy_import_kwh=120.0, balance_cny=47.0), t), "balance_divergence"
    )
    assert s is not None and s.active and s.value == pytest.approx(7.0)
    assert s.subject == f"{GW}/{METER}" and s.pending_s == cfg.divergence_pending_s


def test_remote_meter_balance_is_not_compared(cfg: CostControlConfig, topology: Topology) -> None:
    rule, meter = make_rule(cfg, topology), Meter()
    open_account(rule)
    sig = list(rule.on_message(meter.reading(T0, energy_import_kwh=100.0, balance_cny=999.0), T0))
    assert latest(sig, "balance_divergence") is None


def test_relay_misoperation(cfg: CostControlConfig, topology: Topology) -> None:
    rule, meter = make_rule(cfg, topology), Meter()
    open_account(rule)
    t = T0
    healthy = meter.reading(t, relay="open", relay_commanded="open", current_a_a=0.0, power_active_kw=0.0)
    s = latest(rule.on_message(healthy, t), "relay_misoperation")
    assert s is not None and not s.active
    t += 60
    closed = meter.reading(t, relay="closed", relay_commanded="closed", current_a_a=5.0)
    s = latest(rule.on_message(closed, t), "relay_misoperation")
    assert s is not None and not s.active
    t += 60  # tripped, relay reads open, but current still flows
    s = latest(rule.on_message(meter.reading(t, relay="open", relay_commanded="open", current_a_a=4.2), t),
               "relay_misoperation")  # fmt: skip
    assert s is not None and s.active and s.pending_s == 0 and "current_a_a flows" in s.message
    assert s.value == 4.2
    t += 60
    quiet = meter.reading(t, relay="open", relay_commanded="open", power_active_kw=0.0)
    s = latest(rule.on_message(quiet, t), "relay_misoperation")
    assert s is not None and not s.active


def test_relay_not_following_its_command(cfg: CostControlConfig, topology: Topology) -> None:
    rule, meter = make_rule(cfg, topology), Meter()
    open_account(rule)
    t = T0  # a trip's read-back: commanded open, relay still closed -> must hold past the settle time
    s = latest(
        rule.on_message(meter.result(t, relay="closed", relay_commanded="open"), t), "relay_misoperation"
    )
    assert s is not None and s.active and s.pending_s == cfg.relay_settle_s
    t += 5  # the relay_change event: it opened
    s = latest(rule.on_message(meter.event(t, "open"), t), "relay_misoperation")
    assert s is not None and not s.active
    t += 60  # commanded closed but the relay stays open
    s = latest(
        rule.on_message(meter.result(t, relay="open", relay_commanded="closed"), t), "relay_misoperation"
    )
    assert s is not None and s.active and "commanded closed but relay reads open" in s.message


def test_payment_imported_by_another_process_is_seen_on_tick(
    cfg: CostControlConfig, topology: Topology
) -> None:
    rule, meter = make_rule(cfg, topology), Meter()
    open_account(rule)
    run_ladder(rule, meter)
    rule.flush()  # as the engine does after every batch: the charged registers are committed
    with Ledger(cfg.ledger_path) as other:  # `gridedge ingest billing import` writing the same file
        assert other.apply_payment("CSV-1", "A-0001", 50.0, T0 + 24 * H)
    sig = list(rule.on_tick(T0 + 24 * H + 5))
    arrears = [s for s in sig if s.rule == "arrears" and s.subject == "account/A-0001"]
    assert arrears and not arrears[-1].active
    clock = latest(sig, "reconnect_overdue")
    assert clock is not None and clock.labels["payment"] == "CSV-1"


def test_spool_replay_samples_in_acquisition_order(cfg: CostControlConfig, topology: Topology) -> None:
    rule = make_rule(cfg, topology)
    open_account(rule)
    more = [
        m.Sample(seq=3, ts=int((T0 + H) * 1000), values={"energy_import_kwh": 10.0}, source="backfilled"),
        m.Sample(seq=4, ts=int((T0 + 2 * H) * 1000), values={"energy_import_kwh": 20.0}),
    ]
    values: dict[str, m.Scalar] = {"energy_import_kwh": 30.0}
    msg = m.Reading(schema=1, gw=GW, dev=METER, seq=5, ts=int((T0 + 3 * H) * 1000), values=values, more=more)
    list(rule.on_message(Inbound("t", GW, METER, msg), T0 + 3 * H))
    assert rule.ledger.balance("A-0001") == pytest.approx(40.0)


def test_restart_continues_the_reconnection_clock(cfg: CostControlConfig, topology: Topology) -> None:
    rule, meter = make_rule(cfg, topology), Meter()
    open_account(rule)
    run_ladder(rule, meter)
    paid_at = T0 + 24 * H
    list(rule.on_message(billing("A-0001", "payment", id="P-1", amount_cny=100.0), paid_at))
    state = rule.snapshot()
    parts, _ = rule.take_changes()  # what the engine writes: the clock, levels and relays are parts
    rule.ledger.close()
    again = make_rule(cfg, topology)  # a new ledger object on the same file
    again.restore(state)
    again.restore_parts(json.loads(json.dumps(parts)))
    s = latest(again.on_tick(paid_at + 25 * H), "reconnect_overdue")
    assert s is not None and s.active
    assert again.ledger.balance("A-0001") == pytest.approx(95.0)
    list(again.on_message(billing("A-0001", "payment", id="P-1", amount_cny=100.0), paid_at + 25 * H))
    assert again.ledger.balance("A-0001") == pytest.approx(95.0)
    t = paid_at + 25.5 * H
    s = latest(
        again.on_message(meter.reading(t, energy_import_kwh=1066.0, relay="closed"), t), "reconnect_overdue"
    )
    assert s is not None and not s.active and s.value == pytest.approx(25.5 * H)
    assert again.ledger.balance("A-0001") == pytest.approx(94.0)


def test_bad_billing_payload_raises_a_contract_error(cfg: CostControlConfig, topology: Topology) -> None:
    rule = make_rule(cfg, topology)
    open_account(rule)
    with pytest.raises(ContractError) as exc:
        list(rule.on_message(billing("A-0001", "payment", id="P-1", amount_cny="ten"), T0))
    assert exc.value.field == "$.amount_cny" and rule.rejected == 1


def test_unused_account_class_gets_default_thresholds(cfg: CostControlConfig, topology: Topology) -> None:
    rule, meter = make_rule(cfg, topology), Meter("000000000004")  # commercial: 200 / 50
    list(rule.on_message(billing("A-0004", "account", tariff_cny_kwh=1.0, opening_balance_cny=150.0), T0))
    s = latest(rule.on_message(meter.reading(T0, energy_import_kwh=1.0), T0), "balance_low")
    assert s is not None and s.active and s.severity is Severity.INFO
    _ = Account  # re-exported type used by the engine's callers


def test_state_of_an_earlier_version_is_taken_over(cfg: CostControlConfig, topology: Topology) -> None:
    """Alert state files written before the rule's state was parts hold it in one snapshot."""
    rule = make_rule(cfg, topology)
    old = {
        "level": {"A-0001": "arrears"},
        "reconnect": {},
        "relay": {"gw-1/m1": {"ts": 1.0, "relay": "open"}},
    }
    rule.restore(old)
    rule.restore_parts({})
    changed, removed = rule.take_changes()
    assert changed == {"level:A-0001": {"v": "arrears"}, "relay:gw-1/m1": {"v": {"ts": 1.0, "relay": "open"}}}
    assert not removed
