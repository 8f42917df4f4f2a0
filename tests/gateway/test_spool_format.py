"""The spool keeps samples, the publisher wraps them into readings once; older spools are taken over.

A spool written by the previous gateway (format 0: every reading a finished message, no `protocol`
column) must be published in full by this one, with its seq and drop counters kept: an upgrade loses
nothing. A spool of a newer format is refused with a message saying what to do, never misread.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import msgspec
import pytest

from firmware_sim.devices.modbus import ModbusPrepaidMeter
from gateway import outbox
from gateway.drivers.base import Sample
from gateway.errors import SpoolError
from gateway.spool import FORMAT, SAMPLE, Entry, Spool
from gridedge.services import Mosquitto
from protocols import messages as m
from protocols import topics
from tests.gateway.helpers import base_config, gateway_plan, recording, sim_line
from tests.gateway.test_gateway_mqtt import modbus_bus, running

NOW_MS = int(time.time() * 1000)

# The layout of a format-0 spool, as gateway/spool.py created it up to a260772.
FORMAT_0 = """
CREATE TABLE record (
    seq     INTEGER PRIMARY KEY,
    dev     TEXT NOT NULL,
    kind    TEXT NOT NULL,
    topic   TEXT NOT NULL,
    payload BLOB NOT NULL,
    size    INTEGER NOT NULL
);
CREATE INDEX record_dev ON record (dev, seq);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def samples(n: int) -> list[Sample]:
    out = [
        Sample(seq=0, ts=NOW_MS + i, values={"energy_import_kwh": 10.5 + i, "relay": "closed"})
        for i in range(n)
    ]
    out.append(
        Sample(
            seq=0,
            ts=NOW_MS + n,
            values={"voltage_a_v": 230.0},
            quality={"current_a_a": "error"},
            source="frozen",
        )
    )
    return out


def as_reading(gw: str, dev: str, protocol: str, ss: list[Sample], seqs: list[int]) -> m.Reading:
    contract = [
        m.Sample(seq=q, ts=s.ts, values=dict(s.values), quality=dict(s.quality), source=s.source)
        for s, q in zip(ss, seqs, strict=True)
    ]
    head = contract[0]
    return m.Reading(
        schema=m.SCHEMA_VERSION,
        gw=gw,
        dev=dev,
        seq=head.seq,
        ts=head.ts,
        values=head.values,
        quality=head.quality,
        source=head.source,
        protocol=protocol,
        more=contract[1:],
    )


@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("protocol", ["dlt645", ""])
def test_reading_payload_is_the_contract_reading(n: int, protocol: str) -> None:
    ss = samples(n)
    seqs = list(range(7, 7 + len(ss)))
    payload = outbox.reading_payload(
        "gw-1", "0001", protocol, [outbox.sample(s, q) for s, q in zip(ss, seqs, strict=True)]
    )
    where = topics.parse_topic(topics.reading_topic("gw-1", "0001"))
    decoded = topics.decode_payload(where, payload, now_ms=NOW_MS)
    assert decoded == as_reading("gw-1", "0001", protocol, ss, seqs)
    assert json.loads(payload) == json.loads(m.encode(decoded))


async def test_the_spool_holds_samples_and_a_newer_format_is_refused(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "spool.sqlite3", max_bytes=1 << 20)
    try:
        sample = samples(1)[0]
        topic = topics.reading_topic("gw-1", "0001")
        await spool.add([Entry("0001", SAMPLE, topic, lambda seq: outbox.sample(sample, seq), "dlt645")])
        [rec] = await spool.pending(10)
        assert (rec.kind, rec.topic, rec.protocol) == (SAMPLE, topic, "dlt645")
        assert msgspec.json.decode(rec.payload, type=m.Sample) == m.Sample(
            seq=rec.seq, ts=sample.ts, values=dict(sample.values)
        )
    finally:
        await spool.close()
    with sqlite3.connect(tmp_path / "spool.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == FORMAT
        db.execute(f"PRAGMA user_version = {FORMAT + 1}")
    with pytest.raises(SpoolError, match=r"spool .*spool\.sqlite3: written by a newer gridedge"):
        await Spool.open(tmp_path / "spool.sqlite3", max_bytes=1 << 20)


def write_format_0(path: Path, gw: str) -> list[tuple[str, int, bytes]]:
    """A spool as the old gateway left it: three readings and an event of `mb-1`, 2 dropped earlier,
    last seq 9 (status and health seqs are allocated without a record). Returns (topic, seq, payload)."""
    ss = samples(2)
    rows = []
    for seq, sample in zip((3, 4, 6), ss, strict=True):
        reading = as_reading(gw, "mb-1", "modbus", [sample], [seq])
        rows.append((seq, "mb-1", "reading", topics.reading_topic(gw, "mb-1"), m.encode(reading)))
    event = m.Event(
        schema=1, gw=gw, dev="mb-1", seq=5, ts=NOW_MS, event=m.EventKind.RELAY_CHANGE, data={"relay": "open"}
    )
    rows.append((5, "mb-1", "event", topics.event_topic(gw, "mb-1"), m.encode(event)))
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.executescript(FORMAT_0)
        db.executemany("INSERT INTO record VALUES (?, ?, ?, ?, ?, ?)", [(*r, len(r[4])) for r in rows])
        db.executemany("INSERT INTO meta VALUES (?, ?)", [("last_seq", 9), ("dropped", 2)])
    return sorted((r[3], r[0], r[4]) for r in rows)


@pytest.mark.integration
async def test_a_spool_of_the_previous_format_is_published_in_full(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    doc = base_config(tmp_path, mosquitto.port, [])
    old = write_format_0(Path(doc["spool"]["path"]), "gw-test")
    meters = [ModbusPrepaidMeter(1, seed=1, start_time=time.time())]
    async with sim_line(meters) as (path, _line), recording(mosquitto.port) as rec:
        doc["buses"] = [modbus_bus(path, [1])]
        async with running(gateway_plan(doc, tmp_path)) as gw:
            assert gw.spool.stats.depth >= len(old) and gw.spool.stats.dropped == 2
            await rec.wait_for(lambda: any(s["seq"] > 9 for s in rec.samples("mb-1")), 15)
            await rec.wait_for(lambda: gw.spool.stats.depth == 0, 10)
    device = [(t, p) for t, p, _ in rec.messages if "/mb-1/" in t and not t.endswith("/health")]
    for topic, payload in device:  # everything published is the contract
        topics.decode_payload(topics.parse_topic(topic), json.dumps(payload).encode(), now_ms=NOW_MS)
    # the old records, exactly as the old gateway spooled them, before any new one of the device
    got = [(t, p["seq"], p) for t, p in device if p["seq"] <= 9]
    assert [(t, s, p) for t, s, p in sorted(got, key=lambda x: x[1])] == [
        (t, s, json.loads(p)) for t, s, p in sorted(old, key=lambda x: x[1])
    ]
    assert [p["seq"] for _, p in device][: len(old)] == [3, 4, 5, 6]
    new = [s for s in rec.samples("mb-1") if s["seq"] > 9]
    assert new and all(s["seq"] > 9 for s in new), "the seq continues after the old spool's last"
    status = [p for p in rec.of("gw-test/status") if p["state"] == "online"]
    assert status[0]["spool_dropped"] == 2
