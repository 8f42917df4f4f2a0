"""Operators' actions on alerts end to end (issue 23 items 1 and 2): the alerts role on a real broker
and InfluxDB in compressed time (tests/alerts/conftest.py `alert_harness`). An area outage taken,
assigned, reached and restored carries its work state on the retained alert and in `alert_action`; a
late crew is an `arrival` miss; a dissatisfied rating's follow-up fires at its deadline and closes with
the callback."""

from __future__ import annotations

from typing import Any

import msgspec

from ingest.alerts.rules import followup, hall, outage
from protocols import messages as m
from protocols import operations as ops
from protocols import topics

GW = "gw-work"
METERS = [f"m{i:02d}" for i in range(6)]
AREA = "area/area-w"
OUTAGE = ("area_outage", AREA)
AT_RISK = ("outage_sla_at_risk", AREA)
TOPOLOGY = {
    "gateways": {GW: {"site": "s1"}},
    "areas": {"area-w": {"region": "urban"}},  # seed preset: arrival 30 min, restoration 4 h
    "devices": {
        **{f"{GW}/{dev}": {"area": "area-w", "phase": "ABC"[i % 3]} for i, dev in enumerate(METERS)},
        f"{GW}/pad-1": {"hall": "hall-main"},
    },
}


class Desk:
    """Readings and operators' actions, published like the gateway and `gridedge alerts` do."""

    def __init__(self, h: Any) -> None:
        self.h, self.seq = h, 0

    async def readings(self, volts: float) -> None:
        for dev in METERS:
            self.seq += 1
            msg = m.Reading(
                schema=1, gw=GW, dev=dev, seq=self.seq, ts=self.h.ms(), values={"voltage_a_v": volts}
            )
            await self.h.publish(topics.reading_topic(GW, dev), msg)

    async def act(self, verb: str, rule: str, subject: str, **fields: Any) -> None:
        action = ops.AlertAction(rule=rule, subject=subject, by=fields.pop("by", "dispatcher wang"), **fields)
        await self.h.publish(topics.action_topic(verb), msgspec.json.encode(action))

    async def rating(self, ticket: str, level: int, label: str) -> None:
        self.seq += 1
        data: dict[str, m.Scalar | None] = {"hall": "hall-main", "ticket": ticket, "counter": 2}
        data |= {"staff": "S07"}
        data |= {"level": level, "label": label}
        msg = m.Event(
            schema=1, gw=GW, dev="pad-1", seq=self.seq, ts=self.h.ms(), event=m.EventKind.RATING, data=data
        )
        await self.h.publish(topics.event_topic(GW, "pad-1"), msg)


def actions(h: Any) -> list[dict[str, Any]]:
    out = []
    for series in h.influxdb.query('SELECT * FROM "alert_action"'):
        out += [dict(zip(series["columns"], v, strict=True)) for v in series["values"]]
    return sorted(out, key=lambda r: r["time"])


def work(h: Any, key: tuple[str, str]) -> tuple[str, str, int | None]:
    alert = h.retained_alerts()[key]  # defaults are left out of the JSON (msgspec omit_defaults)
    return alert.get("work", "open"), alert.get("assignee", ""), alert.get("arrived_ts")


async def _outage(h: Any, desk: Desk) -> float:
    """All meters lit, then dark: the area outage fires 60 s after it began (returned)."""
    await desk.readings(220.0)
    await h.advance(60)
    start: float = h.now
    await desk.readings(0.0)
    await h.advance(61)
    assert work(h, OUTAGE) == ("open", "", None)
    return start


