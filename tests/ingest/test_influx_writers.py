"""Both InfluxDB writers against the real influxd: what the database refuses is isolated and the rest kept,
429/503 are retried after the database's Retry-After, and the 2.x/3.x writer (influxdb-client) stores
through the v2 write API. See tests/ingest/influx_front.py for what stands between them and influxd."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ingest import service
from ingest.config import InfluxSection, IngestConfig
from ingest.influx import InfluxV1, InfluxV2, InfluxWriter, make_writer
from ingest.service import Ingest
from protocols.config import load as load_model
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
from tests.ingest.influx_front import InfluxFront

pytestmark = pytest.mark.integration

CONFLICT = 'meter,gw=gw-1,dev=m0000 frequency_hz="not a number" {ts}'  # makes frequency_hz a string field


@pytest.fixture
def front(influxdb: Any) -> Iterator[InfluxFront]:
    f = InfluxFront(influxdb.url)
    yield f
    f.close()


def section(version: int, influxdb: Any, front: InfluxFront) -> InfluxSection:
    doc: dict[str, Any] = {"url": front.url, "retry_min_s": 0.05, "retry_max_s": 0.2}
    if version == 1:
        doc |= {"database": influxdb.database}
    else:  # 1.8's compatibility form: bucket "database/retention-policy"
        doc |= {"version": 2, "org": "acme", "bucket": f"{influxdb.database}/autogen", "token": "s3cret"}
    return InfluxSection.model_validate(doc)


@contextlib.asynccontextmanager
async def writer(cfg: InfluxSection) -> AsyncIterator[InfluxWriter]:
    w = make_writer(cfg)
    try:
        yield w
    finally:
        await w.close()


def lines(n: int, ts: int = T0) -> list[str]:
    return [
        f"meter,gw=gw-1,dev=m{i:04d} voltage_a_v={220 + i / 10},energy_import_kwh={i}.5 {ts + i}"
        for i in range(n)
    ]


async def test_v2_writer_posts_the_v2_api_through_influxdb_client(influxdb: Any, front: InfluxFront) -> None:
    async with writer(section(2, influxdb, front)) as w:
        assert isinstance(w, InfluxV2)
        assert await w.write(lines(500)) == []
    assert count(influxdb) == 500
    [(method, path, headers)] = front.writes()
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
    assert (method, path.split("?")[0]) == ("POST", "/api/v2/write")
    assert query == {"org": "acme", "bucket": f"{influxdb.database}/autogen", "precision": "ms"}
    assert headers["Authorization"] == "Token s3cret"


@pytest.mark.parametrize("version", [1, 2])
async def test_a_refused_point_is_isolated_with_the_database_reason(
    version: int, influxdb: Any, front: InfluxFront
) -> None:
    influxdb.write(CONFLICT.format(ts=T0 - 1))
    batch = lines(40)
    bad = f"meter,gw=gw-1,dev=m0007 voltage_a_v=1.0,frequency_hz=50.0 {T0 + 100}"
    batch.insert(17, bad)
    async with writer(section(version, influxdb, front)) as w:
        assert isinstance(w, InfluxV1 if version == 1 else InfluxV2)
        refused = await w.write(batch)
    assert [line for line, _ in refused] == [bad]
    assert "field type conflict" in refused[0][1] and "frequency_hz" in refused[0][1]
    assert count(influxdb) == 40  # every other point of the batch is stored
    assert len(front.writes()) <= 2 * 6 + 1  # bisection: about 2 log2(41) requests, not one per line


@pytest.mark.parametrize("version", [1, 2])
async def test_429_and_503_are_retried_after_the_database_retry_after(
    version: int, influxdb: Any, front: InfluxFront
) -> None:
    front.answers.extend(
        [
            (429, {"Retry-After": "1", "Content-Type": "application/json"}, b'{"code":"too many requests"}'),
            (503, {"Retry-After": "1"}, b"overloaded"),
            (503, {}, b"still overloaded"),  # no Retry-After: our back-off (retry_min_s 0.05)
        ]
    )
    ingest = Ingest(IngestConfig(influx=section(version, influxdb, front)))
    try:
        started = time.monotonic()
        assert await ingest._write(lines(100)) == []
        elapsed = time.monotonic() - started
    finally:
        await ingest.writer.close()
    assert 2.0 <= elapsed < 10, elapsed  # back-off alone (0.05 s, 0.1 s, ...) would be done in 0.2 s
    assert ingest.stats.write_retries == 3 and ingest.stats.influx_ok
    assert len(front.writes()) == 4 and count(influxdb) == 100


async def test_v2_connection_refused_is_retryable_not_fatal(influxdb: Any, front: InfluxFront) -> None:
    cfg = section(2, influxdb, front).model_copy(update={"url": "http://127.0.0.1:9"})
    ingest = Ingest(IngestConfig(influx=cfg))
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await ingest._write(lines(3))
    finally:
        await ingest.writer.close()
    assert ingest.stats.write_retries >= 2 and not ingest.stats.influx_ok


async def test_the_ingest_dead_letters_a_refused_point_and_stores_the_rest(
    mosquitto: Any, influxdb: Any
) -> None:
    """End to end: a reading InfluxDB refuses (a field type conflict) is dead-lettered with the database's
    message; the good readings around it, in the same batches, are stored and acknowledged."""
    influxdb.write(CONFLICT.format(ts=T0 - 1))
    good = [
        (f"gridedge/v1/gw-1/m{d:04d}/reading", reading("gw-1", f"m{d:04d}", i * 10 + d + 1, T0 + i * 1000))
        for i in range(50)
        for d in range(10)
    ]
    bad_payload = json.loads(reading("gw-1", "m0003", 9999, T0 + 777))
    bad_payload["values"]["frequency_hz"] = 50.0
    messages = [
        *good[:250],
        ("gridedge/v1/gw-1/m0003/reading", json.dumps(bad_payload).encode()),
        *good[250:],
    ]
    watcher = DeadLetters(mosquitto.port)
    try:
        async with running(ingest_config(mosquitto.port, influxdb.url, influxdb.database)) as ingest:
            pub = StreamPublisher(mosquitto.port)
            try:
                await asyncio.to_thread(pub.publish_all, messages)
            finally:
                pub.close()
            await wait_until(lambda: ingest.stats.acked >= len(messages), 30)
            await wait_until(lambda: watcher.messages, 10)
    finally:
        watcher.close()
    assert count(influxdb) == len(good)
    [letter] = watcher.messages
    assert letter["topic"] == "gridedge/v1/gw-1/m0003/reading" and '"seq": 9999' in letter["payload"]
    assert "InfluxDB refused the point" in letter["reason"] and "field type conflict" in letter["reason"]
    assert ingest.stats.rejected_points == 1 and ingest.stats.deadletters == 1


def test_version_2_without_a_bucket_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(Exception, match=r"influx\.bucket"):
        load_model(IngestConfig, '{"influx": {"version": 2, "org": "acme"}}', source="i.yaml", environ={})


async def test_a_lasting_failure_is_said_again_while_it_lasts(
    influxdb: Any, front: InfluxFront, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first failure is a warning, then one again every STILL_FAILING_S (a wrong password never
    heals by itself and must not go quiet after one line), and the recovery is said too."""
    monkeypatch.setattr(service, "STILL_FAILING_S", 0.25)
    front.answers.extend([(503, {"Retry-After": "0.1"}, b"overloaded")] * 8)
    caplog.set_level(logging.DEBUG, logger="ingest")
    ingest = Ingest(IngestConfig(influx=section(1, influxdb, front)))
    try:
        assert await ingest._write(lines(3)) == []
    finally:
        await ingest.writer.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "retrying in 0.1 s" in warnings[0]
    assert 2 <= sum("still failing after" in w for w in warnings) <= 4, warnings
    assert warnings[-1] == "influx: writing again" and count(influxdb) == 3
