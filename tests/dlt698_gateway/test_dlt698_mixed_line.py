"""DL/T 645 and DL/T 698.45 meters on one line: each reply matcher skips the other protocol's frames
whole (a 698 meter's late reply heard during a 645 transaction is not a checksum error), and both
drivers poll through one Bus with no frame errors. With a real broker: the gateway polls a mixed line,
everything it publishes decodes with `protocols.topics.decode_payload`, a dead 698 meter is
quarantined, and a signed trip of a 698 meter reads its relay back."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from firmware_sim.devices.dlt645 import Dlt645Meter
from firmware_sim.devices.dlt698 import Dlt698Meter
from gateway.bus import Bus
from gateway.drivers.base import DriverContext
from gateway.drivers.dlt645.config import Dlt645Device
from gateway.drivers.dlt645.driver import Dlt645Driver
from gateway.drivers.dlt698.config import Dlt698Device
from gateway.drivers.dlt698.driver import Dlt698Driver
from gateway.errors import ResponseTimeout
from gateway.line import LineSettings
from gridedge.services import Mosquitto
from protocols import dlt645, topics
from protocols.dlt698 import Data, DataType, GetResponse, GetResult, Oad, get_request, reply_frame
from tests.gateway.helpers import base_config, gateway_plan, recording, sim_line
from tests.gateway.test_commands import KEY, command, final, send
from tests.gateway.test_gateway_mqtt import running

pytestmark = pytest.mark.integration

A645, A698 = "000000000001", "000000000002"
LINE = LineSettings(2400, 8, "E", 1)


def _late_698_replies() -> list[bytes]:
    """698 replies that look like a DL/T 645 frame from inside: an SA byte 68 seven bytes after the
    start, or `68 .. 68 .. 16` in the data (found by feeding random replies to the old matcher)."""
    out = []
    for sa, oad, value in (
        ("810864684849", Oad(0x0068, 0x16, 0x68), 0x0102),
        ("350078224729", Oad(0x0068, 0x16, 0x68), 0x482E68DD),
    ):
        request = get_request(sa, Oad(0x0010, 2), 1)
        result = GetResult(oad, Data(DataType.DOUBLE_LONG_UNSIGNED, value))
        out.append(reply_frame(request, sa, GetResponse(1, result)).encode(2))
    return out


@pytest.mark.parametrize("chunk", [1, 7, 1000], ids=["byte-by-byte", "7-byte-reads", "one-read"])
def test_the_645_matcher_skips_698_frames_whole(chunk: int) -> None:
    request = dlt645.read_request(A645, 0x00010000, dlt645.Version.V2007)
    meter = Dlt645Meter(A645, seed=1, start_time=time.time())
    reply = meter.respond(request.encode(4), time.time())
    assert reply is not None
    for late in _late_698_replies():
        matcher = dlt645.ReplyMatcher.for_request(request)
        stream = late + reply.data
        got = None
        for i in range(0, len(stream), chunk):
            got = matcher.feed(stream[i : i + chunk]) or got
        assert got is not None and got.address == A645
        assert matcher.foreign == 1


async def test_both_kinds_poll_one_line_without_cross_talk(tmp_path: Path) -> None:
    m645 = Dlt645Meter(A645, seed=4, start_time=time.time())
    # replies later than the 698 driver waits: each arrives while the 645 driver's request is out
    m698 = Dlt698Meter(A698, seed=5, start_time=time.time(), turnaround_s=(0.35, 0.35))
    ctx = DriverContext("gw", lambda: int(time.time() * 1000), tmp_path, logging.getLogger("test"))
    async with sim_line([m645, m698], baud=2400, parity="E") as (path, _), Bus("b", path, LINE) as bus:
        d645 = Dlt645Driver(
            Dlt645Device(kind="dlt645", id="m645", address=A645, items=["energy_import_kwh"]), bus, ctx
        )
        slow = Dlt698Driver(
            Dlt698Device(
                kind="dlt698", id="m698", address=A698, reply_timeout_ms=100, retries=0, backfill=False
            ),
            bus,
            ctx,
        )
        for _ in range(3):
            with pytest.raises(ResponseTimeout):
                await slow.poll()
            assert "energy_import_kwh" in (await d645.poll()).samples[0].values
        assert bus.stats.frame_errors == 0
        patient = Dlt698Driver(Dlt698Device(kind="dlt698", id="m698", address=A698, backfill=False), bus, ctx)
        results = await asyncio.gather(*(d.poll() for d in (d645, patient, d645, patient)))
    assert all(not r.samples[0].quality for r in results)
    assert bus.stats.frame_errors == 0


async def test_a_mixed_line_through_the_gateway_and_the_broker(mosquitto: Mosquitto, tmp_path: Path) -> None:
    m645 = Dlt645Meter(A645, seed=2, start_time=time.time())
    m698 = Dlt698Meter(A698, seed=3, start_time=time.time())
    async with sim_line([m645, m698], baud=2400, parity="E") as (path, _), recording(mosquitto.port) as rec:
        devices = [
            {"kind": "dlt645", "id": A645, "address": A645, "interval_s": 3, "items": ["energy_import_kwh"]},
            {
                "kind": "dlt698",
                "id": A698,
                "address": A698,
                "interval_s": 3,
                "control": True,
                "secured_objects": ["balance_cny"],
            },
            {
                "kind": "dlt698",
                "id": "dead-698",
                "address": "000000000009",
                "interval_s": 2,
                "retries": 0,
                "objects": ["energy_import_kwh"],
            },
        ]
        doc = base_config(
            tmp_path,
            mosquitto.port,
            [{"name": "mixed", "port": path, "baud": 2400, "parity": "E", "devices": devices}],
        )
        doc["commands"] = {"key": KEY.decode()}
        async with running(gateway_plan(doc, tmp_path)):
            await rec.wait_for(lambda: rec.samples(A698) and rec.samples(A645), 15)
            trip = command("trip", dev=A698)
            await send(mosquitto.port, trip)
            done = await final(rec, trip)
            assert done["status"] == "done", done
            assert done["state"]["relay_commanded"] == "open" and done["state"]["keep_power"] is False
            states = lambda: [p["state"] for p in rec.of("/dead-698/health")]  # noqa: E731
            await rec.wait_for(lambda: "quarantined" in states(), 20)
            await rec.wait_for(lambda: any(s["values"].get("relay") == "open" for s in rec.samples(A698)), 10)
    now_ms = int(time.time() * 1000)
    for topic, payload, _ in rec.messages:
        topics.decode_payload(topics.parse_topic(topic), json.dumps(payload).encode(), now_ms=now_ms)
    reading = rec.of(f"/{A698}/reading")[0]
    assert reading["protocol"] == "dlt698" and reading.get("quality", {}) == {}
    assert reading["values"]["energy_import_kwh"] == pytest.approx(sum(m698.physics.energy), abs=1)
    assert any(e["event"] == "relay_change" for e in rec.of(f"/{A698}/event"))
    secured = [e for e in rec.of(f"/{A698}/event") if e["event"] == "secured_read"]
    assert secured and secured[0]["data"]["mac_verified"] is False and len(secured[0]["data"]["mac"]) == 8
    assert not [p for p in rec.of(f"/{A645}/health") if p["state"] != "online"]
