"""A recorded stream for the partition tests: an area outage (gw-outage, partition 1 of 2), a hall wait
(gw-hall, partition 0), an arrears ladder (account A-1 behind gw-e, partition 1) and a lit area
(gw-lit, partition 0), played in compressed time into any number of alert engines (in-process roles
on the real broker and InfluxDB, one fake clock) that record the changes they publish.

The engines run side by side on the same broker, so each sees exactly the same deliveries; their
alert topics overlap, so what each raised is compared from its own record, not from the broker.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from ingest.alerts.engine import Change
from ingest.alerts.role import open_session
from ingest.config import IngestConfig
from ingest.subscriber import Delivery
from ingest.topology import Topology
from protocols import messages as m
from protocols import topics
from protocols.config import load as load_model

from .clock import T0_S, FakeClock
from .conftest import SyncedRole, _Client

OUT = [f"o{i}" for i in range(6)]
LIT = [f"l{i}" for i in range(3)]
TOPOLOGY: dict[str, Any] = {
    "gateways": {gw: {"site": "s1"} for gw in ("gw-outage", "gw-lit", "gw-hall", "gw-e")},
    "areas": {"area-out": {"region": "urban"}, "area-lit": {"region": "urban"}, "area-e": {}},
    "devices": {
        **{f"gw-outage/{d}": {"area": "area-out", "phase": "ABC"[i % 3]} for i, d in enumerate(OUT)},
        **{f"gw-lit/{d}": {"area": "area-lit", "phase": "A"} for d in LIT},
        "gw-e/m1": {"area": "area-e", "phase": "A", "account": "A-1"},
        "gw-hall/pad": {"hall": "hall-main"},
    },
}
Change3 = tuple[str, str, str]  # (kind, rule, subject)
Detail = tuple[Any, ...]  # what a change says: kind, rule, subject, severity, times, value, message, when


class Recorded(SyncedRole):
    """A SyncedRole that records every change it submits for publishing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.changes: list[Change3] = []
        self.details: list[Detail] = []
        super().__init__(*args, **kwargs)

    async def _step(self, changes: list[Change], batch: list[Delivery]) -> asyncio.Future[None]:
        self.changes += [(c.kind, c.alert.rule, c.alert.subject) for c in changes]
        self.details += [
            (c.kind, a.rule, a.subject, a.severity, a.started_at, a.ended_at, a.value, a.message, c.at)
            for c in changes
            for a in [c.alert]
        ]
        return await super()._step(changes, batch)


class Running:
    def __init__(self, role: Recorded) -> None:
        self.role = role
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(role.run(self.stop), name=f"test:alerts-{role.sync_topic}")

    @property
    def changes(self) -> list[Change3]:
        return self.role.changes

    @property
    def details(self) -> list[Detail]:
        return self.role.details


class Engines:
    def __init__(self, mosquitto: Any, influxdb: Any, workdir: Path, own_ledgers: bool = False) -> None:
        self.mosquitto, self.influxdb, self.workdir = mosquitto, influxdb, workdir
        self.own_ledgers = own_ledgers  # each partition's cost-control ledger its own file
        path = workdir / "topology.yaml"
        path.write_text(yaml.safe_dump(TOPOLOGY))
        self.topology = Topology.load(path)
        self.clock = FakeClock(T0_S)
        self.pub = _Client(mosquitto.port)
        self.running: dict[str, Running] = {}
        self.seq = 0

    def config(self, name: str, partition: dict[str, Any] | None) -> IngestConfig:
        """`ref` keeps its state (and ledger) apart; partitions share one folder, as in production."""
        folder = self.workdir / ("ref" if partition is None else "partitions")
        folder.mkdir(exist_ok=True)
        rules = {}
        if partition is not None and self.own_ledgers:
            ledger = f"ledger-p{partition['index']}of{partition['count']}.sqlite"
            rules = {"costcontrol": {"ledger_path": ledger}}
        doc = {
            "mqtt": {"host": "127.0.0.1", "port": self.mosquitto.port, "client_id": f"pt-{name[:3]}"},
            "influx": {"url": self.influxdb.url, "database": self.influxdb.database, "retry_min_s": 0.2},
            "alerts": {
                "state_path": str(folder / "alerts.sqlite"),
                "tick_s": 3600,  # the test ticks
                **({"partition": partition} if partition else {}),
                "rules": rules,
            },
        }
        return load_model(IngestConfig, json.dumps(doc), source=name, environ={})

    async def open_session(self, name: str, partition: dict[str, Any]) -> None:
        await open_session(self.config(name, partition))

    async def start(self, name: str, partition: dict[str, Any] | None) -> Running:
        role = Recorded(
            self.config(name, partition), self.topology, clock=self.clock, sync_topic=f"pt-sync/{name}"
        )
        run = self.running[name] = Running(role)
        async with asyncio.timeout(20):  # subscribed once a marker comes through
            while not await self._sync(run, 0.5):
                if run.task.done():
                    run.task.result()
        return run

    async def stop(self, name: str) -> Running:
        run = self.running.pop(name)
        run.stop.set()
        await asyncio.wait_for(run.task, 20)
        return run

    async def close(self) -> None:
        try:
            for name in list(self.running):
                await self.stop(name)
        finally:
            self.pub.close()

    async def _sync(self, run: Running, timeout: float) -> bool:
        marker = uuid.uuid4().hex.encode()
        await asyncio.to_thread(self.pub.publish, run.role.sync_topic, marker)
        return await run.role.wait_synced(marker, timeout)

    async def sync(self) -> None:
        for name, run in self.running.items():
            assert await self._sync(run, 20), f"{name} did not process its marker"

    async def publish(
        self, items: list[tuple[str, m.Message | dict[str, Any]]], retain: bool = False
    ) -> None:
        for topic, msg in items:
            data = json.dumps(msg).encode() if isinstance(msg, dict) else m.encode(msg)
            await asyncio.to_thread(self.pub.publish, topic, data, retain)
        await self.sync()

    async def advance(self, seconds: float) -> None:
        await self.sync()
        self.clock.t += seconds
        for run in self.running.values():
            await run.role.tick()

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def ms(self, offset_s: float = 0.0) -> int:
        return round((self.clock.t + offset_s) * 1000)


