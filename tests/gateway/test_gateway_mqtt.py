"""Gateway end to end: simulated Modbus meters on a real pty -> gateway -> a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from pathlib import Path

import pytest

from firmware_sim.devices.modbus import ModbusPrepaidMeter
from gateway.app import Gateway, serve
from gridedge.services import Mosquitto
from protocols import messages as m
from tests.gateway.helpers import base_config, gateway_plan, recording, sim_line

pytestmark = pytest.mark.integration


def modbus_bus(path: str, units: list[int], interval_s: float = 1.0) -> dict:
    return {
        "name": "rs485-1",
        "port": path,
        "baud": 9600,
        "parity": "N",
        "devices": [
            {"kind": "modbus", "id": f"mb-{u}", "unit": u, "interval_s": interval_s, "reply_timeout_ms": 150}
            for u in units
        ],
    }


@contextlib.asynccontextmanager
async def running(plan, **kwargs):
    stop = asyncio.Event()
    ready: asyncio.Future[Gateway] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(plan, stop, on_ready=ready.set_result, **kwargs), name="test:gateway")
    try:
        yield await asyncio.wait_for(ready, 10)
    finally:
        stop.set()
        done, _ = await asyncio.wait({task}, timeout=20)
        if not done:
            stacks = "\n".join(f"{t.get_name()}: {t.get_stack(limit=3)}" for t in asyncio.all_tasks())
            task.cancel()
            raise AssertionError(f"the gateway did not stop within 20 s:\n{stacks}")
        task.result()


async def test_readings_health_and_status_arrive_with_contract_fields(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    meters = [ModbusPrepaidMeter(u, seed=u, start_time=time.time()) for u in (1, 2)]
    async with sim_line(meters) as (path, _line), recording(mosquitto.port) as rec:
        plan = gateway_plan(base_config(tmp_path, mosquitto.port, [modbus_bus(path, [1, 2])]), tmp_path)
        async with running(plan):
            await rec.wait_for(lambda: len(rec.samples("mb-1")) >= 4 and len(rec.samples("mb-2")) >= 2, 15)
            await rec.wait_for(lambda: rec.of("/mb-1/health"), 5)
        await rec.wait_for(lambda: any(p["state"] == "offline" for p in rec.of("gw-test/status")), 5)

    for topic, payload, _ in rec.messages:
        kind = topic.rsplit("/", 1)[-1]
        model = {"reading": m.Reading, "health": m.Health, "status": m.Status}[kind]
        m.validate(m.decode(model, __import__("json").dumps(payload)))
    reading = rec.of("gw-test/mb-1/reading")[0]
    assert reading["gw"] == "gw-test" and reading["dev"] == "mb-1" and reading["protocol"] == "modbus"
    assert {"energy_import_kwh", "balance_cny", "relay", "voltage_a_v"} <= set(reading["values"])
    assert reading["values"]["relay"] == "closed" and reading.get("quality", {}) == {}
    seqs = [p["seq"] for _, p, _ in rec.messages if p.get("gw") == "gw-test"]
    assert len(set(seqs)) == len(seqs), "seq is unique per gateway"
    health = rec.of("gw-test/mb-1/health")[-1]
    assert health["state"] == "online" and health["polls"] >= 1
    states = [p["state"] for p in rec.of("gw-test/status")]
    assert states[0] == "online" and states[-1] == "offline"
    # one reading per interval (1 s), each stamped when it was acquired: strictly increasing, and on
    # average one interval apart (a poll that waited for its neighbour's turn on the bus is stamped late)
    ts = [p["ts"] for p in rec.samples("mb-1")]
    gaps = [b - a for a, b in itertools.pairwise(ts)]
    aligned = gaps[1:]  # the first poll runs at start-up, the next ones on the interval's boundaries
    assert all(g > 0 for g in gaps) and 800 <= sum(aligned) / len(aligned) <= 1200, gaps


async def test_dead_meter_is_quarantined_and_others_keep_their_rate(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    meters = [ModbusPrepaidMeter(u, seed=u, start_time=time.time()) for u in (1, 2, 3)]
    async with sim_line(meters) as (path, line), recording(mosquitto.port) as rec:
        doc = base_config(tmp_path, mosquitto.port, [modbus_bus(path, [1, 2, 3])])
        plan = gateway_plan(doc, tmp_path)
        async with running(plan) as gw:
            await rec.wait_for(lambda: len(rec.samples("mb-3")) >= 1, 10)
            line.devices.remove(meters[2])  # unit 3 goes silent
            start = len(rec.samples("mb-1"))
            t0 = asyncio.get_running_loop().time()
            await rec.wait_for(lambda: gw.runners["mb-3"].health.state == "quarantined", 15)
            await asyncio.sleep(4)
            elapsed = asyncio.get_running_loop().time() - t0
            rate = (len(rec.samples("mb-1")) - start) / elapsed
            assert rate >= 0.8, f"live meter polled at {rate:.2f}/s while its neighbour is dead"
            states = [p["state"] for p in rec.of("gw-test/mb-3/health")]
            assert "degraded" in states and states[-1] == "quarantined"
            # it answers again: the next probe brings it back
            line.devices.append(meters[2])
            gw.runners["mb-3"].health.probe_at = 0
            await rec.wait_for(lambda: rec.of("gw-test/mb-3/health")[-1]["state"] == "online", 10)


async def test_two_buses_dlt645_at_2400_and_modbus_every_item_arrives(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    from firmware_sim.devices.dlt645 import Dlt645Meter

    now = time.time()
    dlt = [Dlt645Meter(a, seed=i, start_time=now) for i, a in enumerate(("000000000001", "000000000002"))]
    mb = [ModbusPrepaidMeter(u, seed=u, start_time=now) for u in (1, 2)]
    items = ["energy_import_kwh", "voltage_a_v", "current_a_a", "balance_cny", "status_word_3"]
    async with (
        sim_line(dlt, baud=2400, parity="E") as (dlt_path, _),
        sim_line(mb) as (mb_path, _),
        recording(mosquitto.port) as rec,
    ):
        dlt_bus = {
            "name": "area-1",
            "port": dlt_path,
            "baud": 2400,
            "parity": "E",
            "devices": [
                {"kind": "dlt645", "id": m.name, "address": m.name, "interval_s": 5, "items": items}
                for m in dlt
            ],
        }
        plan = gateway_plan(
            base_config(tmp_path, mosquitto.port, [dlt_bus, modbus_bus(mb_path, [1, 2])]), tmp_path
        )
        async with running(plan):
            await rec.wait_for(
                lambda: all(rec.samples(d) for d in ("000000000001", "000000000002", "mb-1", "mb-2")), 20
            )
    for dev in ("000000000001", "000000000002"):
        reading = rec.samples(dev)[0]
        payload = rec.of(f"gw-test/{dev}/reading")[0]
        assert payload["protocol"] == "dlt645" and payload["gw"] == "gw-test" and payload["dev"] == dev
        expected = {
            "energy_import_kwh",
            "voltage_a_v",
            "current_a_a",
            "balance_cny",
            "status_word_3",
            "relay",
        }
        assert expected <= set(reading["values"]), reading
        assert not reading.get("quality")
    for dev in ("mb-1", "mb-2"):
        assert rec.of(f"gw-test/{dev}/reading")[0]["protocol"] == "modbus"
