"""A resolving Signal's `resolve_message`: the resolved alert says how long it lasted (engine, store
round trip, late corrections), and the outage rule's restoration uses it end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingest.alerts.engine import Engine
from ingest.alerts.model import Signal, human_duration
from ingest.alerts.rules import outage
from ingest.alerts.store import Store
from protocols import messages as m
from protocols import topics
from tests.alerts.clock import T0_S as T0
from tests.alerts.clock import FakeClock as Clock

R, S = "meter_supply_lost", "gw-1/m1"


def test_human_duration() -> None:
    assert [human_duration(x) for x in (None, 42, 59.6, 2520, 3600, 3 * 3600 + 5 * 60)] == [
        "?", "42 s", "1 min", "42 min", "1 h 00 min", "3 h 05 min",
    ]  # fmt: skip


def test_resolve_message_replaces_the_firing_one_with_the_duration() -> None:
    e = Engine([], clock=Clock())
    (fired,) = e.apply([Signal(R, S, True, T0, message="supply lost")], T0)
    assert fired.alert.message == "supply lost"
    (done,) = e.apply(
        [Signal(R, S, False, T0 + 2520, resolve_message="restored after {duration}")], T0 + 2520
    )
    assert done.kind == "resolved" and done.alert.message == "restored after 42 min"
    assert e.get(R, S) is not None and e.get(R, S).message == "restored after 42 min"  # type: ignore[union-attr]


def test_without_resolve_message_the_firing_message_stays() -> None:
    e = Engine([], clock=Clock())
    e.apply([Signal(R, S, True, T0, message="supply lost")], T0)
    (done,) = e.apply([Signal(R, S, False, T0 + 60)], T0 + 60)
    assert done.alert.message == "supply lost"


def test_hysteresis_keeps_the_template_until_resolve_and_across_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    store = Store(tmp_path / "a.sqlite", 100)
    e = Engine([], clock=clock, store=store)
    e.apply([Signal(R, S, True, T0, message="lost")], T0)
    gone = Signal(R, S, False, T0 + 600, clear_s=300, resolve_message="back after {duration}")
    assert e.apply([gone], T0 + 600) == []  # clearing: not yet resolved
    e.commit()
    store.close()
    store = Store(tmp_path / "a.sqlite", 100)
    e = Engine([], clock=clock, store=store)
    clock.t = T0 + 900
    (done,) = e.tick()
    assert done.kind == "resolved" and done.alert.message == "back after 10 min"  # ended at T0+600
    store.close()


def test_a_late_correction_rewrites_the_duration() -> None:
    e = Engine([], clock=Clock())
    e.apply([Signal(R, S, True, T0, message="lost")], T0)
    (done,) = e.apply([Signal(R, S, False, T0 + 600, resolve_message="back after {duration}")], T0 + 600)
    assert done.alert.message == "back after 10 min"
    (fixed,) = e.apply([Signal(R, S, False, T0 + 700, started_at=T0 - 1200)], T0 + 700)
    assert fixed.kind == "resolved" and fixed.alert.message == "back after 30 min"


GW = "gw-rs"
METERS = ["m1", "m2", "m3", "m4"]
TOPOLOGY = {
    "gateways": {GW: {"site": "s1"}},
    "areas": {"area-r": {"region": "urban"}},
    "devices": {f"{GW}/{dev}": {"area": "area-r", "phase": "A"} for dev in METERS},
}


async def test_outage_restoration_message_states_the_duration(alert_harness: Any) -> None:
    h = await alert_harness(topology=TOPOLOGY, sets=[outage.RULESET])
    seq = iter(range(1, 10_000))

    async def readings(volts: float) -> None:
        for dev in METERS:
            msg = m.Reading(schema=1, gw=GW, dev=dev, seq=next(seq), ts=h.ms(), values={"voltage_a_v": volts})
            await h.publish(topics.reading_topic(GW, dev), msg)

    await h.publish(topics.status_topic(GW), m.Status(schema=1, gw=GW, seq=0, ts=h.ms(), state="online"))
    await readings(220.0)
    await h.advance(60)
    t_down = h.now
    await readings(0.0)
    await h.advance(61)
    subject = "area/area-r"
    assert h.engine.firing("area_outage", subject) is not None
    firing_text = h.retained_alerts()[("area_outage", subject)]["message"]
    await h.advance(42 * 60 - 61)
    await readings(220.0)
    for dev in METERS:  # the meters' own records: down at t_down, up 42 min later
        for kind, at in ((m.EventKind.POWER_DOWN, t_down), (m.EventKind.POWER_UP, t_down + 2520)):
            event = m.Event(schema=1, gw=GW, dev=dev, seq=next(seq), ts=round(at * 1000), event=kind,
                            source="backfilled")  # fmt: skip
            await h.publish(topics.event_topic(GW, dev), event)
    await h.advance(1)
    assert h.engine.firing("area_outage", subject) is None

    sent = [
        p for t, p, _ in await h.alert_messages() if p and t == topics.alert_topic("area_outage", subject)
    ]
    assert [p["state"] for p in sent] == ["firing", "resolved"]
    assert sent[0]["message"] == firing_text and "restored" not in firing_text
    assert sent[-1]["message"] == "area outage in area-r restored after 42 min"
    assert (sent[-1]["end_ts"] - sent[-1]["start_ts"]) / 1000 == pytest.approx(2520)
    rows = [r for r in h.influx_alerts() if r["rule"] == "area_outage" and r["state"] == "resolved"]
    assert [r["message"] for r in rows] == ["area outage in area-r restored after 42 min"]