def _reading(e: Engines, gw: str, dev: str, **values: m.Scalar) -> tuple[str, m.Message]:
    msg = m.Reading(schema=1, gw=gw, dev=dev, seq=e.next_seq(), ts=e.ms(), values=values)
    return topics.reading_topic(gw, dev), msg


def _event(
    e: Engines, gw: str, dev: str, kind: m.EventKind, ts: int, **data: m.Scalar
) -> tuple[str, m.Message]:
    values: dict[str, m.Scalar | None] = dict(data)
    msg = m.Event(schema=1, gw=gw, dev=dev, seq=e.next_seq(), ts=ts, event=kind, data=values, source="live")
    return topics.event_topic(gw, dev), msg


def _hall(e: Engines, kind: m.EventKind, **data: m.Scalar) -> tuple[str, m.Message]:
    return _event(e, "gw-hall", "pad", kind, e.ms(), hall="hall-main", **data)


KWH = {0: 1000.0, 3: 1015.0, 6: 1055.0, 10: 1065.0}  # balance 60 -> 45 reminder, 5 warning, -5 arrears


def _step_messages(e: Engines, step: int, kwh: float) -> list[tuple[str, m.Message | dict[str, Any]]]:
    out: list[tuple[str, m.Message | dict[str, Any]]] = [
        _reading(e, "gw-lit", d, voltage_a_v=221.0) for d in LIT
    ]
    out.append(_reading(e, "gw-e", "m1", voltage_a_v=222.0, energy_import_kwh=kwh, relay="closed"))
    if step < 2 or step >= 15:  # the transformer of area-out is off from t0+120 to t0+900
        out += [_reading(e, "gw-outage", d, voltage_a_v=220.0) for d in OUT]
    elif step == 2:
        out += [_reading(e, "gw-outage", d, voltage_a_v=0.0) for d in OUT]
    if step == 15:
        for d in OUT:
            out.append(_event(e, "gw-outage", d, m.EventKind.POWER_DOWN, round((T0_S + 118) * 1000)))
            out.append(_event(e, "gw-outage", d, m.EventKind.POWER_UP, round((T0_S + 898) * 1000)))
    if step == 1:
        out.append(_hall(e, m.EventKind.TICKET_ISSUED, ticket=102, business=1))
        out.append(_hall(e, m.EventKind.TICKET_CALLED, ticket=102, counter=2, staff="0012"))
    if step == 18:
        out.append(_hall(e, m.EventKind.TICKET_CALLED, ticket=101, counter=1, staff="0007"))
    if step == 13:
        payment = {"account": "A-1", "id": "P-1", "amount_cny": 100.0, "ts": e.ms()}
        out.append((topics.billing_topic("payment"), payment))
    return out


async def run_stream(
    e: Engines,
    prepare: Callable[[], Awaitable[None]] | None = None,
    switch: Callable[[], Awaitable[None]] | None = None,
    at: int = 8,
) -> None:
    """Twenty-one 60 s steps. At step `at` (the outage and balance_low firing, ticket 101 waiting, the
    arrears and hall wait still to come) `prepare` runs before the step's messages and `switch` after
    them: what is published in between reaches the engines of both sides of a repartition."""
    status = [
        (topics.status_topic(gw), m.Status(schema=1, gw=gw, seq=e.next_seq(), ts=e.ms(), state="online"))
        for gw in TOPOLOGY["gateways"]
    ]
    await e.publish(list(status), retain=True)
    account = {"account": "A-1", "tariff_cny_kwh": 1.0, "opening_balance_cny": 60.0}
    await e.publish([(topics.billing_topic("account"), account)])
    await e.publish([_hall(e, m.EventKind.TICKET_ISSUED, ticket=101, business=1)])
    kwh = KWH[0]
    for step in range(21):
        if step:
            await e.advance(60)
        kwh = KWH.get(step, kwh)
        if prepare is not None and step == at:
            await prepare()
        await e.publish(_step_messages(e, step, kwh))
        if switch is not None and step == at:
            await switch()
    await e.advance(60)
