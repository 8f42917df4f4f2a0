"""A refused point is traced back to its message by its position in the batch, not by its text: two
messages can make the very same line (a reading the gateway's spool sent twice), and each refused copy
must dead-letter its own message — none acknowledged without a trace. Real Mosquitto and influxd."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ingest.influx import InfluxV1
from ingest.service import Ingest
from tests.ingest.helpers import (
    T0,
    DeadLetters,
    StreamPublisher,
    count,
    ingest_config,
    reading,
    running,
    wait_until,
)

pytestmark = pytest.mark.integration

CONFLICT = 'meter,gw=gw-1,dev=m0000 frequency_hz="not a number" {ts}'  # frequency_hz becomes a string field


def _refused_reading() -> bytes:
    payload = json.loads(reading("gw-1", "m0003", 77, T0 + 777))
    payload["values"]["frequency_hz"] = 50.0  # a float where the database holds strings: refused
    return json.dumps(payload).encode()


async def test_write_indexed_names_each_refused_copy_by_position(influxdb: Any) -> None:
    influxdb.write(CONFLICT.format(ts=T0 - 1))
    bad = f"meter,gw=gw-1,dev=m0003 voltage_a_v=1.0,frequency_hz=50.0 {T0 + 100}"
    lines = [f"meter,gw=gw-1,dev=m{i:04d} voltage_a_v=220.{i} {T0 + i}" for i in range(20)]
    lines[4] = lines[13] = bad
    cfg = ingest_config(1883, influxdb.url, influxdb.database).influx
    writer = InfluxV1(cfg)
    try:
        refused = await writer.write_indexed(lines)
    finally:
        await writer.close()
    assert [i for i, _ in refused] == [4, 13]
    assert all("field type conflict" in reason for _, reason in refused)
    assert count(influxdb) == 18


async def test_two_identical_refused_readings_are_each_dead_lettered(mosquitto: Any, influxdb: Any) -> None:
    influxdb.write(CONFLICT.format(ts=T0 - 1))
    good = [
        (f"gridedge/v1/gw-1/m{d:04d}/reading", reading("gw-1", f"m{d:04d}", d + 1, T0 + d * 1000))
        for d in range(10)
    ]
    bad = ("gridedge/v1/gw-1/m0003/reading", _refused_reading())
    messages = [*good[:3], bad, *good[3:7], bad, *good[7:]]  # the same message twice, one batch
    cfg = ingest_config(mosquitto.port, influxdb.url, influxdb.database)
    # one batch for all of them: the batch is written a second after its first message came in
    cfg = cfg.model_copy(update={"influx": cfg.influx.model_copy(update={"flush_interval_s": 1.0})})
    watcher = DeadLetters(mosquitto.port)
    ingest: Ingest
    try:
        async with running(cfg) as ingest:
            pub = StreamPublisher(mosquitto.port)
            try:
                await asyncio.to_thread(pub.publish_all, messages)
            finally:
                pub.close()
            await wait_until(lambda: ingest.stats.acked >= len(messages), 30)
            await wait_until(lambda: len(watcher.messages) >= ingest.stats.deadletters, 10)
    finally:
        watcher.close()
    assert ingest.stats.batches == 1, "the two copies must share a batch for this test to mean anything"
    assert ingest.stats.rejected_points == 2
    assert ingest.stats.deadletters == 2, "each refused copy dead-letters its own message"
    assert len(watcher.messages) == 2
    for letter in watcher.messages:
        assert letter["topic"] == bad[0] and "field type conflict" in letter["reason"]
    assert count(influxdb) == len(good)
