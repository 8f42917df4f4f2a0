"""missed_reading for topology meters that never report: raised once their window has passed since the
role started (its first tick), kept across a restart, not for hall devices, off with
`expect_topology_meters: false`; the first reading resolves it. Through the real broker (alert_harness)."""

from __future__ import annotations

from typing import Any

from ingest.alerts.rules import reading
from protocols import messages as m
from protocols import topics

GW = "gw-rx"
TOPOLOGY = {
    "gateways": {GW: {"site": "s1"}},
    "areas": {"area-1": {"region": "urban"}},
    "devices": {
        f"{GW}/m1": {"area": "area-1"},
        f"{GW}/m2": {"area": "area-1"},
        f"{GW}/m3": {"account": "A-3"},  # no area, but an account: a billing meter, expected too
        f"{GW}/q1": {"hall": "hall-1"},  # a queue machine: not a meter
    },
}
RULES = {"reading": {"interval_s": 60, "window_factor": 2}}  # window 120 s


async def _reading(h: Any, dev: str, seq: int) -> None:
    msg = m.Reading(schema=1, gw=GW, dev=dev, seq=seq, ts=h.ms(), values={"energy_import_kwh": 100.0 + seq})
    await h.publish(topics.reading_topic(GW, dev), msg)


def _missed(h: Any) -> dict[str, dict[str, Any]]:
    return {s: p for (r, s), p in h.retained_alerts().items() if r == "missed_reading"}


async def test_never_reporting_meter_fires_after_its_window_and_resolves(alert_harness: Any) -> None:
    h = await alert_harness(topology=TOPOLOGY, rules=RULES, sets=[reading.RULESET])
    t0 = h.now
    await h.advance(0)  # the role's first tick: the never-heard meters are watched from here
    await _reading(h, "m1", 1)
    await h.advance(100)
    await _reading(h, "m1", 2)
    assert _missed(h) == {}  # 100 s < 120 s
    await h.restart()  # a restart does not restart the never-heard meters' clock
    await h.advance(21)
    missed = _missed(h)
    assert sorted(missed) == [f"{GW}/m2", f"{GW}/m3"]
    assert missed[f"{GW}/m2"]["start_ts"] == round(t0 * 1000)
    assert "no reading from gw-rx/m2 ever" in missed[f"{GW}/m2"]["message"]
    rows = [r for r in h.influx_alerts() if r["rule"] == "missed_reading"]
    assert sorted((r["subject"], r["state"]) for r in rows) == [
        (f"{GW}/m2", "firing"),
        (f"{GW}/m3", "firing"),
    ]

    await _reading(h, "m2", 1)  # it reports at last
    await h.advance(1)
    assert sorted(_missed(h)) == [f"{GW}/m3"]


async def test_off_when_not_expected(alert_harness: Any) -> None:
    rules = {"reading": {**RULES["reading"], "expect_topology_meters": False}}
    h = await alert_harness(topology=TOPOLOGY, rules=rules, sets=[reading.RULESET])
    await h.advance(0)
    await _reading(h, "m1", 1)
    await h.advance(121)
    assert sorted(_missed(h)) == [f"{GW}/m1"]  # only the meter seen once is watched
