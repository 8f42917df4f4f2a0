"""The real-service fixtures themselves: broker round trip, influxd write/query, pty, task guard."""

from __future__ import annotations

import asyncio
import os

import pytest

from gridedge.services import InfluxDB, Mosquitto
from tests.conftest import leaked_tasks


async def test_leaked_task_is_detected() -> None:
    task = asyncio.create_task(asyncio.sleep(10), name="deliberate-leak")
    assert [t.get_name() for t in leaked_tasks()] == ["deliberate-leak"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert leaked_tasks() == []


def test_pty_pair_is_raw(pty_pair) -> None:
    fd = os.open(pty_pair.path, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, b"\x68\x0d\x0a\x16")  # CR/LF must pass untranslated
        assert os.read(pty_pair.master_fd, 16) == b"\x68\x0d\x0a\x16"
        os.write(pty_pair.master_fd, b"\xfe\x03")
        assert os.read(fd, 16) == b"\xfe\x03"
    finally:
        os.close(fd)


def test_influxdb_write_and_query(influxdb: InfluxDB) -> None:
    influxdb.write("meter,gw=gw1,dev=m1 voltage_a_v=230.1 1763820000000\n")
    series = influxdb.query("SELECT voltage_a_v FROM meter")
    assert series[0]["values"] == [[1763820000000, 230.1]]


def test_mosquitto_restart_keeps_port(mosquitto: Mosquitto) -> None:
    port = mosquitto.port
    mosquitto.stop()
    assert not mosquitto.running
    mosquitto.start()
    assert mosquitto.running and mosquitto.port == port
