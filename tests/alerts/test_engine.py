"""The engine's alert life cycle in compressed time: pending, firing, hysteresis, flap damping, once
alerts, de-duplication, start/end corrections, rule failures and persistence across a restart."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ingest.alerts.config import FlapSection
from ingest.alerts.engine import Engine
from ingest.alerts.model import AlertState, Inbound, Severity, Signal
from ingest.alerts.store import Store
from tests.alerts.clock import T0_S as T0
from tests.alerts.clock import FakeClock as Clock

R, S = "meter_supply_lost", "gw-1/m1"


def sig(active: bool, at: float, **kw: Any) -> Signal:
    return Signal(R, S, active, at, **kw)


def make(store: Store | None = None, **flap: Any) -> tuple[Engine, Clock]:
    clock = Clock()
    return Engine([], clock=clock, store=store, flap=FlapSection(**flap)), clock


def kinds(changes: Iterable[Any]) -> list[str]:
    return [c.kind for c in changes]


def test_pending_fires_after_pending_s_on_a_tick() -> None:
    e, clock = make()
    assert e.apply([sig(True, T0, pending_s=60)], T0) == []
    assert e.alerts()[0].state is AlertState.PENDING and e.firing(R, S) is None
    clock.t = T0 + 59
    assert e.tick() == []
    clock.t = T0 + 60
    (c,) = e.tick()
    assert c.kind == "firing" and c.alert.fired_at == T0 + 60 and c.alert.started_at == T0
    assert e.firing(R, S) is not None


def test_zero_pending_fires_at_once_and_repeats_change_nothing() -> None:
    e, _ = make()
    assert kinds(e.apply([sig(True, T0, message="x")], T0)) == ["firing"]
    for i in range(5):
        assert e.apply([sig(True, T0 + i, message="x")], T0 + i) == []
    assert e.apply([sig(False, T0 + 10)], T0 + 10) != []
    assert e.apply([sig(False, T0 + 11)], T0 + 11) == []  # already resolved: nothing


def test_value_only_changes_are_kept_but_not_published_severity_changes_are() -> None:
    e, _ = make()
    e.apply([sig(True, T0, value=1.0)], T0)
    assert e.apply([sig(True, T0 + 1, value=2.0)], T0 + 1) == []
    assert e.firing(R, S).value == 2.0  # type: ignore[union-attr]
    (c,) = e.apply([sig(True, T0 + 2, value=2.0, severity=Severity.CRITICAL)], T0 + 2)
    assert c.kind == "updated" and c.alert.severity is Severity.CRITICAL


def test_pending_dropped_silently_when_the_condition_goes() -> None:
    e, clock = make()
    e.apply([sig(True, T0, pending_s=60)], T0)
    assert e.apply([sig(False, T0 + 30)], T0 + 30) == []
    clock.t = T0 + 1000
    assert e.tick() == [] and e.alerts() == [] and e.recent() == []
    assert e.stats.dropped_pending == 1


def test_clear_s_hysteresis_and_end_time_is_when_the_condition_went() -> None:
    e, clock = make()
    e.apply([sig(True, T0, clear_s=60)], T0)
    assert e.apply([sig(False, T0 + 100, clear_s=60)], T0 + 100) == []
    clock.t = T0 + 130
    assert e.tick() == []
    assert e.apply([sig(True, T0 + 130, clear_s=60)], T0 + 130) == []  # back: still the same alert
    assert e.apply([sig(False, T0 + 200, clear_s=60)], T0 + 200) == []
    clock.t = T0 + 259
    assert e.tick() == []
    clock.t = T0 + 260
    (c,) = e.tick()
    assert c.kind == "resolved" and c.alert.ended_at == T0 + 200 and c.alert.duration_s == 200
    assert c.at == T0 + 260


def test_started_and_ended_at_corrections() -> None:
    e, clock = make()
    e.apply([sig(True, T0 + 50, pending_s=120)], T0 + 50)
    # a back-filled power-down record says it began earlier: fires as soon as it has held 120 s
    clock.t = T0 + 130
    (c,) = e.apply([sig(True, T0 + 130, pending_s=120, started_at=T0)], T0 + 130)
    assert c.kind == "firing" and c.alert.started_at == T0
    (c,) = e.apply([sig(False, T0 + 400, ended_at=T0 + 300)], T0 + 400)
    assert c.alert.ended_at == T0 + 300 and c.alert.duration_s == 300
    # a late, better end time corrects the resolved alert (same decision time, so the point is rewritten)
    (c2,) = e.apply([sig(False, T0 + 500, ended_at=T0 + 290)], T0 + 500)
    assert c2.kind == "resolved" and c2.alert.ended_at == T0 + 290 and c2.at == c.at
    assert e.apply([sig(False, T0 + 501, ended_at=T0 + 290)], T0 + 501) == []


def test_once_alerts_fire_and_resolve_by_themselves_and_stay_retrievable() -> None:
    e, clock = make()
    (c,) = e.apply([sig(True, T0, once=True, clear_s=600, message="rated 4")], T0)
    assert c.kind == "firing"
    assert e.apply([sig(True, T0, once=True, clear_s=600)], T0 + 1) == []  # the same event again
    clock.t = T0 + 600
    (r,) = e.tick()
    assert r.kind == "resolved" and r.alert.message == "rated 4"
    assert [a.message for a in e.recent()] == ["rated 4"]
    # a second event while the first is firing: the first resolves, the second fires
    e.apply([sig(True, T0 + 700, once=True, clear_s=600)], T0 + 700)
    assert kinds(e.apply([sig(True, T0 + 710, once=True, clear_s=600)], T0 + 710)) == ["resolved", "firing"]
    # clear_s 0: fires and resolves in one go
    assert kinds(e.apply([Signal("dissatisfied_rating", "c1", True, T0, once=True)], T0)) == [
        "firing",
        "resolved",
    ]


def test_flapping_subject_is_held_firing_until_quiet_for_hold_s() -> None:
    e, clock = make(max_flips=3, window_s=3600, hold_s=900)
    t = T0
    published = []
    for _ in range(2):  # fire, resolve, fire, resolve: four flips
        published += e.apply([sig(True, t)], t)
        published += e.apply([sig(False, t + 10)], t + 10)
        t += 20
    assert kinds(published) == ["firing", "resolved", "firing", "resolved"]
    clock.t = t
    assert kinds(e.apply([sig(True, t)], t)) == ["firing"]
    assert e.apply([sig(False, t + 10)], t + 10) == []  # damped: held firing
    assert e.apply([sig(True, t + 20)], t + 20) == []
    assert e.apply([sig(False, t + 30)], t + 30) == []
    clock.t = t + 30 + 899
    assert e.tick() == []
    clock.t = t + 30 + 900
    (c,) = e.tick()
    assert c.kind == "resolved" and c.alert.flaps >= 3 and e.stats.damped == 1
    # outside the window the subject is judged afresh
    later = t + 7200
    clock.t = later
    e.apply([sig(True, later)], later)
    assert kinds(e.apply([sig(False, later + 10)], later + 10)) == ["resolved"]


class Exploding:
    ids = ("register_runaway",)

    def on_message(self, inbound: Inbound, now: float) -> Iterable[Signal]:
        raise RuntimeError("bug")

    def on_tick(self, now: float) -> Iterable[Signal]:
        return [Signal("register_runaway", "x", True, now)]

    def snapshot(self) -> dict[str, Any]:
        return {}

    def restore(self, state: Mapping[str, Any]) -> None:
        pass


def test_a_failing_rule_is_counted_and_the_others_carry_on() -> None:
    e, _ = make()
    e.rules = [("bad", Exploding())]
    assert e.on_message(Inbound("t", "gw", "d", {})) == []
    assert e.stats.rule_errors == 1
    assert kinds(e.tick()) == ["firing"]


class Counter:
    """A rule with memory: fires `count_high` once it has seen three messages."""

    ids = ("count_high",)

    def __init__(self) -> None:
        self.n = 0

    def on_message(self, inbound: Inbound, now: float) -> Iterable[Signal]:
        self.n += 1
        return [Signal("count_high", "s", self.n >= 3, now, value=float(self.n))]

    def on_tick(self, now: float) -> Iterable[Signal]:
        return []

    def snapshot(self) -> dict[str, Any]:
        return {"n": self.n}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.n = int(state["n"])


def test_restart_restores_alerts_and_rule_state_without_re_raising(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    clock = Clock()
    msg = Inbound("t", "gw", "d", {})
    store = Store(path)
    e = Engine([("c", Counter())], clock=clock, store=store)
    e.on_message(msg)
    e.on_message(msg)
    assert kinds(e.on_message(msg)) == ["firing"]
    e.apply([sig(True, T0, pending_s=100)], T0)  # pending at the restart
    e.commit()
    store.close()

    store = Store(path)
    counter = Counter()
    e2 = Engine([("c", counter)], clock=clock, store=store)
    assert counter.n == 3 and e2.firing("count_high", "s") is not None
    assert e2.on_message(msg) == []  # still firing: not raised again
    assert e2.alerts()[1].state is AlertState.PENDING or e2.alerts()[0].state is AlertState.PENDING
    clock.t = T0 + 100
    assert [(c.kind, c.alert.rule) for c in e2.tick()] == [("firing", R)]
    store.close()