async def test_area_outage_work_states_and_a_late_arrival(alert_harness: Any) -> None:
    h = await alert_harness(topology=TOPOLOGY, sets=[outage.RULESET], rules={"outage": {"sla_arrival": True}})
    desk = Desk(h)
    start = await _outage(h, desk)

    await desk.act("ack", *OUTAGE, note="transformer T3 suspected")
    assert work(h, OUTAGE) == ("acknowledged", "", None)
    await desk.act("assign", *OUTAGE, crew="crew-3")
    assert work(h, OUTAGE) == ("assigned", "crew-3", None)
    await desk.act("close", *OUTAGE, cause="T3 fuse", outcome="fuse replaced")  # still dark: refused
    assert work(h, OUTAGE)[0] == "assigned" and h.role.work.stats.refused == 1

    await h.restart()  # the work state survives a restart (the engine's store)
    await h.advance(start + 25 * 60 - h.now)  # 25 min: past 80 % of the 30 min arrival promise
    risk = h.retained_alerts()[AT_RISK]
    assert risk["labels"]["promise"] == "arrival" and risk["labels"]["arrival"] == "at_risk"
    assert risk["severity"] == "warning" and work(h, OUTAGE)[0] == "assigned"
    await h.advance(6 * 60)  # 31 min: broken
    assert h.retained_alerts()[AT_RISK]["labels"]["arrival"] == "broken"

    arrived = start + 41 * 60
    await h.advance(arrived + 30 - h.now)  # reported 30 s after the crew got there
    await desk.act("arrived", *OUTAGE, by="crew-3 lead", ts=round(arrived * 1000))
    assert work(h, OUTAGE) == ("on_site", "crew-3", round(arrived * 1000))
    risk = h.retained_alerts()[AT_RISK]
    assert risk["labels"]["arrival"] == "missed" and risk["severity"] == "critical"
    assert "arrival promise of 30 min missed (crew on site after 41 min)" in risk["message"]

    await desk.readings(220.0)  # restored; no power-down records: resolves after backfill_wait_s
    await h.advance(121)
    assert OUTAGE not in h.retained_alerts() and AT_RISK not in h.retained_alerts()
    assert h.engine.get(*OUTAGE).work == "on_site"
    await desk.act("close", *OUTAGE, cause="T3 fuse", outcome="fuse replaced, T3 re-energised")
    assert h.engine.get(*OUTAGE).work == "closed"
    live = [(t, p, r) for t, p, r in await h.alert_messages() if t == topics.alert_topic(*OUTAGE) and p]
    assert [(p["change"], p.get("work", "open")) for _, p, _ in live] == [
        ("firing", "open"),
        ("updated", "acknowledged"),
        ("updated", "assigned"),
        ("updated", "on_site"),
        ("resolved", "on_site"),
        ("resolved", "closed"),
    ]
    assert [p["change"] for _, p, _ in live].count("firing") == 1

    rows = actions(h)
    assert [(r["action"], r["work_state"], r["rule"], r["subject"]) for r in rows] == [
        ("ack", "acknowledged", *OUTAGE),
        ("assign", "assigned", *OUTAGE),
        ("arrived", "on_site", *OUTAGE),
        ("close", "closed", *OUTAGE),
    ]
    assert rows[2]["time"] == round(arrived * 1000) and rows[2]["by"] == "crew-3 lead"
    assert (rows[3]["cause"], rows[3]["outcome"]) == ("T3 fuse", "fuse replaced, T3 re-energised")
    assert rows[1]["crew"] == "crew-3" and rows[0]["note"] == "transformer T3 suspected"
    points = [r for r in h.influx_alerts() if r["rule"] == "area_outage"]
    assert sorted(r["state"] for r in points) == ["firing", "resolved"]  # actions add no alert points


async def test_a_crew_on_time_keeps_the_arrival_promise(alert_harness: Any) -> None:
    h = await alert_harness(topology=TOPOLOGY, sets=[outage.RULESET], rules={"outage": {"sla_arrival": True}})
    desk = Desk(h)
    start = await _outage(h, desk)
    await h.advance(start + 20 * 60 - h.now)
    await desk.act("arrived", *OUTAGE, crew="crew-1")
    await h.advance(60 * 60)  # 80 min: the arrival was met; restoration is far from its 4 h
    assert AT_RISK not in h.retained_alerts()
    assert work(h, OUTAGE) == ("on_site", "crew-1", round((start + 20 * 60) * 1000))
    await h.advance(start + 3.3 * 3600 - h.now)  # restoration at risk (80 % of 4 h), arrival was met
    labels = h.retained_alerts()[AT_RISK]["labels"]
    assert labels["promise"] == "restoration" and "arrival" not in labels


async def test_rating_followup_fires_at_its_deadline_and_closes_with_the_callback(alert_harness: Any) -> None:
    h = await alert_harness(
        topology=TOPOLOGY,
        sets=[hall.RULESET, followup.RULESET],
        rules={"followup": {"callback_deadline_s": 3600}},
    )
    desk = Desk(h)
    late, early = "hall/hall-main/counter-2/ticket-A101", "hall/hall-main/counter-2/ticket-A102"
    await desk.rating("A101", 4, "dissatisfied")
    await desk.rating("A100", 1, "very satisfied")  # no follow-up
    await h.advance(600)
    await desk.rating("A102", 4, "dissatisfied")
    await h.advance(2400)
    await desk.act("callback", "rating_followup", early, outcome="apologised; fee refunded")  # in time
    await h.advance(601)  # A101's hour has passed: it fires; A102's was called back in time
    retained = {k: v for k, v in h.retained_alerts().items() if k[0] == "rating_followup"}
    assert list(retained) == [("rating_followup", late)] and "work" not in retained[("rating_followup", late)]
    await desk.act("ack", "rating_followup", late, by="hall manager li")
    await desk.act("callback", "rating_followup", late, by="hall manager li", outcome="customer satisfied")
    assert not [k for k in h.retained_alerts() if k[0] == "rating_followup"]
    last = [
        p for t, p, _ in await h.alert_messages() if t == topics.alert_topic("rating_followup", late) and p
    ][-1]
    assert (last["state"], last["work"]) == ("resolved", "closed")
    assert "called back by hall manager li" in last["message"] and "customer satisfied" in last["message"]
    rows = actions(h)
    assert [(r["action"], r["subject"], r["outcome"]) for r in rows] == [
        ("callback", early, "apologised; fee refunded"),
        ("ack", late, ""),
        ("callback", late, "customer satisfied"),
    ]
    fired = [r for r in h.influx_alerts() if r["rule"] == "rating_followup"]
    assert sorted(r["state"] for r in fired) == ["firing", "resolved"]  # only A101's, not A102's
