"""The 1.x writer's `influx.retention_policy` (`rp` of /write) and `influx.username` / `password` (Basic
auth) against a real influxd 1.6: points land in the named retention policy and nowhere else; with
authentication on, the right credentials store, while a wrong password (401) or a user without WRITE
(403) stores nothing and raises RetryableWrite, so the ingest keeps the MQTT messages unacknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gridedge.services import InfluxDB, Mosquitto
from ingest.config import InfluxSection
from ingest.errors import RetryableWrite
from ingest.influx import InfluxV1, InfluxWriter, make_writer
from tests.ingest.helpers import T0, StreamPublisher, count, ingest_config, running, stream, wait_until

pytestmark = pytest.mark.integration

ADMIN = ("admin", 'adm\'n "pw"')  # quotes: the admin is created through InfluxQL string literals


def now_lines(n: int, dev: str = "m0001") -> list[str]:
    """n points of one series, 1 s apart and ending now: a 1 h retention policy takes them."""
    now = int(time.time() * 1000)
    return [f"meter,gw=gw-1,dev={dev} voltage_a_v={230 + i / 10} {now - i * 1000}" for i in range(n)]


@contextlib.asynccontextmanager
async def writer(server: InfluxDB, **options: Any) -> AsyncIterator[InfluxWriter]:
    cfg = InfluxSection.model_validate({"url": server.url, "database": server.database, **options})
    w = make_writer(cfg)
    try:
        yield w
    finally:
        await w.close()


def rp_count(db: InfluxDB, rp: str) -> int:
    series = db.query(f'SELECT count("voltage_a_v") FROM "{rp}"."meter"')
    return int(series[0]["values"][0][1]) if series else 0  # type: ignore[index]


# ---- retention policy -------------------------------------------------------------------------


async def test_points_go_to_the_configured_retention_policy_and_not_the_default(influxdb: InfluxDB) -> None:
    influxdb.query(
        f'CREATE RETENTION POLICY "short" ON "{influxdb.database}" DURATION 1h REPLICATION 1', method="POST"
    )
    async with writer(influxdb, retention_policy="short") as w:
        assert await w.write(now_lines(10)) == []
    async with writer(influxdb) as w:  # control: without the option the default RP gets them
        assert await w.write(now_lines(3, dev="m0002")) == []
    assert rp_count(influxdb, "short") == 10
    assert rp_count(influxdb, "autogen") == 3 and count(influxdb) == 3  # the default RP: autogen's 3 only


async def test_a_point_older_than_the_retention_policy_is_refused_for_good(influxdb: InfluxDB) -> None:
    """A 1 h policy has no shard for last year's timestamp: influxd drops the line (400), the writer
    isolates it for the dead-letter topic and stores the others of the batch."""
    influxdb.query(
        f'CREATE RETENTION POLICY "short" ON "{influxdb.database}" DURATION 1h REPLICATION 1', method="POST"
    )
    old = f"meter,gw=gw-1,dev=m0001 voltage_a_v=230.1 {T0}"
    good = now_lines(4)
    async with writer(influxdb, retention_policy="short") as w:
        refused = await w.write([*good[:2], old, *good[2:]])
    assert [line for line, _ in refused] == [old]
    assert "points beyond retention policy" in refused[0][1]
    assert rp_count(influxdb, "short") == 4


async def test_an_unknown_retention_policy_is_retried_not_dead_lettered(influxdb: InfluxDB) -> None:
    """influxd answers 500 'retention policy not found': retryable, so a misspelt `retention_policy`
    keeps the messages unacknowledged (and the ingest retrying) rather than losing them."""
    async with writer(influxdb, retention_policy="nope") as w:
        with pytest.raises(RetryableWrite, match=r"HTTP 500: retention policy not found: nope"):
            await w.write(now_lines(2))
    assert count(influxdb) == 0


# ---- user / password on an influxd with authentication ----------------------------------------


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[InfluxDB]:
    """A private influxd with `auth-enabled = true` and the admin ADMIN."""
    server = InfluxDB(tmp_path / "influxd-auth", admin=ADMIN)
    server.start()
    yield server
    server.stop()


def add_user(server: InfluxDB, user: str, password: str, privilege: str) -> None:
    server.query(f"CREATE USER \"{user}\" WITH PASSWORD '{password}'", method="POST")
    server.query(f'GRANT {privilege} ON "{server.database}" TO "{user}"', method="POST")


async def test_the_right_password_stores_the_points(secured: InfluxDB) -> None:
    async with writer(secured, username=ADMIN[0], password=ADMIN[1]) as w:
        assert await w.write(now_lines(5)) == []
    assert count(secured) == 5


async def test_a_user_with_write_privilege_only_stores_the_points(secured: InfluxDB) -> None:
    add_user(secured, "ingest", "ingest-pw", "WRITE")
    async with writer(secured, username="ingest", password="ingest-pw") as w:
        assert await w.write(now_lines(5)) == []
    assert count(secured) == 5


@pytest.mark.parametrize(
    ("credentials", "influxd_says"),
    [
        ({"username": ADMIN[0], "password": "not-the-password"}, "authorization failed"),
        ({"username": "nobody", "password": "not-the-password"}, "authorization failed"),
        ({}, "unable to parse authentication credentials"),  # no username: no Authorization header
    ],
    ids=["wrong-password", "unknown-user", "no-credentials"],
)
async def test_bad_credentials_store_nothing_and_raise_retryable_401(
    secured: InfluxDB, credentials: dict[str, str], influxd_says: str
) -> None:
    async with writer(secured, **credentials) as w:
        with pytest.raises(RetryableWrite) as caught:
            await w.write(now_lines(5))
    message = str(caught.value)
    assert (
        message
        == f"InfluxDB {secured.url}: HTTP 401: {influxd_says} (check influx.username / influx.password)"
    )
    assert "not-the-password" not in message
    assert count(secured) == 0


async def test_a_read_only_user_stores_nothing_and_raises_retryable_403(secured: InfluxDB) -> None:
    add_user(secured, "reader", "reader-pw", "READ")
    async with writer(secured, username="reader", password="reader-pw") as w:
        with pytest.raises(RetryableWrite) as caught:
            await w.write(now_lines(5))
    assert str(caught.value) == (
        f'InfluxDB {secured.url}: HTTP 403: "reader" user is not authorized to write to database '
        f'"{secured.database}" (check influx.username / influx.password)'
    )
    assert count(secured) == 0


async def test_create_database_with_credentials(secured: InfluxDB) -> None:
    fresh = InfluxDB(secured.workdir, port=secured.port, database=f"t_{uuid.uuid4().hex[:12]}", admin=ADMIN)
    async with writer(fresh, username=ADMIN[0], password=ADMIN[1]) as w:
        assert isinstance(w, InfluxV1)
        assert await w.create_database()
        assert await w.create_database()  # idempotent: the ingest runs it at every start
        assert await w.write(now_lines(3)) == []
    [databases] = secured.query("SHOW DATABASES")
    assert [fresh.database] in databases["values"]  # type: ignore[operator]
    assert count(fresh) == 3


async def test_create_database_needs_an_admin(secured: InfluxDB) -> None:
    """A WRITE-only user (enough for the points) may not CREATE DATABASE: 403, said as False (the
    ingest then writes to the database as it is instead of retrying forever)."""
    add_user(secured, "ingest", "ingest-pw", "WRITE")
    name = f"t_{uuid.uuid4().hex[:12]}"
    async with writer(secured, database=name, username="ingest", password="ingest-pw") as w:
        assert isinstance(w, InfluxV1)
        assert await w.create_database() is False
    [databases] = secured.query("SHOW DATABASES")
    assert [name] not in databases["values"]  # type: ignore[operator]


async def test_an_ingest_with_a_least_privilege_user_starts_and_stores(
    secured: InfluxDB, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """create_database is on by default; a WRITE-only user cannot CREATE DATABASE. The ingest says so
    once and consumes (it used to retry CREATE DATABASE forever and never subscribe)."""
    add_user(secured, "ingest", "ingest-pw", "WRITE")
    cfg = ingest_config(mosquitto.port, secured.url, secured.database)
    influx = cfg.influx.model_copy(update={"username": "ingest", "password": "ingest-pw"})
    caplog.set_level(logging.WARNING, logger="ingest")
    async with running(cfg.model_copy(update={"influx": influx})) as ingest:
        pub = StreamPublisher(mosquitto.port)
        try:
            await asyncio.to_thread(pub.publish_all, list(stream(devices=5, per_device=20)))
        finally:
            pub.close()
        await wait_until(lambda: ingest.stats.acked >= 100, 20)
    assert count(secured) == 100
    assert "may not CREATE DATABASE" in caplog.text and "influx.create_database: false" in caplog.text
