"""Shared fixtures: real Mosquitto and InfluxDB on free loopback ports, pseudo-terminals, and a guard
that fails any async test that leaves asyncio tasks running.

Integration tests use these real parts; nothing here mocks a broker or a database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gridedge.services import InfluxDB, Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private broker for this test (stop()/start() restarts it on the same port and data)."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    """One influxd 1.x for the session; tests get their own database from `influxdb`."""
    server = InfluxDB(tmp_path_factory.mktemp("influxd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influxdb(influxd: InfluxDB) -> Iterator[InfluxDB]:
    """A fresh, empty database on the session's influxd (same process, unique database name)."""
    db = InfluxDB(influxd.workdir, port=influxd.port, database=f"t_{uuid.uuid4().hex[:12]}")
    db.query(f'CREATE DATABASE "{db.database}"', method="POST")
    yield db
    db.query(f'DROP DATABASE "{db.database}"', method="POST")


@pytest.fixture
def private_influxdb(tmp_path: Path) -> Iterator[InfluxDB]:
    """An influxd of this test's own, for tests that stop and restart the database."""
    server = InfluxDB(tmp_path / "influxd")
    server.start()
    yield server
    server.stop()


@dataclass
class PtyPair:
    master_fd: int
    slave_fd: int
    path: str


@pytest.fixture
def pty_pair() -> Iterator[PtyPair]:
    """A raw pseudo-terminal: the simulator side holds `master_fd`, the code under test opens `path`."""
    master, slave = os.openpty()
    tty.setraw(slave)
    pair = PtyPair(master, slave, os.ttyname(slave))
    yield pair
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


# ---- task-leak guard -------------------------------------------------------------------------


def leaked_tasks() -> list[asyncio.Task[object]]:
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not current and not t.done()]


@pytest.fixture
async def _no_leaked_tasks() -> AsyncIterator[None]:
    yield
    await asyncio.sleep(0)
    leftover = leaked_tasks()
    if leftover:
        names = sorted(t.get_name() for t in leftover)
        for task in leftover:
            task.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)
        pytest.fail(f"test left {len(leftover)} asyncio task(s) running: {names}")


@pytest.fixture(autouse=True)
def _guard_async_tasks(request: pytest.FixtureRequest) -> None:
    if asyncio.iscoroutinefunction(getattr(request.node, "obj", None)):
        request.getfixturevalue("_no_leaked_tasks")
