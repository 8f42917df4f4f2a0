"""SIGHUP reloads the alert role's topology: after a real SIGHUP to this process (handled as
`gridedge ingest run` installs it) the rules see the new meters and areas; a broken file keeps the old
topology. Through the real broker (alert_harness)."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import yaml

from ingest.alerts.rules import outage, reading
from protocols import messages as m
from protocols import topics

GW = "gw-hup"


def _topology(extra: bool) -> dict[str, Any]:
    devices: dict[str, Any] = {f"{GW}/m1": {"area": "area-1"}, f"{GW}/m2": {"area": "area-1"}}
    areas: dict[str, Any] = {"area-1": {"region": "urban"}}
    if extra:
        devices |= {
            f"{GW}/m3": {"area": "area-1"},
            f"{GW}/n1": {"area": "area-2"},
            f"{GW}/n2": {"area": "area-2"},
        }
        areas |= {"area-2": {"region": "rural"}}
    return {"gateways": {GW: {"site": "s1"}}, "areas": areas, "devices": devices}


async def _start(alert_harness: Any) -> Any:
    rules = {"reading": {"interval_s": 60, "window_factor": 2}}
    h = await alert_harness(topology=_topology(False), rules=rules, sets=[reading.RULESET, outage.RULESET])
    h.cfg = h.cfg.model_copy(update={"topology": h.workdir / "topology.yaml"})
    await h.restart()  # the role now knows its topology file
    return h


async def _readings(h: Any, devs: list[str], volts: float) -> None:
    for dev in devs:
        h.seq = getattr(h, "seq", 0) + 1
        values: dict[str, m.Scalar] = {"voltage_a_v": volts, "energy_import_kwh": float(h.seq)}
        msg = m.Reading(schema=1, gw=GW, dev=dev, seq=h.seq, ts=h.ms(), values=values)
        await h.publish(topics.reading_topic(GW, dev), msg)


async def test_sighup_reload_makes_rules_see_new_meters_and_areas(alert_harness: Any) -> None:
    h = await _start(alert_harness)
    await h.publish(topics.status_topic(GW), m.Status(schema=1, gw=GW, seq=0, ts=h.ms(), state="online"))
    await h.advance(0)
    await _readings(h, ["m1", "m2", "n1", "n2"], 0.0)  # n1, n2 are not in the topology yet
    await h.advance(61)
    assert h.engine.firing("area_outage", "area/area-2") is None

    (h.workdir / "topology.yaml").write_text(yaml.safe_dump(_topology(True)))
    loop = asyncio.get_running_loop()
    h.role.topology_reloaded.clear()
    loop.add_signal_handler(signal.SIGHUP, h.role.reload_topology)
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        async with asyncio.timeout(10):
            await h.role.topology_reloaded.wait()
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
    assert (GW, "m3") in h.role.topology.devices

    await _readings(h, ["m1", "m2"], 220.0)
    await _readings(h, ["n1", "n2"], 0.0)  # now an area the outage rule knows
    await h.advance(61)
    assert h.engine.firing("area_outage", "area/area-2") is not None
    assert h.engine.firing("missed_reading", f"{GW}/m3") is None  # watched from the reload on
    await _readings(h, ["m1", "m2", "n1", "n2"], 220.0)
    await h.advance(60)
    assert h.engine.firing("missed_reading", f"{GW}/m3") is None
    await _readings(h, ["m1", "m2", "n1", "n2"], 220.0)
    await h.advance(61)  # 121 s since the tick after the reload
    assert h.engine.firing("missed_reading", f"{GW}/m3") is not None
    assert {k[1] for k in h.retained_alerts() if k[0] == "missed_reading"} == {f"{GW}/m3"}


async def test_broken_topology_file_keeps_the_previous_one(alert_harness: Any) -> None:
    h = await _start(alert_harness)
    before = h.role.topology
    (h.workdir / "topology.yaml").write_text("devices: {bad key: {}}\n")
    h.role.topology_reloaded.clear()
    h.role.reload_topology()
    assert h.role.topology is before and not h.role.topology_reloaded.is_set()
