"""Hall service rules in compressed time: each rule id fires on a bad scenario and stays quiet on a
good one; a rule restored from its snapshot carries on."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest

from ingest.alerts.model import Inbound, RuleContext, Severity, Signal
from ingest.alerts.rules import hall as h
from ingest.topology import Topology
from protocols import messages as m

GW, DEV, HALL = "gw-t", "hall-1", "hall-main"
T0 = 1_700_000_000.0
K = m.EventKind


def make(**cfg: Any) -> h.HallService:
    rules = h.RULESET.build(h.HallConfig(**cfg), RuleContext(Topology.empty()))
    assert len(rules) == 1
    rule: h.HallService = rules[0]
    return rule


class Hall:
    """Drives a rule with hall events at explicit times; `now` defaults to the event time."""

    def __init__(self, rule: h.HallService, hall: str = HALL) -> None:
        self.rule, self.hall, self.seq = rule, hall, 0

    def event(self, kind: m.EventKind, at: float, **data: m.Scalar) -> list[Signal]:
        self.seq += 1
        msg = m.Event(
            schema=1,
            gw=GW,
            dev=DEV,
            seq=self.seq,
            ts=int(at * 1000),
            event=kind,
            data={"hall": self.hall, **data},
        )
        m.validate(msg)
        return list(self.rule.on_message(Inbound(f"gridedge/v1/{GW}/{DEV}/event", GW, DEV, msg), at))

    def issue(self, ticket: int, at: float) -> list[Signal]:
        return self.event(K.TICKET_ISSUED, at, ticket=ticket, business=1)

    def call(self, ticket: int, at: float, counter: int = 1) -> list[Signal]:
        return self.event(K.TICKET_CALLED, at, ticket=ticket, counter=counter, staff="0012")

    def rate(self, ticket: int, level: int, at: float, counter: int = 1) -> list[Signal]:
        label = {1: "very satisfied", 2: "satisfied", 3: "neutral", 4: "dissatisfied"}[level]
        return self.event(
            K.RATING, at, ticket=ticket, counter=counter, staff="0012", level=level, label=label
        )


def of(signals: Iterable[Signal], rule: str) -> list[Signal]:
    return [s for s in signals if s.rule == rule]


def last(signals: Iterable[Signal], rule: str) -> Signal:
    found = of(signals, rule)
    assert found, f"no {rule} signal"
    return found[-1]


# ---- hall_wait


def test_hall_wait_fires_on_the_longest_wait_and_resolves_when_called() -> None:
    rule = make()
    hall = Hall(rule)
    hall.issue(101, T0)
    hall.issue(102, T0 + 300)
    assert not last(rule.on_tick(T0 + 800), "hall_wait").active
    got = last(rule.on_tick(T0 + 1000), "hall_wait")
    assert got.active and got.value == 1000 and got.subject == "hall/hall-main"
    assert "ticket 101" in got.message and got.labels["ticket"] == "101" and got.severity is Severity.WARNING
    assert last(rule.on_tick(T0 + 1801), "hall_wait").severity is Severity.CRITICAL
    # 101 is called: the longest wait is now 102's, 1700 - 300 = 1400 s > 900 s
    after = last(hall.call(101, T0 + 1700), "hall_wait")
    assert after.active and after.value == 1400
    resolved = last(hall.call(102, T0 + 1750), "hall_wait")
    assert not resolved.active and resolved.value == 0


def test_hall_wait_quiet_when_service_keeps_up() -> None:
    rule = make(wait_target_by_hall={"hall-small": 300})
    main, small = Hall(rule), Hall(rule, "hall-small")
    for k in range(20):
        assert not last(main.issue(k, T0 + k * 120), "hall_wait").active
        assert not last(main.call(k, T0 + k * 120 + 600), "hall_wait").active
    # the same 10-minute wait is over the small hall's 5-minute target
    small.issue(1, T0)
    waits = {s.subject: s.active for s in of(rule.on_tick(T0 + 600), "hall_wait")}
    assert waits == {"hall/hall-main": False, "hall/hall-small": True}


def test_abandoned_and_transferred_tickets() -> None:
    rule = make()
    hall = Hall(rule)
    hall.issue(1, T0)
    hall.event(K.TICKET_ABANDONED, T0 + 600, ticket=1, reason="day_end")
    assert not last(rule.on_tick(T0 + 3600), "hall_wait").active
    # a transferred ticket queues again for its new business, from the transfer
    hall.issue(2, T0 + 3600)
    hall.call(2, T0 + 3700)
    hall.event(K.TICKET_TRANSFERRED, T0 + 4000, ticket=2, business=3)
    assert not last(rule.on_tick(T0 + 4800), "hall_wait").active
    assert last(rule.on_tick(T0 + 5000), "hall_wait").active


# ---- queue_depth


def test_queue_depth_above_n() -> None:
    rule = make(queue_depth_max=20)
    hall = Hall(rule)
    depths = [last(hall.issue(k, T0 + k), "queue_depth") for k in range(21)]
    assert not any(s.active for s in depths[:20])
    assert depths[20].active and depths[20].value == 21
    assert not last(hall.call(0, T0 + 30), "queue_depth").active


def test_queue_depth_quiet_with_a_short_queue() -> None:
    rule = make()
    hall = Hall(rule)
    for k in range(100):
        hall.issue(k, T0 + k * 60)
        if k >= 5:
            hall.call(k - 5, T0 + k * 60 + 1)
    assert not any(s.active for s in of(rule.on_tick(T0 + 6001), "queue_depth"))


# ---- counter_paused


def test_counter_paused_too_long() -> None:
    rule = make()
    hall = Hall(rule)
    hall.event(K.STAFF_LOGIN, T0, counter=3, staff="0042")
    hall.event(K.COUNTER_STATE, T0 + 60, counter=3, state="paused")
    assert not last(rule.on_tick(T0 + 60 + 1200), "counter_paused").active
    got = last(rule.on_tick(T0 + 60 + 1300), "counter_paused")
    assert got.active and got.subject == "hall/hall-main/counter-3" and got.started_at == T0 + 60
    assert got.labels["staff"] == "0042" and "0042" in got.message
    resumed = last(hall.event(K.COUNTER_STATE, T0 + 2000, counter=3, state="serving"), "counter_paused")
    assert not resumed.active


def test_short_pauses_do_not_fire() -> None:
    rule = make(paused_max_s=600)
    hall = Hall(rule)
    for k in range(6):
        hall.event(K.COUNTER_STATE, T0 + k * 1000, counter=1, state="paused")
        hall.event(K.COUNTER_STATE, T0 + k * 1000 + 500, counter=1, state="idle")
        assert not any(s.active for s in of(rule.on_tick(T0 + k * 1000 + 900), "counter_paused"))


# ---- dissatisfied_rating


def test_dissatisfied_rating_is_an_immediate_once_alert() -> None:
    rule = make()
    hall = Hall(rule)
    got = of(hall.rate(77, 4, T0, counter=2), "dissatisfied_rating")
    assert len(got) == 1
    alert = got[0]
    assert (
        alert.active and alert.once and alert.pending_s == 0 and alert.subject == "hall/hall-main/counter-2"
    )
    assert "0012" in alert.message and "77" in alert.message
    assert alert.labels["staff"] == "0012" and alert.labels["ticket"] == "77"


def test_other_ratings_are_not_dissatisfied() -> None:
    rule = make()
    hall = Hall(rule)
    for level in (1, 2, 3):
        assert not of(hall.rate(level, level, T0 + level), "dissatisfied_rating")
    hall.event(K.RATING_TIMEOUT, T0 + 10, ticket=9, counter=1)
    # an unlabelled 4-key pad: level 4 is dissatisfied by default
    unlabelled = hall.event(K.RATING, T0 + 20, ticket=5, counter=1, staff="1", level=3, label="")
    assert not of(unlabelled, "dissatisfied_rating")
    assert of(
        hall.event(K.RATING, T0 + 30, ticket=6, counter=1, staff="1", level=4, label=""),
        "dissatisfied_rating",
    )


# ---- satisfaction_low


def test_satisfaction_low_over_the_last_hour() -> None:
    rule = make()
    hall = Hall(rule)
    for k, level in enumerate((1, 1, 2, 3)):
        assert not last(hall.rate(k, level, T0 + k * 60), "satisfaction_low").active  # too few ratings
    low = last(hall.rate(4, 3, T0 + 240), "satisfaction_low")
    assert low.active and low.value == pytest.approx(0.6)
    # an hour later the neutral ratings have left the window
    assert not last(rule.on_tick(T0 + 240 + 3601), "satisfaction_low").active


def test_satisfaction_good_enough() -> None:
    rule = make()
    hall = Hall(rule)
    levels = [1] * 9 + [2] * 9 + [3] * 2  # 18 / 20 = 90 %
    for k, level in enumerate(levels):
        assert not last(hall.rate(k, level, T0 + k * 60), "satisfaction_low").active


# ---- snapshot / restore


def test_snapshot_restore_continues() -> None:
    rule = make()
    hall = Hall(rule)
    hall.issue(1, T0)
    hall.issue(2, T0 + 100)
    hall.event(K.COUNTER_STATE, T0, counter=4, state="paused", staff="0007")
    for k, level in enumerate((1, 3, 3, 2)):
        hall.rate(10 + k, level, T0 + k)
    state = json.loads(json.dumps(rule.snapshot()))
    again = make()
    again.restore(state)
    assert again.snapshot() == state
    got = list(again.on_tick(T0 + 1300))
    assert last(got, "hall_wait").value == 1300 and last(got, "hall_wait").active
    assert last(got, "counter_paused").active and last(got, "counter_paused").labels["staff"] == "0007"
    assert not last(got, "satisfaction_low").active  # 4 ratings: not enough yet
    assert last(Hall(again).rate(20, 4, T0 + 1310), "satisfaction_low").active  # 2 of 5
    called = Hall(again).call(1, T0 + 1320)
    assert last(called, "hall_wait").value == 1220
