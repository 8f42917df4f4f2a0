"""DL/T 645 back-fill: the pure planning (which freezes a gap needs, never one twice, a first-seen meter
publishes nothing, power-down counts) and the driver against the simulated meter on a real pty, after
the meter was silent across midnights with an outage, and after the gateway itself was down."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.clock import SimClock
from firmware_sim.control import execute
from firmware_sim.devices.dlt645 import Dlt645Meter
from firmware_sim.line import Line
from gateway.bus import Bus
from gateway.drivers.base import DriverContext, PollResult
from gateway.drivers.dlt645.backfill import (
    CST,
    BackfillPolicy,
    BackfillState,
    meter_ms,
    midnights_between,
)
from gateway.drivers.dlt645.config import Dlt645Device
from gateway.drivers.dlt645.driver import Dlt645Driver
from gateway.errors import ResponseTimeout
from gateway.line import LineSettings
from protocols.messages import EventKind
from tests.gateway.helpers import sim_line

A1 = "000000000001"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
POLICY = BackfillPolicy.for_interval(60)


def cst_ms(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    return meter_ms(dt.datetime(y, mo, d, h, mi))


class FakeMeter:
    """Daily freezes at each 00:00 up to `now_ms`: freeze n = the n-th newest."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def freeze(self, n: int) -> int | None:
        newest = self.now_ms - (self.now_ms + 8 * HOUR_MS) % DAY_MS
        return newest - (n - 1) * DAY_MS if n <= 62 else None


def run_scan(state: BackfillState, meter: FakeMeter, max_steps: int = 100) -> tuple[list[int], int]:
    """Walk the planned freeze scan to its end; (freeze times taken, time reads)."""
    taken, reads = [], 0
    while state.scan is not None and reads < max_steps:
        freeze_ms = meter.freeze(state.scan.next_n)
        reads += 1
        verdict = state.freeze_verdict(freeze_ms)
        if verdict == "done":
            state.scan = None
        elif verdict == "skip":
            state.freeze_advance(None)
        else:
            assert freeze_ms is not None
            taken.append(freeze_ms)
            state.freeze_advance(freeze_ms)
    return taken, reads


# ---- planning -----------------------------------------------------------------------------------------


def test_midnights_between_counts_meter_midnights() -> None:
    noon = cst_ms(2024, 3, 1, 12)
    assert midnights_between(noon, noon + 11 * HOUR_MS) == 0  # 23:00 the same day
    assert midnights_between(noon, noon + 12 * HOUR_MS) == 1  # 00:00 itself is in (after, until]
    assert midnights_between(noon, noon + 3 * DAY_MS) == 3
    assert midnights_between(cst_ms(2024, 3, 2), noon + DAY_MS) == 0  # after a midnight: excluded


def test_first_seen_meter_plans_nothing_but_the_power_down_baseline() -> None:
    state = BackfillState()
    state.live_poll(cst_ms(2024, 3, 5, 9), POLICY, first_in_process=True)
    assert state.scan is None and state.power_check_due
    state.power_count(17, cst_ms(2024, 3, 5, 9), POLICY)
    assert state.power_down_count == 17 and state.power_down_todo == 0


def test_a_gap_over_three_midnights_takes_exactly_their_freezes() -> None:
    state = BackfillState(fresh=False, last_live_ms=cst_ms(2024, 3, 1, 12))
    now = cst_ms(2024, 3, 4, 13)
    state.live_poll(now, POLICY, first_in_process=False)
    assert state.scan is not None and state.scan.next_n == 4  # 3 midnights + 1 for a slow meter clock
    taken, reads = run_scan(state, FakeMeter(now))
    assert taken == [cst_ms(2024, 3, 2), cst_ms(2024, 3, 3), cst_ms(2024, 3, 4)]  # oldest first
    assert reads == 4 and state.freeze_done_ms == cst_ms(2024, 3, 4)
    assert state.power_check_due  # any missed poll: the power-down count is read too


def test_short_gaps_read_no_freeze() -> None:
    state = BackfillState(fresh=False, last_live_ms=cst_ms(2024, 3, 1, 23, 50))
    state.live_poll(cst_ms(2024, 3, 2, 0, 1), POLICY, first_in_process=False)
    assert state.scan is not None  # 11 min over midnight > gap_s (300 s): live readings miss 00:00
    taken, _ = run_scan(state, FakeMeter(cst_ms(2024, 3, 2, 0, 1)))
    assert taken == [cst_ms(2024, 3, 2)]
    state = BackfillState(fresh=False, last_live_ms=cst_ms(2024, 3, 1, 10))
    state.live_poll(cst_ms(2024, 3, 1, 10, 4), POLICY, first_in_process=False)
    assert state.scan is None  # 4 minutes: live readings cover it
    state.live_poll(cst_ms(2024, 3, 1, 15), POLICY, first_in_process=False)
    taken, reads = run_scan(state, FakeMeter(cst_ms(2024, 3, 1, 15)))
    assert taken == [] and reads == 1  # five hours without a midnight: one time read, nothing taken


