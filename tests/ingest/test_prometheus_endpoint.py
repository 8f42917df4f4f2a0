"""The writer's Prometheus endpoint (ingest/prometheus.py, prometheus_client's server): every figure of
the writer under its `gridedge_ingest_` name, read on the event loop at each scrape, and the port closed
once the task is cancelled."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from dataclasses import asdict

import pytest

from gridedge.services import free_port
from ingest import prometheus
from ingest.service import IngestStats
from tests.ingest.helpers import wait_until


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        return str(resp.read().decode())


async def test_every_figure_under_its_name_read_at_each_scrape_and_the_port_closed_on_cancel() -> None:
    stats = IngestStats(messages_in=7, mqtt_connected=True)
    reads = 0

    def read() -> dict[str, float | int | bool]:
        nonlocal reads
        reads += 1
        return asdict(stats)

    port = free_port()
    task = asyncio.create_task(prometheus.serve(port, read), name="test:prometheus")
    try:
        await wait_until(lambda: _listening(port), 10)
        text = await asyncio.to_thread(_scrape, port)
        samples = dict(line.split() for line in text.splitlines() if not line.startswith("#"))
        assert set(samples) == {f"gridedge_ingest_{name}" for name in asdict(stats)}
        assert samples["gridedge_ingest_messages_in"] == "7.0"
        assert samples["gridedge_ingest_mqtt_connected"] == "1.0"
        assert "# TYPE gridedge_ingest_influx_ok gauge" in text
        assert "# TYPE gridedge_ingest_messages_in untyped" in text  # no `_total` renaming
        stats.messages_in = 9  # the next scrape reads the figures again
        text = await asyncio.to_thread(_scrape, port)
        assert "gridedge_ingest_messages_in 9.0" in text and reads == 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not _listening(port)
