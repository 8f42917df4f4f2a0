"""Device health state machine and wall-clock aligned scheduling (pure)."""

from __future__ import annotations

from gateway.health import DeviceHealth, HealthPolicy
from gateway.scheduler import next_slot, phase_offset


def test_health_degrades_quarantines_probes_and_recovers() -> None:
    h = DeviceHealth(HealthPolicy(degrade_after=1, quarantine_after=3, backoff_min_s=10, backoff_max_s=40))
    h.failure(0.0, "ResponseTimeout")
    assert h.state == "degraded" and h.retries_allowed
    h.failure(1.0, "ResponseTimeout")
    h.failure(2.0, "BusFrameError")
    assert h.state == "quarantined" and not h.may_poll(3.0)
    assert 2.0 + 5 <= h.probe_at <= 2.0 + 10
    assert h.may_poll(h.probe_at) and h.state == "probing" and not h.retries_allowed
    h.failure(20.0, "ResponseTimeout")  # probe failed: back-off doubles
    assert h.state == "quarantined" and h.backoff_s == 20
    for t in range(5):
        h.may_poll(h.probe_at)
        h.failure(100.0 * (t + 1), "ResponseTimeout")
    assert h.backoff_s == 40  # capped
    h.may_poll(h.probe_at)
    h.success(123, 85.0)
    assert h.state == "online" and h.consecutive_failures == 0 and h.last_success_ms == 123
    assert h.errors == {"ResponseTimeout": 8, "BusFrameError": 1} and h.failures == 9


def test_a_lost_port_degrades_without_back_off() -> None:
    h = DeviceHealth(HealthPolicy(quarantine_after=3))
    for _ in range(10):  # the USB adapter is out for many intervals: not the meter's fault
        h.port_down("PortUnavailable")
    assert h.state == "degraded" and h.may_poll(0.0) and h.consecutive_failures == 0
    assert h.errors == {"PortUnavailable": 10}
    h.success(1, 50.0)  # polled as soon as the port is back
    assert h.state == "online"


def test_slots_align_to_wall_clock() -> None:
    assert next_slot(1_000_000_005.0, 60, 0.0) == 1_000_000_020.0  # next minute boundary
    assert next_slot(1_000_000_020.0, 60, 0.0) == 1_000_000_080.0  # exactly on it: the next one
    off = phase_offset("meter-1", 60)
    assert 0 <= off < 2.0 and off == phase_offset("meter-1", 60)
    assert next_slot(1_000_000_005.0, 60, off) == 1_000_000_020.0 + off
    assert phase_offset("meter-1", 10) < 0.5  # at most 5 % of the interval
