"""Reading-health and hall rules end to end: the alerts role on the real broker and InfluxDB, fake clock
(`alert_harness` in tests/alerts/conftest.py); each scenario checks the alert topic and InfluxDB."""

from __future__ import annotations

from typing import Any

from ingest.alerts.rules import hall, reading
from protocols import messages as m
from protocols.topics import event_topic, reading_topic

GW, BAD, GOOD, PAD = "gw-e2e", "000000000001", "000000000002", "hall-1"
TOPOLOGY = {
    "gateways": {GW: {"site": "s1"}},
    "areas": {"area-1": {"region": "urban"}},
    "devices": {
        f"{GW}/{BAD}": {"area": "area-1", "account": "A-1"},
        f"{GW}/{GOOD}": {"area": "area-1", "account": "A-2"},
        f"{GW}/{PAD}": {"hall": "hall-main"},
    },
}


def rows(h: Any, rule: str) -> list[dict[str, Any]]:
    return [r for r in h.influx_alerts() if r["rule"] == rule]


async def test_missed_reading_fires_and_back_fill_resolves_it(alert_harness: Any) -> None:
    h = await alert_harness(TOPOLOGY, sets=[reading.RULESET])
    seq = 0

    async def send(dev: str, kwh: float, more: list[m.Sample] | None = None) -> None:
        nonlocal seq
        seq += 1
        values: dict[str, m.Scalar] = {"energy_import_kwh": kwh, "power_active_kw": 1.0}
        msg = m.Reading(schema=1, gw=GW, dev=dev, seq=seq, ts=h.ms(), values=values, more=more or [])
        await h.publish(reading_topic(GW, dev), msg)

    start = h.now
    for step in range(4):  # GOOD reports every 15 min; BAD once, then falls silent
        if step == 0:
            await send(BAD, 100.0)
        await send(GOOD, 50.0 + step * 0.25)
        await h.advance(900)
    key = ("missed_reading", f"{GW}/{BAD}")
    retained = h.retained_alerts()
    assert set(retained) == {key}  # 3600 s > the 2700 s window; GOOD stays quiet
    assert retained[key]["state"] == "firing" and retained[key]["labels"]["area"] == "area-1"
    assert [r["state"] for r in rows(h, "missed_reading")] == ["firing"]

    # BAD comes back with the missed quarter-hours back-filled from its load profile
    backfill = [
        m.Sample(
            seq=100 + k,
            ts=round((start + k * 900) * 1000),
            values={"energy_import_kwh": 100.0 + k},
            source="backfilled",
        )
        for k in range(1, 4)
    ]
    await send(BAD, 104.0, backfill)
    await h.advance(1)
    assert key not in h.retained_alerts()
    resolved = [r for r in rows(h, "missed_reading") if r["state"] == "resolved"]
    assert len(resolved) == 1 and "back-fill recovered" in resolved[0]["message"]
    assert resolved[0]["duration_s"] == 900  # silent from the reading at start to the first back-filled one
    live = await h.alert_messages()
    assert [t for t, p, _ in live if p is None] == [f"gridedge/v1/alerts/missed_reading/{GW}/{BAD}"]


async def test_hall_wait_and_dissatisfied_rating(alert_harness: Any) -> None:
    h = await alert_harness(TOPOLOGY, sets=[hall.RULESET])
    seq = 0

    async def send(kind: m.EventKind, **data: m.Scalar) -> None:
        nonlocal seq
        seq += 1
        msg = m.Event(
            schema=1, gw=GW, dev=PAD, seq=seq, ts=h.ms(), event=kind, data={"hall": "hall-main", **data}
        )
        await h.publish(event_topic(GW, PAD), msg)

    await send(m.EventKind.TICKET_ISSUED, ticket=101, business=1)
    await h.advance(600)
    await send(m.EventKind.TICKET_ISSUED, ticket=102, business=1)
    await send(m.EventKind.TICKET_CALLED, ticket=102, counter=2, staff="0012")  # served quickly
    await send(m.EventKind.RATING, ticket=102, counter=2, staff="0012", level=4, label="dissatisfied")
    rating = ("dissatisfied_rating", "hall/hall-main/counter-2")
    retained = h.retained_alerts()
    assert set(retained) == {rating}  # immediate; 101 has waited 10 min, under the 15 min target
    assert "0012" in retained[rating]["message"] and "102" in retained[rating]["message"]

    await h.advance(400)  # 101 has now waited 1000 s
    wait = ("hall_wait", "hall/hall-main")
    retained = h.retained_alerts()
    assert retained[wait]["state"] == "firing" and retained[wait]["value"] == 1000
    await send(m.EventKind.TICKET_CALLED, ticket=101, counter=1, staff="0007")
    await h.advance(1)
    assert wait not in h.retained_alerts()
    states = [(r["state"], r["value"]) for r in rows(h, "hall_wait")]
    assert states == [("firing", 1000.0), ("resolved", 1000.0)]  # the engine keeps the last active value
    assert rows(h, "dissatisfied_rating")[0]["state"] == "firing"
