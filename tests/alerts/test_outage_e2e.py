"""Outage acceptance end to end: the alerts role on a real broker and InfluxDB, in compressed time
(the `alert_harness` fixture of tests/alerts/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.alerts.rules import outage
from protocols import messages as m
from protocols import topics

GW = "gw-e2e"
METERS = [f"m{i:02d}" for i in range(20)]
AREA = "area/area-x"
TOPOLOGY = {
    "gateways": {GW: {"site": "s1"}},
    "areas": {"area-x": {"region": "urban"}, "area-y": {"region": "rural"}},
    "devices": {
        **{f"{GW}/{dev}": {"area": "area-x", "phase": "ABC"[i % 3]} for i, dev in enumerate(METERS)},
        f"{GW}/y1": {"area": "area-y", "phase": "A"},
    },
}


class Feed:
    def __init__(self, h: Any) -> None:
        self.h, self.seq = h, 0

    def _seq(self) -> int:
        self.seq += 1
        return self.seq

    async def readings(self, volts: float, devs: list[str] = METERS) -> None:
        for dev in devs:
            msg = m.Reading(
                schema=1, gw=GW, dev=dev, seq=self._seq(), ts=self.h.ms(), values={"voltage_a_v": volts}
            )
            await self.h.publish(topics.reading_topic(GW, dev), msg)

    async def event(self, dev: str, kind: m.EventKind, ts_ms: int) -> None:
        msg = m.Event(schema=1, gw=GW, dev=dev, seq=self._seq(), ts=ts_ms, event=kind, source="backfilled")
        await self.h.publish(topics.event_topic(GW, dev), msg)

    async def status(self, state: str) -> None:
        msg = m.Status(schema=1, gw=GW, seq=self._seq(), ts=self.h.ms(), state=state)  # type: ignore[arg-type]
        await self.h.publish(topics.status_topic(GW), msg, retain=True)


def _outage_keys(retained: dict[tuple[str, str], Any]) -> list[tuple[str, str]]:
    return sorted(k for k in retained if k[0] in outage.OutageRule.ids)


async def test_area_outage_is_one_alert_and_resolves_with_backfilled_duration(alert_harness: Any) -> None:
    h = await alert_harness(topology=TOPOLOGY, sets=[outage.RULESET])
    feed = Feed(h)
    t0 = h.now
    await feed.status("online")
    await feed.readings(220.0)
    await h.advance(60)
    await feed.readings(0.0)  # the transformer trips at t0+60
    await h.advance(30)
    assert _outage_keys(h.retained_alerts()) == []  # still within the judgement delay
    await h.advance(31)
    retained = h.retained_alerts()
    assert _outage_keys(retained) == [("area_outage", AREA)]
    firing = retained[("area_outage", AREA)]
    assert firing["state"] == "firing" and firing["severity"] == "critical"
    assert firing["start_ts"] == round((t0 + 60) * 1000)

    await h.restart()  # mid-outage: the rule's memory and the alert come back from the state file
    await h.advance(1)
    assert _outage_keys(h.retained_alerts()) == [("area_outage", AREA)]
    await h.advance(600 - 122)  # power back at t0+600; the meters' records say t0+57 .. t0+597
    await feed.readings(220.0)
    for dev in METERS:
        await feed.event(dev, m.EventKind.POWER_DOWN, round((t0 + 57) * 1000))
        await feed.event(dev, m.EventKind.POWER_UP, round((t0 + 597) * 1000))
    await h.advance(1)
    assert _outage_keys(h.retained_alerts()) == []

    messages = [(t, p) for t, p, _ in await h.alert_messages() if p is not None]
    area = [p for t, p in messages if t == topics.alert_topic("area_outage", AREA)]
    assert [p["state"] for p in area] == ["firing", "resolved"]
    assert (area[-1]["end_ts"] - area[-1]["start_ts"]) / 1000 == pytest.approx(540)
    assert area[-1]["start_ts"] == round((t0 + 57) * 1000)
    assert not [t for t, _ in messages if "/meter_supply_lost/" in t or "/comm_fault/" in t]

    rows = [r for r in h.influx_alerts() if r["rule"] in outage.OutageRule.ids]
    assert {(r["rule"], r["subject"]) for r in rows} == {("area_outage", AREA)}
    assert sorted(r["state"] for r in rows) == ["firing", "resolved"]
    resolved = next(r for r in rows if r["state"] == "resolved")
    assert resolved["duration_s"] == pytest.approx(540)


async def test_silent_meter_is_comm_fault_and_last_will_names_areas(alert_harness: Any) -> None:
    h = await alert_harness(topology=TOPOLOGY, sets=[outage.RULESET])
    feed = Feed(h)
    await feed.status("online")
    await feed.readings(220.0)
    for _ in range(6):  # m00 never answers again; its 19 neighbours report every minute
        await h.advance(60)
        await feed.readings(221.0, METERS[1:])
    await h.advance(1)
    retained = h.retained_alerts()
    assert _outage_keys(retained) == [("comm_fault", f"{GW}/m00")]

    await feed.status("offline")  # the gateway's Last Will
    await h.advance(1)
    retained = h.retained_alerts()
    assert ("gateway_offline", GW) in retained
    text = retained[("gateway_offline", GW)]["message"]
    assert "possible area outage" in text and "area-x" in text and "area-y" in text
    await h.advance(600)  # its meters' silence is neither an area outage nor more comm faults
    assert ("area_outage", AREA) not in h.retained_alerts()
