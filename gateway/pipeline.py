"""The scheduler's sink: poll results into the spool, device health to the publisher's retained topics.

Layer: gateway core. Samples and events are written to the spool (durable, with their seq) before
anything is published; health is retained state, not history, so it bypasses the spool. A sample is
spooled as the contract's `Sample` (encoded here, once); the publisher wraps it into a reading.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from protocols import messages as m

from . import outbox
from .drivers.base import DeviceEvent, Driver, PollResult, Sample
from .health import DeviceHealth
from .publisher import Publisher
from .spool import SAMPLE, Entry, Spool


class SpoolSink:
    def __init__(self, gateway_id: str, spool: Spool, publisher: Publisher) -> None:
        self.gw = gateway_id
        self.spool = spool
        self.publisher = publisher

    async def poll_result(self, driver: Driver, result: PollResult) -> None:
        topic = outbox.reading_topic(self.gw, driver.id)
        entries = [self._sample(driver, topic, s) for s in result.samples if s.values or s.quality]
        entries += [self._event(driver, e) for e in distinct_times(result.events)]
        await self.spool.add(entries)

    async def health(self, driver: Driver, dev: str, health: DeviceHealth) -> None:
        seq = await self.spool.allocate_seq()
        topic, msg = outbox.health(self.gw, dev, health, seq, int(time.time() * 1000))
        self.publisher.set_retained(topic, m.encode(msg))

    async def command_result(self, topic: str, dev: str, build: Callable[[int], m.CommandResult]) -> None:
        """Command results are spooled like events: durable, published in order, never lost."""
        await self.spool.add([Entry(dev, "result", topic, lambda seq: m.encode(build(seq)))])

    @staticmethod
    def _sample(driver: Driver, topic: str, sample: Sample) -> Entry:
        def build(seq: int) -> bytes:
            return outbox.sample(sample, seq)

        return Entry(driver.id, SAMPLE, topic, build, driver.kind)

    def _event(self, driver: Driver, event: DeviceEvent) -> Entry:
        gw, dev = self.gw, event.dev or driver.id

        def build(seq: int) -> bytes:
            return m.encode(outbox.event(gw, dev, event, seq)[1])

        return Entry(dev, "event", outbox.event_topic(gw, dev), build)


def distinct_times(events: list[DeviceEvent]) -> list[DeviceEvent]:
    """Events of one kind of one device that a poll dated alike (a hall's day end abandons every
    unserved ticket at once) get 1 ms apart: InfluxDB keeps one point per series and timestamp, so
    the same kind at the same millisecond would overwrite all but the last (measured in a report)."""
    taken: set[tuple[str, str, int]] = set()
    out = []
    for event in events:
        ts = event.ts_ms
        while (event.dev, event.kind, ts) in taken:
            ts += 1
        taken.add((event.dev, event.kind, ts))
        out.append(event if ts == event.ts_ms else dataclasses.replace(event, ts_ms=ts))
    return out