def test_a_gap_longer_than_the_meter_keeps_is_bounded_by_62() -> None:
    state = BackfillState(fresh=False, last_live_ms=cst_ms(2024, 1, 1, 12))
    now = cst_ms(2024, 6, 1, 12)
    state.live_poll(now, POLICY, first_in_process=False)
    assert state.scan is not None and state.scan.next_n == 62
    taken, _ = run_scan(state, FakeMeter(now))
    assert len(taken) == 62 and taken[-1] == cst_ms(2024, 6, 1)


def test_no_freeze_twice_across_overlapping_gaps_a_midnight_and_a_restart() -> None:
    state = BackfillState(fresh=False, last_live_ms=cst_ms(2024, 3, 1, 12))
    state.live_poll(cst_ms(2024, 3, 5, 23, 58), POLICY, first_in_process=False)
    meter = FakeMeter(cst_ms(2024, 3, 5, 23, 58))
    taken: list[int] = []
    for _ in range(2):  # part of the scan, then the state is persisted and reloaded (a restart)
        assert state.scan is not None
        freeze_ms = meter.freeze(state.scan.next_n)
        verdict = state.freeze_verdict(freeze_ms)
        if verdict == "take" and freeze_ms is not None:
            taken.append(freeze_ms)
        state.freeze_advance(freeze_ms if verdict == "take" else None)
    state = BackfillState.from_json(state.to_json())
    meter.now_ms = cst_ms(2024, 3, 6, 0, 5)  # a midnight passes: the meter's numbering shifts by one
    state.live_poll(cst_ms(2024, 3, 6, 0, 3), POLICY, first_in_process=True)  # and another gap
    more, _ = run_scan(state, meter)
    taken += more
    expected = [cst_ms(2024, 3, d) for d in (2, 3, 4, 5)]
    assert taken == expected  # 6 March 00:00 came after the gap: live polls covered it
    state.live_poll(cst_ms(2024, 3, 9, 12), POLICY, first_in_process=False)
    meter.now_ms = cst_ms(2024, 3, 9, 12)
    later, _ = run_scan(state, meter)
    assert not set(later) & set(taken) and later[-1] == cst_ms(2024, 3, 9)


def test_power_down_count_plans_only_new_records() -> None:
    now = cst_ms(2024, 3, 1, 12)
    state = BackfillState(fresh=False, power_down_count=5)
    state.power_count(7, now, POLICY)
    assert state.power_down_todo == 2 and not state.power_check_due
    state.power_count(30, now, POLICY)
    assert state.power_down_todo == 10  # the meter keeps ten records
    state.power_count(3, now, POLICY)  # cleared or replaced: a new baseline, nothing to read
    assert state.power_down_todo == 0 and state.power_down_count == 3
    state.power_down_done_ms = now
    assert not state.power_record_ok(now) and state.power_record_ok(now + 1000)
    state.live_poll(now + 30_000, POLICY, first_in_process=False)
    assert not state.power_check_due  # no missed poll, the hourly check not due
    state.live_poll(now + 200_000, POLICY, first_in_process=False)
    assert state.power_check_due  # a missed poll


def test_state_round_trips_through_json() -> None:
    state = BackfillState(fresh=False, last_live_ms=1, freeze_done_ms=2, power_down_count=3)
    state.plan_freezes(cst_ms(2024, 3, 1), cst_ms(2024, 3, 3))
    again = BackfillState.from_json(state.to_json())
    assert again == state
    with pytest.raises(ValueError):
        BackfillState.from_json('{"version": 99}')


# ---- the driver against the simulated meter ------------------------------------------------------------


def noon_cst() -> float:
    today = dt.datetime.now(CST).date()
    return dt.datetime.combine(today, dt.time(12), CST).timestamp()


def make_driver(bus: Bus, clock: SimClock, state_dir: Path) -> Dlt645Driver:
    config = Dlt645Device(
        kind="dlt645",
        id=A1,
        address=A1,
        items=["energy_import_kwh", "voltage_a_v"],
        reply_timeout_ms=300,
        retries=0,
        clock_check_s=0,
        interval_s=60,
    )
    ctx = DriverContext("gw", lambda: int(clock() * 1000), state_dir, logging.getLogger("test"))
    return Dlt645Driver(config, bus, ctx)


