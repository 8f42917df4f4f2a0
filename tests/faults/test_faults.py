"""Fault scenarios on the real binaries, one shared rig: each fault, then the accounting of a cut.

Every scenario ends with `Rig.account()` (defined in tests/faults/harness.py): nothing the gateway
accepted is missing from InfluxDB, nothing is stored twice or invented, every drop is counted. The
rig keeps running between scenarios (a cut judges everything witnessed so far), and the last test
stops the gateway gracefully and judges the whole run. Tests run in file order.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import DLT_INTERVAL_S, DLT_METERS, MODBUS_INTERVAL_S, Accounting, Rig

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with Rig(tmp_path_factory.mktemp("faultrig"), seed=11) as r:
        yield r


def assert_clean(acc: Accounting) -> None:
    assert acc.ok, acc.summary()
    assert acc.produced > 0, acc.summary()


def test_broker_stop_start(rig: Rig) -> None:
    rec = rig.broker_outage(down_s=3)
    acc = rig.account()
    assert_clean(acc)
    assert rec.recovered_s is not None


def test_influxd_stop_start(rig: Rig) -> None:
    rig.influx_outage(down_s=3)
    assert_clean(rig.account())


def test_gateway_sigkill_at_a_random_moment(rig: Rig) -> None:
    time.sleep(random.Random(7).uniform(0, MODBUS_INTERVAL_S))  # anywhere in a poll/publish cycle
    rig.kill_gateway(restart_after_s=1)
    assert_clean(rig.account())


def test_ingest_sigkill(rig: Rig) -> None:
    rig.kill_ingest(restart_after_s=1)
    assert_clean(rig.account())


def test_dead_meter_does_not_starve_its_bus(rig: Rig) -> None:
    dead, alive = DLT_METERS[0], DLT_METERS[1]
    start_ms = int(time.time() * 1000 + rig.clock_offset_s * 1000)
    rec = rig.dead_meter(dead, dead_s=12)
    end_ms = int(time.time() * 1000 + rig.clock_offset_s * 1000)
    assert rig.witness is not None
    readings, *_ = rig.witness.snapshot()
    got = sum(1 for w in readings if w.dev == alive and start_ms <= w.ts <= end_ms and w.stored)
    expected = (end_ms - start_ms) / 1000 / DLT_INTERVAL_S
    # a bus starved by its dead neighbour loses about half its polls (each dead poll costs timeouts and
    # retries); the window's edges and a loaded machine (two test workers) may cost one or two slots
    assert got >= 0.8 * expected, f"{alive} delivered {got} readings in {expected:.1f} intervals"
    assert rec.recovered_s is not None  # back at its next probe once it answers again
    assert_clean(rig.account())


@pytest.mark.parametrize("line", ["mb", "dlt"])
def test_noise_bursts_and_truncated_frames(rig: Rig, line: str) -> None:
    rig.line_noise(line, seconds=5)
    assert_clean(rig.account())


def test_serial_port_vanishes_and_returns(rig: Rig) -> None:
    link = Path(rig.workdir / "tty-mb")
    rec = rig.unplug("mb", gone_s=3)
    assert link.is_symlink()
    assert rec.recovered_s is not None
    assert_clean(rig.account())


def test_gateway_clock_steps(rig: Rig) -> None:
    rig.clock_jump(+3600)  # a step forward (NTP after a dead RTC battery)
    rig.clock_jump(-3600 - 10)  # and back past where it was: acquisitions overlap the last 10 s
    rig.clock_jump(+10)
    acc = rig.account()
    assert_clean(acc)


def test_whole_run_after_graceful_stop(rig: Rig) -> None:
    acc = rig.account(final=True)
    print(rig.fault_table())
    print(acc.summary())
    assert_clean(acc)
    assert acc.redelivered >= 0
