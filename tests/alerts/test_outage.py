"""Outage rules in compressed time: messages built with protocols.messages, explicit `now`s."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from ingest.alerts.model import Inbound, RuleContext, Severity, Signal
from ingest.alerts.rules.outage import RULESET, OutageConfig, OutageRule
from ingest.topology import Topology
from protocols import messages as m

GW = "gw-t"
T0 = 1_700_000_000.0
AREA = "area/area-x"
METERS = [f"m{i:02d}" for i in range(20)]
PHASE = {dev: "ABC"[i % 3] for i, dev in enumerate(METERS)}  # 7 on A, 7 on B, 6 on C


def _topology(tmp_path: Path) -> Topology:
    lines = [
        "gateways: {gw-t: {site: s1}, gw-u: {site: s2}}",
        "areas: {area-x: {region: urban}, area-y: {region: rural}, area-z: {region: rural}}",
        "devices:",
    ]
    lines += [f"  {GW}/{dev}: {{area: area-x, phase: {PHASE[dev]}}}" for dev in METERS]
    lines += [f"  {GW}/y{i}: {{area: area-y, phase: A}}" for i in range(2)]
    lines += [f"  gw-u/z{i}: {{area: area-z, phase: B}}" for i in range(3)]
    path = tmp_path / "topology.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Topology.load(path)


class Board:
    """What an engine would show: the latest signal per (rule, subject)."""

    def __init__(self) -> None:
        self.latest: dict[tuple[str, str], Signal] = {}

    def feed(self, signals: Iterable[Signal]) -> list[Signal]:
        out = list(signals)
        for sig in out:
            self.latest[(sig.rule, sig.subject)] = sig
        return out

    def active(self, rule: str | None = None) -> dict[tuple[str, str], Signal]:
        return {k: s for k, s in self.latest.items() if s.active and (rule is None or k[0] == rule)}


class Scenario:
    def __init__(self, tmp_path: Path, **cfg: object) -> None:
        self.topology = _topology(tmp_path)
        self.cfg = OutageConfig.model_validate(cfg)
        self.rule = OutageRule(self.cfg, self.topology)
        self.board = Board()
        self.seq = 0

    def _in(self, dev: str, message: m.Message, now: float, gw: str = GW) -> list[Signal]:
        return self.board.feed(
            self.rule.on_message(Inbound(f"gridedge/v1/{gw}/x/{dev}", gw, dev, message), now)
        )

    def reading(self, dev: str, now: float, volts: float = 220.0, gw: str = GW, **values: m.Scalar) -> None:
        self.seq += 1
        vals: dict[str, m.Scalar] = {"voltage_a_v": volts, **values}
        self._in(
            dev, m.Reading(schema=1, gw=gw, dev=dev, seq=self.seq, ts=int(now * 1000), values=vals), now, gw
        )

    def event(self, dev: str, kind: m.EventKind, ts: float, now: float, source: m.Source = "live") -> None:
        self.seq += 1
        msg = m.Event(schema=1, gw=GW, dev=dev, seq=self.seq, ts=int(ts * 1000), event=kind, source=source)
        self._in(dev, msg, now)

    def status(self, state: str, now: float, gw: str = GW) -> None:
        self.seq += 1
        msg = m.Status(schema=1, gw=gw, seq=self.seq, ts=int(now * 1000), state=state)  # type: ignore[arg-type]
        self._in("", msg, now, gw)

    def all_report(self, now: float, volts: float = 220.0, devs: Iterable[str] = METERS) -> None:
        for i, dev in enumerate(devs):
            self.reading(dev, now + i * 0.1, volts)

    def tick(self, now: float) -> list[Signal]:
        return self.board.feed(self.rule.on_tick(now))


def _members_alerted(board: Board, rule: str) -> list[str]:
    return [subject for (r, subject) in board.active(rule) if subject.startswith(f"{GW}/m")]


# ---- area outage -------------------------------------------------------------------------------------


def test_area_outage_is_one_alert_not_twenty(tmp_path: Path) -> None:
    sc = Scenario(tmp_path)
    sc.all_report(T0)
    assert sc.tick(T0 + 10) == [] or not sc.board.active()
    sc.all_report(T0 + 60, volts=0.0)
    sc.tick(T0 + 125)  # after the judgement delay
    active = sc.board.active()
    assert list(active) == [("area_outage", AREA)]
    area = active[("area_outage", AREA)]
    assert area.pending_s == 60.0
    assert area.started_at == pytest.approx(T0 + 60)
    assert area.severity is Severity.CRITICAL
    assert area.value == 20
    assert _members_alerted(sc.board, "meter_supply_lost") == []
    assert _members_alerted(sc.board, "comm_fault") == []


def test_restoration_resolves_with_duration_from_backfilled_records(tmp_path: Path) -> None:
    sc = Scenario(tmp_path)
    sc.all_report(T0)
    sc.all_report(T0 + 60, volts=0.0)
    sc.tick(T0 + 130)
    # power back at T0+600; the meters' own records: down at T0+52, up at T0+598
    sc.all_report(T0 + 600)
    assert ("area_outage", AREA) in sc.board.active()  # waiting for the power-down records
    for dev in METERS:
        sc.event(dev, m.EventKind.POWER_DOWN, T0 + 52, T0 + 605, source="backfilled")
        sc.event(dev, m.EventKind.POWER_UP, T0 + 598, T0 + 605, source="backfilled")
    end = sc.board.latest[("area_outage", AREA)]
    assert not end.active
    assert end.started_at == pytest.approx(T0 + 52)
    assert end.ended_at == pytest.approx(T0 + 598)
    assert end.ended_at is not None and end.started_at is not None
    assert end.ended_at - end.started_at == pytest.approx(546)
    assert not sc.board.active()
    sc.tick(T0 + 700)
    assert not sc.board.active()


def test_restoration_without_records_resolves_after_the_wait(tmp_path: Path) -> None:
    sc = Scenario(tmp_path, backfill_wait_s=60)
    sc.all_report(T0)
    sc.all_report(T0 + 60, volts=0.0)
    sc.all_report(T0 + 600)
    sc.tick(T0 + 630)
    assert ("area_outage", AREA) in sc.board.active()
    sc.tick(T0 + 665)
    end = sc.board.latest[("area_outage", AREA)]
    assert not end.active
    assert end.started_at == pytest.approx(T0 + 60)
    assert end.ended_at is not None and T0 + 600 <= end.ended_at <= T0 + 602


def test_silent_area_with_gateway_alive_is_an_area_outage(tmp_path: Path) -> None:
    sc = Scenario(tmp_path)
    sc.status("online", T0)
    sc.all_report(T0)
    sc.tick(T0 + 179)
    assert not sc.board.active()
    sc.tick(T0 + 200)
    assert list(sc.board.active()) == [("area_outage", AREA)]


def test_live_power_down_events_make_one_area_outage(tmp_path: Path) -> None:
    sc = Scenario(tmp_path)
    sc.all_report(T0)
    for dev in METERS:
        sc.event(dev, m.EventKind.POWER_DOWN, T0 + 30, T0 + 31)
    assert list(sc.board.active()) == [("area_outage", AREA)]
    assert sc.board.latest[("area_outage", AREA)].started_at == pytest.approx(T0 + 30)


# ---- single meters ------------------------------------------------------------------------------------


def test_one_silent_meter_among_reporting_neighbours_is_a_comm_fault(tmp_path: Path) -> None:
    sc = Scenario(tmp_path)
    sc.all_report(T0)
    for k in range(1, 5):
        sc.all_report(T0 + 60 * k, devs=METERS[1:])
    active = sc.board.active()
    assert list(active) == [("comm_fault", f"{GW}/m00")]
    fault = active[("comm_fault", f"{GW}/m00")]
    assert fault.started_at == pytest.approx(T0)
    assert fault.pending_s == sc.cfg.silence_s + sc.cfg.comm_fault_delay_s  # from the judgement
    sc.reading("m00", T0 + 300)
    assert not sc.board.active()


def test_one_dark_meter_is_a_supply_loss(tmp_path: Path) -> None:
    sc = Scenario(tmp_path)
    sc.all_report(T0)
    sc.reading("m05", T0 + 60, volts=12.0)
    sig = sc.board.active()[("meter_supply_lost", f"{GW}/m05")]
    assert sig.pending_s == 60.0
    assert sig.started_at == pytest.approx(T0 + 60)
    assert len(sc.board.active()) == 1
    sc.reading("m05", T0 + 120, volts=221.0)
    assert not sc.board.active()


def test_power_down_event_is_a_supply_loss_until_power_up(tmp_path: Path) -> None:
    sc = Scenario(tmp_path)
    sc.all_report(T0)
    sc.event("m03", m.EventKind.POWER_DOWN, T0 + 10, T0 + 11)
    assert list(sc.board.active()) == [("meter_supply_lost", f"{GW}/m03")]
    sc.event("m03", m.EventKind.POWER_UP, T0 + 40, T0 + 41)
    assert not sc.board.active()


def test_backfilled_power_down_alone_is_history_not_an_outage(tmp_path: Path) -> None:
    sc = Scenario(tmp_path)
    sc.all_report(T0)
    sc.event("m03", m.EventKind.POWER_DOWN, T0 - 3600, T0 + 5, source="backfilled")
    assert not sc.board.active()


def test_relay_open_dark_customer_is_an_arrears_trip_not_an_outage(tmp_path: Path) -> None:
    sc = Scenario(tmp_path)
    sc.all_report(T0)
    sc.reading("m07", T0 + 60, volts=0.0, relay="open")
    for k in range(1, 4):
        sc.all_report(T0 + 60 * k, devs=[d for d in METERS if d != "m07"])
    sc.tick(T0 + 200)
    assert not sc.board.active()
    # a trip announced by event, then the meter falls silent: still nothing
    sc.seq += 1
    trip = m.Event(
        schema=1, gw=GW, dev="m08", seq=sc.seq, ts=int((T0 + 210) * 1000), event=m.EventKind.RELAY_CHANGE,
        data={"relay": "open", "previous": "closed"},
    )  # fmt: skip
    sc._in("m08", trip, T0 + 210)
    for k in range(4, 9):
        sc.all_report(T0 + 60 * k, devs=[d for d in METERS if d not in ("m07", "m08")])
    assert not sc.board.active()


# ---- phase and gateway ---------------------------------------------------------------------------------


def test_phase_outage_when_one_phase_is_dark(tmp_path: Path) -> None:
    sc = Scenario(tmp_path)
    sc.all_report(T0)
    on_a = [d for d in METERS if PHASE[d] == "A"]
    others = [d for d in METERS if PHASE[d] != "A"]
    sc.all_report(T0 + 60, volts=0.0, devs=on_a)
    sc.all_report(T0 + 60, devs=others)
    sc.tick(T0 + 130)
    active = sc.board.active()
    assert list(active) == [("phase_outage", "area/area-x/phase-A")]
    assert active[("phase_outage", "area/area-x/phase-A")].labels["phase"] == "A"
    sc.all_report(T0 + 120, volts=0.0, devs=on_a)
    sc.all_report(T0 + 120, devs=others)
    assert list(sc.board.active()) == [("phase_outage", "area/area-x/phase-A")]
    sc.all_report(T0 + 180)
    sc.tick(T0 + 180 + sc.cfg.backfill_wait_s + 5)
    assert not sc.board.active()


def test_gateway_last_will_is_possible_area_outage_and_silence_is_not_judged(tmp_path: Path) -> None:
    sc = Scenario(tmp_path)
    sc.status("online", T0)
    sc.all_report(T0)
    sc.status("offline", T0 + 30)
    active = sc.board.active()
    assert list(active) == [("gateway_offline", GW)]
    text = active[("gateway_offline", GW)].message
    assert "possible area outage" in text
    assert "area-x" in text and "area-y" in text and "area-z" not in text
    sc.tick(T0 + 1000)
    assert list(sc.board.active()) == [("gateway_offline", GW)]
    sc.status("online", T0 + 1100)
    assert not sc.board.active()
    sc.tick(T0 + 1150)  # silence clocks restarted when it came back
    assert not sc.board.active()


# ---- SLA ----------------------------------------------------------------------------------------------


def test_sla_escalates_before_the_restoration_promise_and_when_broken(tmp_path: Path) -> None:
    sc = Scenario(tmp_path)  # seed preset, area-x is urban: restore within 4 h, at risk at 80 %
    sc.all_report(T0)
    start = T0 + 60
    sc.all_report(start, volts=0.0)
    sc.tick(start + 0.79 * 4 * 3600)
    assert ("outage_sla_at_risk", AREA) not in sc.board.active()
    sc.tick(start + 0.81 * 4 * 3600)
    risk = sc.board.active()[("outage_sla_at_risk", AREA)]
    assert risk.severity is Severity.WARNING
    assert risk.value == pytest.approx(0.81)
    sc.tick(start + 4 * 3600 + 1)
    assert sc.board.active()[("outage_sla_at_risk", AREA)].severity is Severity.CRITICAL
    sc.all_report(start + 5 * 3600)
    sc.tick(start + 5 * 3600 + sc.cfg.backfill_wait_s + 5)
    assert not sc.board.active()


def test_sla_preset_is_selectable(tmp_path: Path) -> None:
    sc = Scenario(tmp_path, sla_preset="sgcc-2023")  # urban: 45 min arrival + 3 h restore
    sc.all_report(T0)
    sc.all_report(T0 + 60, volts=0.0)
    sc.tick(T0 + 60 + 0.81 * 4 * 3600)  # at risk under `seed`, not yet under sgcc-2023 (3 h 45)
    assert ("outage_sla_at_risk", AREA) in sc.board.active()
    sc2 = Scenario(tmp_path, sla_preset="sgcc-2023", sla_at_risk_share=0.95)
    sc2.all_report(T0)
    sc2.all_report(T0 + 60, volts=0.0)
    sc2.tick(T0 + 60 + 0.9 * 3.75 * 3600)
    assert ("outage_sla_at_risk", AREA) not in sc2.board.active()


# ---- memory --------------------------------------------------------------------------------------------


def test_snapshot_restore_mid_outage_continues(tmp_path: Path) -> None:
    sc = Scenario(tmp_path)
    sc.all_report(T0)
    sc.all_report(T0 + 60, volts=0.0)
    sc.tick(T0 + 130)
    state = json.loads(json.dumps(sc.rule.snapshot()))
    again = OutageRule(sc.cfg, sc.topology)
    again.restore(state)
    sc.rule = again
    sc.tick(T0 + 200)
    assert list(sc.board.active()) == [("area_outage", AREA)]
    assert sc.board.latest[("area_outage", AREA)].started_at == pytest.approx(T0 + 60)
    sc.all_report(T0 + 600)
    for dev in METERS:
        sc.event(dev, m.EventKind.POWER_DOWN, T0 + 58, T0 + 605, source="backfilled")
        sc.event(dev, m.EventKind.POWER_UP, T0 + 599, T0 + 605, source="backfilled")
    end = sc.board.latest[("area_outage", AREA)]
    assert not end.active
    assert end.started_at == pytest.approx(T0 + 58)
    assert end.ended_at == pytest.approx(T0 + 599)
    assert again.snapshot()["outages"] == {}


def test_ruleset_builds_with_defaults(tmp_path: Path) -> None:
    cfg = RULESET.config()
    rules = RULESET.build(cfg, RuleContext(topology=_topology(tmp_path)))
    assert RULESET.name == "outage"
    assert set(rules[0].ids) == {
        "meter_supply_lost", "area_outage", "phase_outage", "gateway_offline", "comm_fault",
        "outage_sla_at_risk",
    }  # fmt: skip
    assert cfg.supply_threshold == 0.6 and cfg.judgement_delay_s == 60 and cfg.silence_s == 180
