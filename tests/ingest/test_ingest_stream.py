"""Ingest against a real Mosquitto and a real influxd: exactly once per (series, ts), dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from tests.ingest.helpers import (
    T0,
    DeadLetters,
    StreamPublisher,
    count,
    ingest_config,
    reading,
    running,
    stream,
    wait_until,
)

pytestmark = pytest.mark.integration


async def test_100k_readings_from_200_devices_arrive_exactly_once(mosquitto, influxdb) -> None:
    messages = list(stream(devices=200, per_device=500))
    cfg = ingest_config(mosquitto.port, influxdb.url, influxdb.database)
    async with running(cfg) as ingest:
        pub = StreamPublisher(mosquitto.port)
        try:
            await asyncio.to_thread(pub.publish_all, messages)
        finally:
            pub.close()
        await wait_until(
            lambda: ingest.stats.messages_in >= len(messages) and not ingest.subscriber.backlog, 120
        )
        await wait_until(lambda: ingest.stats.acked >= len(messages), 30)
    assert count(influxdb) == 100_000
    per_series = influxdb.query('SELECT count("voltage_a_v") FROM "meter" GROUP BY "dev"')
    assert len(per_series) == 200 and {s["values"][0][1] for s in per_series} == {500}
    assert ingest.stats.deadletters == 0 and ingest.stats.readings_in == 100_000


async def test_malformed_messages_are_dead_lettered_and_the_good_ones_stored(mosquitto, influxdb) -> None:
    good = list(stream(devices=10, per_device=99))
    bad = [
        ("gridedge/v1/gw-1/m0000/reading", b"{not json"),
        ("gridedge/v1/gw-1/m0000/reading", reading("gw-1", "m0000", 1, T0, schema=99)),
        (
            "gridedge/v1/gw-1/m0001/reading",
            reading("gw-1", "m0001", 1, T0).replace(b"voltage_a_v", b"voltage_zz"),
        ),
        ("gridedge/v1/gw-1/m0002/reading", reading("gw-1", "m0009", 1, T0)),  # topic/payload disagree
        ("gridedge/v1/gw-1/m0003/reading", reading("gw-1", "m0003", 1, 5)),  # absurd timestamp
        ("gridedge/v1/gw-1/m0004/reading", b"[" + b"1," * 300_000 + b"1]"),  # oversize
        ("gridedge/v1/gw-1/m0005/reading", json.dumps({"schema": 1, "gw": "gw-1"}).encode()),
        (
            "gridedge/v1/gw-1/m0006/reading",
            reading("gw-1", "m0006", 1, T0).replace(b'"relay": "closed"', b'"relay": 7'),
        ),
        ("gridedge/v1/gw-1/m0007/reading", reading("gw-1", "m0007", 1, T0).replace(b"220.", b"1e999")),
        (
            "gridedge/v1/gw-1/m0008/event",
            json.dumps(
                {"schema": 1, "gw": "gw-1", "dev": "m0008", "seq": 1, "ts": T0, "event": "nope"}
            ).encode(),
        ),
    ]
    messages = good[:500] + bad + good[500:]
    watcher = DeadLetters(mosquitto.port)
    cfg = ingest_config(mosquitto.port, influxdb.url, influxdb.database)
    try:
        async with running(cfg) as ingest:
            pub = StreamPublisher(mosquitto.port)
            try:
                await asyncio.to_thread(pub.publish_all, messages)
            finally:
                pub.close()
            try:
                await wait_until(lambda: ingest.stats.acked >= len(messages), 30)
            except TimeoutError:
                raise AssertionError(f"{ingest.stats}, {len(messages)}, {watcher.messages}") from None
            with contextlib.suppress(TimeoutError):
                await wait_until(lambda: len(watcher.messages) >= len(bad), 10)
    finally:
        watcher.close()
    assert count(influxdb) == len(good)
    assert len(watcher.messages) == len(bad), (watcher.messages, ingest.stats)
    reasons = {(d["topic"], d["field"]): d["reason"] for d in watcher.messages}
    assert "not valid JSON" in reasons[("gridedge/v1/gw-1/m0000/reading", "$")] or any(
        "JSON" in r for r in reasons.values()
    )
    assert any("schema" in f for _, f in reasons) and any(f == "$.dev" for _, f in reasons)
    assert any("voltage_zz" in r for r in reasons.values())
    assert all(d["reason"] for d in watcher.messages)
    assert ingest.stats.deadletters == len(bad)


async def test_metrics_are_written_as_measurement_ingest(mosquitto, influxdb) -> None:
    cfg = ingest_config(mosquitto.port, influxdb.url, influxdb.database)
    async with running(cfg) as ingest:
        pub = StreamPublisher(mosquitto.port)
        try:
            await asyncio.to_thread(pub.publish_all, list(stream(devices=5, per_device=4)))
        finally:
            pub.close()
        await wait_until(lambda: count(influxdb, "ingest", "messages_in") >= 1, 10, interval=0.3)
        assert ingest.stats.points_written >= 20
    series = influxdb.query('SELECT last("messages_in"), last("mqtt_connected") FROM "ingest"')
    assert series[0]["values"][0][1] >= 0 and series[0]["values"][0][2] is True
