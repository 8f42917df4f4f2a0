"""Ingest resilience with real parts: influxd down for 30 s, the ingest SIGKILLed, two shared writers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ingest.helpers import StreamPublisher, count, ingest_config, running, stream, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DB_OUTAGE_S = float(os.environ.get("GRIDEDGE_TEST_DB_OUTAGE_S", "30"))


@pytest.mark.timeout(DB_OUTAGE_S + 120)
async def test_influxd_down_for_30_s_loses_nothing_and_memory_stays_bounded(
    mosquitto, private_influxdb
) -> None:
    db = private_influxdb
    messages = list(stream(devices=100, per_device=200))  # 20,000 readings
    first, second = messages[:5000], messages[5000:]
    cfg = ingest_config(mosquitto.port, db.url, db.database, max_unacked=1000)
    async with running(cfg) as ingest:
        pub = StreamPublisher(mosquitto.port)
        try:
            await asyncio.to_thread(pub.publish_all, first)
            await wait_until(lambda: ingest.stats.acked >= len(first), 30)
            await asyncio.to_thread(db.stop)
            await asyncio.to_thread(pub.publish_all, second)  # the broker takes them all
            held = []
            for _ in range(int(DB_OUTAGE_S)):
                await asyncio.sleep(1)
                held.append(ingest.subscriber.backlog + ingest.stats.messages_in - ingest.stats.acked)
            assert ingest.stats.influx_ok is False and ingest.stats.write_retries > 0
            # Receive Maximum bounds what the ingest holds: the backlog stays in the broker (Debian's
            # Mosquitto 2.0 was seen to let one message past the quota, hence the 1 % slack)
            assert max(held) <= cfg.mqtt.max_unacked * 1.01, held
            assert ingest.subscriber.backlog + ingest.stats.messages_in < len(messages), "not all taken in"
            await asyncio.to_thread(db.start)
            await wait_until(lambda: ingest.stats.acked >= len(messages), 60)
        finally:
            pub.close()
    assert count(db) == len(messages)


@pytest.mark.timeout(180)
async def test_sigkilled_ingest_restarts_with_nothing_missing_or_doubled(
    mosquitto, influxdb, tmp_path: Path
) -> None:
    doc = {
        "mqtt": {
            "host": "127.0.0.1",
            "port": mosquitto.port,
            "client_id": "ingest-kill",
            "max_unacked": 2000,
        },
        "influx": {"url": influxdb.url, "database": influxdb.database},
    }
    config = tmp_path / "ingest.yaml"
    config.write_text(yaml.safe_dump(doc))
    argv = [sys.executable, "-m", "gridedge", "ingest", "run", "-c", str(config)]
    log = (tmp_path / "ingest.log").open("ab")
    messages = list(stream(devices=50, per_device=400))  # 20,000
    proc = subprocess.Popen(argv, stdout=log, stderr=log)
    pub = StreamPublisher(mosquitto.port)
    try:
        await asyncio.sleep(2)  # the session (and its subscription) exists before the stream starts
        publishing = asyncio.create_task(asyncio.to_thread(pub.publish_all, messages, 5000.0))
        await wait_until(lambda: count(influxdb) >= 3000, 30, interval=0.2)
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        stored_at_kill = count(influxdb)
        proc = subprocess.Popen(argv, stdout=log, stderr=log)
        await publishing
        await wait_until(lambda: count(influxdb) >= len(messages), 60, interval=0.5)
        await asyncio.sleep(1)
    finally:
        pub.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 20)
        log.close()
    assert stored_at_kill < len(messages), "the kill happened mid-stream"
    assert count(influxdb) == len(messages)
    per_series = influxdb.query('SELECT count("voltage_a_v") FROM "meter" GROUP BY "dev"')
    assert {s["values"][0][1] for s in per_series} == {400}


async def test_two_writers_on_a_shared_subscription_split_the_stream(mosquitto, influxdb) -> None:
    messages = list(stream(devices=40, per_device=250))  # 10,000
    cfg_a = ingest_config(
        mosquitto.port, influxdb.url, influxdb.database, client_id="writer-a", shared_group="w"
    )
    cfg_b = ingest_config(
        mosquitto.port, influxdb.url, influxdb.database, client_id="writer-b", shared_group="w"
    )
    async with running(cfg_a) as a, running(cfg_b) as b:
        pub = StreamPublisher(mosquitto.port)
        try:
            await asyncio.to_thread(pub.publish_all, messages)
        finally:
            pub.close()
        await wait_until(lambda: a.stats.acked + b.stats.acked >= len(messages), 60)
    assert a.stats.messages_in > 1000 and b.stats.messages_in > 1000, (a.stats, b.stats)
    assert a.stats.messages_in + b.stats.messages_in == len(messages)
    assert count(influxdb) == len(messages)
