"""The Prometheus endpoint of the ingest writer's self-metrics (`metrics.prometheus_port`):
prometheus_client's HTTP server on a thread of its own, `GET /metrics` -> `gridedge_ingest_<figure>
<value>` per figure of `Ingest.metric_fields()` (the figures the writer stores as measurement `ingest`).

Layer: ingest I/O. Must not: keep figures of its own (every scrape reads the writer's), or read them off
the event loop: the figures belong to the loop's thread (the subscriber's state, the stats), so each
scrape asks the loop for a snapshot and waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import GaugeMetricFamily, Metric, UnknownMetricFamily
from prometheus_client.registry import Collector

__all__ = ["PREFIX", "serve"]

log = logging.getLogger("ingest")

PREFIX: Final = "gridedge_ingest_"
SCRAPE_TIMEOUT_S: Final = 5.0  # a loop that does not answer in this time: the scrape fails (HTTP 500)
# levels, not running totals. The totals stay untyped: as counters prometheus_client would rename them
# `..._total`, and dashboards and alert rules know them by their names
GAUGES: Final = frozenset({"batch_latency_ms", "oldest_unacked_s", "mqtt_connected", "influx_ok"})

Figures = Mapping[str, float | int | bool]


class _Snapshot(Collector):
    """Reads the figures on the event loop at each scrape (collect() runs on the HTTP thread)."""

    def __init__(self, read: Callable[[], Figures], loop: asyncio.AbstractEventLoop) -> None:
        self._read = read
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def collect(self) -> Iterator[Metric]:
        for name, value in self._figures().items():
            family = GaugeMetricFamily if name in GAUGES else UnknownMetricFamily
            yield family(PREFIX + name, f"gridedge ingest writer: {name}", value=float(value))

    def _figures(self) -> dict[str, float | int | bool]:
        if threading.get_ident() == self._loop_thread:
            return dict(self._read())

        async def snapshot() -> dict[str, float | int | bool]:
            return dict(self._read())

        return asyncio.run_coroutine_threadsafe(snapshot(), self._loop).result(SCRAPE_TIMEOUT_S)


async def serve(port: int, read: Callable[[], Figures], host: str = "0.0.0.0") -> None:
    """Serve `read()`'s figures on http://host:port/metrics until cancelled (port 0: any free port)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(read, asyncio.get_running_loop()))
    server, thread = start_http_server(port, host, registry=registry)
    try:
        log.info("prometheus metrics on :%d/metrics", server.server_port)
        await asyncio.get_running_loop().create_future()  # until cancelled
    finally:
        # shutdown() waits up to the server's 0.5 s poll: not on the loop, which a scrape may be awaiting
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        await asyncio.to_thread(thread.join)