def sim_clock(line: Line, start: float) -> SimClock:
    clock = line.clock
    assert isinstance(clock, SimClock)
    clock.start += start - clock()
    return clock


async def drain(d: Dlt645Driver, bus: Bus, live_items: int) -> list[PollResult]:
    """Poll until the back-fill is done; every poll stays within its back-fill budget."""
    backfill = d.backfill
    assert backfill is not None
    results = []
    for _ in range(12):
        before = bus.stats.transactions
        results.append(await d.poll())
        assert bus.stats.transactions - before <= live_items + backfill.policy.reads_per_poll
        if not backfill.pending:
            return results
    raise AssertionError("back-fill did not finish")


def frozen(results: list[PollResult]) -> list[Any]:
    return [s for r in results for s in r.samples if s.source == "frozen"]


def midnights_ms(meter: Dlt645Meter, days: range) -> list[int]:
    today = meter.history.today
    return [meter_ms(dt.datetime.combine(today - dt.timedelta(days=k), dt.time())) for k in days]


@pytest.mark.integration
async def test_silent_meter_over_midnights_with_an_outage_is_backfilled(tmp_path: Path) -> None:
    start = noon_cst()
    meter = Dlt645Meter(A1, seed=4, start_time=start)
    async with sim_line([meter], baud=9600) as (path, line), Bus("b", path, LineSettings(9600)) as bus:
        clock = sim_clock(line, start)
        d = make_driver(bus, clock, tmp_path)
        first = await drain(d, bus, 2)
        assert not frozen(first) and not any(r.events for r in first), "a first-seen meter back-fills nothing"
        meter.inject("silent")
        with pytest.raises(ResponseTimeout):
            await d.poll()
        clock.start += 3600
        assert execute({A1: meter}, f"cut {A1}", clock()).startswith("ok")
        cut_at = clock()
        clock.start += 86400
        assert execute({A1: meter}, f"restore {A1}", clock()).startswith("ok")
        restored_at = clock()
        clock.start += 2 * 86400
        meter.clear()
        results = await drain(d, bus, 2)
        again = await d.poll()
    samples = frozen(results)
    expected = sorted(midnights_ms(meter, range(3)))  # today's 00:00 and the two before
    assert [s.ts for s in samples] == expected
    for s in samples:
        day = dt.datetime.fromtimestamp(s.ts / 1000, CST).date()
        snapshot = meter.history.snapshots[day]
        assert snapshot is not None
        assert s.values["energy_import_kwh"] == pytest.approx(sum(snapshot), abs=0.01)
        assert s.values["energy_import_t1_kwh"] == pytest.approx(snapshot[0], abs=0.01)
        assert s.values["energy_export_kwh"] == 0
    events = [e for r in results for e in r.events]
    assert [(e.kind, e.source) for e in events] == [
        (EventKind.POWER_DOWN, "backfilled"),
        (EventKind.POWER_UP, "backfilled"),
    ]
    record_start, record_end = meter.history.outages[0]
    assert events[0].ts_ms == meter_ms(record_start) and events[1].ts_ms == meter_ms(record_end)
    assert abs(events[0].ts_ms / 1000 - cut_at) < 60 and abs(events[1].ts_ms / 1000 - restored_at) < 60
    assert events[0].data["end_ts"] == events[1].ts_ms
    assert events[0].data["duration_s"] == pytest.approx(restored_at - cut_at, abs=2)
    assert all(s.source == "live" for s in again.samples) and not again.events, "nothing twice"


@pytest.mark.integration
async def test_gateway_downtime_is_backfilled_from_state_once(tmp_path: Path) -> None:
    start = noon_cst()
    meter = Dlt645Meter(A1, seed=9, start_time=start)
    async with sim_line([meter], baud=9600) as (path, line), Bus("b", path, LineSettings(9600)) as bus:
        clock = sim_clock(line, start)
        first = await drain(make_driver(bus, clock, tmp_path), bus, 2)
        assert not frozen(first)
        assert (tmp_path / f"dlt645-backfill-{A1}.json").exists()
        clock.start += 2 * 86400 + 1800  # the gateway is down for two days; the meter runs on
        after_restart = await drain(make_driver(bus, clock, tmp_path), bus, 2)
        again = await drain(make_driver(bus, clock, tmp_path), bus, 2)  # and restarts once more
    assert [s.ts for s in frozen(after_restart)] == sorted(midnights_ms(meter, range(2)))
    assert all(s.source == "frozen" for s in frozen(after_restart))
    assert not any(r.events for r in after_restart), "no power-down while the gateway was away"
    assert not frozen(again) and not any(r.events for r in again)
