"""Cutting and restoring a simulated meter's supply: silence during the outage, then a power-down
record with the outage's start and end in meter time, and the power-down count one higher."""

from __future__ import annotations

import pytest

from firmware_sim.devices.dlt645 import Dlt645Meter
from protocols.dlt645 import lookup, read_request
from tests.dlt645_sim.test_dlt645_sim import ADDR, T0, read


def test_outage_is_silent_then_recorded() -> None:
    meter = Dlt645Meter(ADDR, seed=4, start_time=T0)
    before = read(meter, "power_down_count", T0 + 10)["power_down_count"]
    meter.cut_supply(T0 + 60)
    request = read_request(ADDR, lookup("power_down_count").di).encode(4)
    assert meter.respond(request, T0 + 120) is None and meter.stats["no_supply"] == 1
    meter.restore_supply(T0 + 600)
    assert read(meter, "power_down_count", T0 + 610)["power_down_count"] == before + 1
    record = read(meter, "power_down_1", T0 + 610)["power_down_1"]
    start, end = meter.history.meter_now(T0 + 60), meter.history.meter_now(T0 + 600)
    assert record == {"start": start, "end": end}


def test_relay_misoperation_keeps_the_contact_closed_after_a_trip() -> None:
    from firmware_sim.prepaid import RELAY_SETTLE_S
    from protocols.dlt645 import ControlCommand
    from tests.dlt645_sim.test_dlt645_sim import control

    meter = Dlt645Meter(ADDR, seed=4, start_time=T0)
    meter.inject("misoperate")
    assert control(meter, ControlCommand.TRIP, T0 + 1).abnormal is False
    status = read(meter, "status_word_3", T0 + 2 + RELAY_SETTLE_S)["status_word_3"]
    assert status & (1 << 6) and not status & (1 << 4), "commanded open, contact still closed"
    meter.clear("misoperate")
    status = read(meter, "status_word_3", T0 + 10 + RELAY_SETTLE_S)["status_word_3"]
    assert status & (1 << 4), "the contact follows once the fault is cleared"


def test_the_meter_clock_drifts_until_synchronised() -> None:
    meter = Dlt645Meter(ADDR, seed=4, start_time=T0)
    meter.physics.drift_s_per_day = 2.0
    skew0 = meter.physics.clock_skew_s
    meter.tick(T0 + 30 * 86400)
    assert meter.physics.clock_skew_s == pytest.approx(skew0 + 60.0, abs=0.01)
