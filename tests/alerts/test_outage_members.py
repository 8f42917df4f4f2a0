"""The meters of an area outage get no comm_fault: the `gridedge demo` power cut in area A02, in
compressed time on the real broker and InfluxDB (`alert_harness`, tests/alerts/conftest.py).

Three DL/T 645 meters polled every 15 s, a few seconds apart, lose power at once: the first falls
silent (after `silence_s`) while its neighbours' last readings are still fresh, so it looks like a
lone silent meter for up to one poll period. The comm_fault's pending delay must count from that
judgement (not from the meter's last reading), so that the neighbours fall silent too and the area
outage covers it — and a meter still silent when the outage ends starts a fresh delay.
"""

from __future__ import annotations

from typing import Any

import pytest

from ingest.alerts.rules import outage
from protocols import messages as m
from protocols import topics

GW = "gw-demo-01"
METERS = ["000000000101", "000000000102", "000000000103"]
AREA = "area/area-a02"
TOPOLOGY = {
    "gateways": {GW: {"site": "demo"}},
    "areas": {"area-a02": {"region": "rural"}, "area-a01": {"region": "urban"}},
    "devices": {
        **{f"{GW}/{dev}": {"area": "area-a02", "phase": "ABC"[i]} for i, dev in enumerate(METERS)},
        **{f"{GW}/a01-{i}": {"area": "area-a01", "phase": "ABC"[i % 3]} for i in range(6)},
    },
}
# examples/demo/ingest.yaml
RULES = {
    "outage": {
        "silence_s": 35,
        "judgement_delay_s": 5,
        "comm_fault_delay_s": 30,
        "restored_share": 0.6,
        "backfill_wait_s": 10,
    }
}
POLL_S = 15


class Site:
    """Meters answering every POLL_S seconds at their own offset while powered; one tick per second."""

    def __init__(self, h: Any, offsets: dict[str, int]) -> None:
        self.h, self.offsets, self.seq, self.t = h, offsets, 0, 0
        self.powered = set(offsets)

    async def run(self, seconds: int) -> None:
        for _ in range(seconds):
            for dev, offset in self.offsets.items():
                if dev in self.powered and self.t % POLL_S == offset % POLL_S:
                    self.seq += 1
                    msg = m.Reading(
                        schema=1, gw=GW, dev=dev, seq=self.seq, ts=self.h.ms(), values={"voltage_a_v": 221.0}
                    )
                    await self.h.publish(topics.reading_topic(GW, dev), msg)
            await self.h.advance(1)
            self.t += 1


def _outage_rows(h: Any) -> set[tuple[str, str, str]]:
    return {
        (r["rule"], r["subject"], r["state"]) for r in h.influx_alerts() if r["rule"] in outage.OutageRule.ids
    }


async def _published(h: Any) -> list[tuple[str, str]]:
    """(topic, state) of every alert message with a payload, in order."""
    return [(t, p["state"]) for t, p, _ in await h.alert_messages() if p is not None]


# the meters' poll offsets (s): which one is judged silent first, and how far behind the others are
STAGGERS = [
    {METERS[0]: 0, METERS[1]: 2, METERS[2]: 4},
    {METERS[2]: 0, METERS[0]: 5, METERS[1]: 13},
    {METERS[1]: 1, METERS[2]: 7, METERS[0]: 14},
]


@pytest.mark.parametrize("stagger", STAGGERS, ids=["2s-apart", "103-first", "wide"])
async def test_power_cut_in_a02_is_one_area_outage_and_no_comm_fault(
    alert_harness: Any, stagger: dict[str, int]
) -> None:
    h = await alert_harness(topology=TOPOLOGY, rules=RULES, sets=[outage.RULESET])
    site = Site(h, {**stagger, **{f"a01-{i}": i for i in range(6)}})
    await site.run(46)  # every meter has reported three times
    site.powered -= set(METERS)  # the transformer trips: A02's meters stop answering
    await site.run(90)  # silent after 35 s, outage judged 5 s later; well past every comm_fault delay
    retained = h.retained_alerts()
    assert sorted(k for k in retained if k[0] in outage.OutageRule.ids) == [("area_outage", AREA)]
    assert retained[("area_outage", AREA)]["state"] == "firing"

    site.powered |= set(METERS)  # power back: each meter answers at its next poll
    await site.run(60)
    assert not [k for k in h.retained_alerts() if k[0] in outage.OutageRule.ids]

    published = await _published(h)
    area = [s for t, s in published if t == topics.alert_topic("area_outage", AREA)]
    assert area[-1] == "resolved" and set(area[:-1]) == {"firing"}  # firing, updated (n dark), resolved
    assert not [t for t, _ in published if "/comm_fault/" in t or "/meter_supply_lost/" in t]
    assert _outage_rows(h) == {("area_outage", AREA, "firing"), ("area_outage", AREA, "resolved")}
    assert h.engine.stats.dropped_pending >= 1  # the first meter's comm_fault was pending, then covered


async def test_meter_still_silent_when_the_outage_ends_waits_a_fresh_comm_fault_delay(
    alert_harness: Any,
) -> None:
    h = await alert_harness(topology=TOPOLOGY, rules=RULES, sets=[outage.RULESET])
    site = Site(h, {METERS[0]: 0, METERS[1]: 2, METERS[2]: 4})
    await site.run(46)
    site.powered -= set(METERS)
    await site.run(60)
    assert h.engine.firing("area_outage", AREA) is not None
    site.powered |= {METERS[0], METERS[1]}  # 103 stays silent: its own fault, not the outage's
    await site.run(28)  # 101 and 102 are back: the outage ends after the backfill wait (10 s)
    assert h.engine.firing("area_outage", AREA) is None
    late = f"{GW}/{METERS[2]}"
    assert h.engine.firing("comm_fault", late) is None  # not at once: its delay starts now
    await site.run(30)
    fault = h.engine.firing("comm_fault", late)
    assert fault is not None
    assert _outage_rows(h) >= {("comm_fault", late, "firing")}


async def test_lone_silent_meter_is_a_comm_fault_after_silence_plus_delay(alert_harness: Any) -> None:
    h = await alert_harness(topology=TOPOLOGY, rules=RULES, sets=[outage.RULESET])
    site = Site(h, {METERS[0]: 0, METERS[1]: 2, METERS[2]: 4})
    await site.run(16)  # 101 last answers at t=15
    site.powered.discard(METERS[0])
    await site.run(15 + 35 + 29 - 16)  # t=79: silent since 50, 1 s short of the delay
    subject = f"{GW}/{METERS[0]}"
    assert h.engine.firing("comm_fault", subject) is None
    pending = h.engine.get("comm_fault", subject)
    assert pending is not None and pending.started_at == pytest.approx(h.now - 79 + 15)  # its last answer
    await site.run(2)
    fault = h.engine.firing("comm_fault", subject)
    assert fault is not None
    assert ("area_outage", AREA) not in h.retained_alerts()
    site.powered.add(METERS[0])
    await site.run(POLL_S)
    assert h.engine.firing("comm_fault", subject) is None
    assert _outage_rows(h) == {("comm_fault", subject, "firing"), ("comm_fault", subject, "resolved")}
