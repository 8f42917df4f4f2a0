"""Steps that queue up behind the committer are finished together: one save (the merged states, the same
end state as saving them one by one) and one acknowledgement, in order.

Why: when the engine keeps up its batches are small (~85 readings at 11,000 readings/s), and a save and
an acknowledgement per batch held the committer's queue at its depth (64): the engine waited for it and
the saved state lagged the evaluation by up to 64 batches (bench/ingest_latency.py --role all)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ingest.alerts.commits import LINGER_MIN, LINGER_S, Committer, Step
from ingest.alerts.config import AlertsSection
from ingest.alerts.engine import Engine
from ingest.alerts.outputs import Outputs
from ingest.alerts.rules import rulesets
from ingest.alerts.store import Snapshot, Store, encode, merge
from ingest.subscriber import Delivery
from ingest.topology import Topology

from .clock import FakeClock
from .test_engine_quiet import reading

K1, K2, K3 = ("device_offline", "gw/a"), ("device_offline", "gw/b"), ("device_offline", "gw/c")


def track(key: tuple[str, str], message: str, fired: float = 1.0) -> dict[str, object]:
    alert = {"rule": key[0], "subject": key[1], "state": "firing", "severity": "warning",
             "started_at": 0.0, "fired_at": fired, "message": message}  # fmt: skip
    return {"alert": alert}


def test_a_merged_save_leaves_the_file_as_the_saves_in_order(tmp_path: Path) -> None:
    snaps = [
        encode(
            tracks={K1: track(K1, "one"), K2: track(K2, "two")},
            rules={"r": {"n": 1}},
            parts={"p": ({"m1": {"v": 1}, "m2": {"v": 1}}, set())},
        ),
        encode(
            removed=[K1],
            tracks={K3: track(K3, "three")},
            history=[track(K1, "one, resolved")],
            parts={"p": ({"m1": {"v": 2}}, {"m2"})},
        ),
        encode(
            tracks={K1: track(K1, "one again", fired=5.0)},
            removed=[K3],
            flaps={K1: [1.0, 5.0]},
            history=[track(K1, "one, corrected")],
            rules={"r": {"n": 3}},
            parts={"p": ({"m2": {"v": 3}}, {"m1"})},
        ),
    ]
    one_by_one, merged = Store(tmp_path / "a.sqlite"), Store(tmp_path / "b.sqlite")
    for snap in snaps:
        one_by_one.write(snap)
    together = merge(snaps)
    assert together is not None
    merged.write(together)
    assert merged.load() == one_by_one.load()
    assert merged.saves == 1
    state = merged.load()
    assert [t["alert"]["message"] for t in state.tracks] == ["two", "one again"]
    assert [t["alert"]["message"] for t in state.history] == ["one, corrected"]  # same fired_at: one row
    assert state.parts == {"p": {"m2": {"v": 3}}}
    assert merge([None, None]) is None
    only = Snapshot()
    assert merge([None, only]) is only


async def test_steps_queued_behind_a_slow_acknowledgement_are_finished_together(tmp_path: Path) -> None:
    clock = FakeClock()
    section = AlertsSection.model_validate({"state_path": str(tmp_path / "alerts.sqlite")})
    store = Store(section.state_path)
    engine = Engine.build(section, Topology.empty(), rulesets(), clock=clock, store=store)
    gate, acking = asyncio.Event(), asyncio.Event()
    acked: list[list[int]] = []

    async def ack(batch: list[Delivery]) -> int:
        acking.set()
        await gate.wait()  # the first acknowledgement is slow: the next steps queue up
        acked.append([d.mid for d in batch])
        return len(batch)

    async def put(mid: int) -> Step:
        engine.on_message(reading(f"m{mid}", clock.t, 1000.0))
        batch = [Delivery(1, mid, 1, f"gridedge/v1/gw-q/m{mid}/reading", b"", 0.0)]
        return await committer.put([], engine.prepare(), batch)

    committer = Committer(engine, Outputs(None, None), ack)
    runner = asyncio.create_task(committer.run(), name="test:commit")
    steps = [await put(1)]
    await acking.wait()  # the first step is being finished (its acknowledgement waits)
    steps += [await put(mid) for mid in range(2, 6)]
    assert committer.queued == 5
    gate.set()
    await asyncio.gather(*(s.done for s in steps))
    runner.cancel()
    assert acked == [[1], [2, 3, 4, 5]]
    assert (committer.finished, committer.steps, store.saves) == (2, 5, 2)
    reading_parts = next(p for name, p in store.load().parts.items() if name.startswith("reading:"))
    assert sorted(reading_parts) == [f"gw-q/m{i}" for i in range(1, 6)]


async def test_steps_put_within_the_linger_are_finished_together(tmp_path: Path) -> None:
    """A busy stream's small batches (an engine that keeps up) share one save and one acknowledgement;
    a step of a few deliveries (a quiet stream, a tick) is finished at once."""
    clock = FakeClock()
    section = AlertsSection.model_validate({"state_path": str(tmp_path / "alerts.sqlite")})
    store = Store(section.state_path)
    engine = Engine.build(section, Topology.empty(), rulesets(), clock=clock, store=store)
    acked: list[int] = []

    async def ack(batch: list[Delivery]) -> int:
        acked.append(len(batch))
        return len(batch)

    async def put(deliveries: int) -> Step:
        engine.on_message(reading("m1", clock.t, 1000.0))
        batch = [Delivery(1, i + 1, 1, "gridedge/v1/gw-q/m1/reading", b"", 0.0) for i in range(deliveries)]
        step = await committer.put([], engine.prepare(), batch)
        await asyncio.sleep(0)
        return step

    committer = Committer(engine, Outputs(None, None), ack)
    runner = asyncio.create_task(committer.run(), name="test:commit")
    busy = [await put(LINGER_MIN) for _ in range(3)]
    await asyncio.gather(*(s.done for s in busy))
    assert (acked, store.saves) == ([3 * LINGER_MIN], 1)
    quiet = await put(1)
    async with asyncio.timeout(LINGER_S / 2):  # not held back
        await quiet.done
    runner.cancel()
    assert (acked, store.saves) == ([3 * LINGER_MIN, 1], 2)
