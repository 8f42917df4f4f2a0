"""The writer and the alert engine share one event loop (`gridedge ingest run`, role `all`): neither may
hold it for a whole backlog.

Measured before this was enforced (bench/ingest_latency.py, 11,000 readings/s): `Subscriber.take()` does
not suspend while its inbox holds messages, so a backlog was decoded in one stretch; the alert engine
evaluated 1,000 messages per stretch. A finished InfluxDB write then waited 0.1-1.1 s for the loop, batches
queued behind it, and publish-to-queryable p99 was 1.2 s. These tests count, between two turns of a
bystander task, how many messages each consumer handled: at most one `take()` (writer) or one slice
(alerts). They count turns, not seconds, so a loaded machine cannot make them flaky.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from ingest import service
from ingest.alerts import role as alerts_role
from ingest.alerts.role import AlertsRole
from ingest.config import IngestConfig
from ingest.service import Ingest
from ingest.subscriber import Subscriber
from protocols import topics

from .helpers import T0, reading

MESSAGES = 3000


def _backlog(subscriber: Subscriber) -> None:
    """MESSAGES readings from 200 meters, handed over as the network thread hands them: one burst."""
    subscriber._loop = asyncio.get_running_loop()
    burst = []
    for i in range(MESSAGES):
        dev = f"m{i % 200:03d}"
        burst.append((topics.reading_topic("gw-1", dev), i % 65535 + 1, 1, reading("gw-1", dev, i, T0 + i)))
    subscriber._deliver(burst)


async def _largest_stretch(
    consumer: Coroutine[Any, Any, None], handled: Callable[[], int]
) -> tuple[int, int]:
    """Run `consumer` until it has handled the backlog; return (largest count handled between two
    turns of a bystander task, total handled)."""
    seen: list[int] = []

    async def bystander() -> None:
        while True:
            seen.append(handled())
            await asyncio.sleep(0)

    async with asyncio.timeout(60):
        watcher = asyncio.create_task(bystander(), name="test:bystander")
        work = asyncio.create_task(consumer, name="test:consumer")
        while handled() < MESSAGES:
            await asyncio.sleep(0.01)
        for task in (work, watcher):
            task.cancel()
        await asyncio.gather(work, watcher, return_exceptions=True)
    return max(b - a for a, b in itertools.pairwise(seen)), handled()


async def test_writer_yields_between_takes() -> None:
    ingest = Ingest(IngestConfig())  # nothing connects: the consumer only fills the write queue
    try:
        _backlog(ingest.subscriber)
        stretch, total = await _largest_stretch(ingest._consume(), lambda: ingest.stats.messages_in)
    finally:
        await ingest.writer.close()
    assert total == MESSAGES
    assert stretch <= service.TAKE < MESSAGES


async def test_alert_engine_yields_between_slices(tmp_path: Path) -> None:
    cfg = IngestConfig.model_validate({"alerts": {"state_path": str(tmp_path / "alerts.sqlite")}})
    role = AlertsRole(cfg)
    try:
        _backlog(role.subscriber)
        stretch, total = await _largest_stretch(role._consume(), lambda: role.stats.received)
    finally:
        role.store.close()
        await role.writer.close()
    assert total == MESSAGES
    assert stretch <= alerts_role.SLICE < alerts_role.TAKE
