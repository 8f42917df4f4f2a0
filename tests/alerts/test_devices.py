"""device_offline: the rule on its own (compressed time) and end to end through the real broker and
influxd, including a restart of the alerts role mid-scenario."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.alerts.engine import Engine
from ingest.alerts.model import AlertState, Inbound, RuleContext, Signal
from ingest.alerts.rules import devices
from ingest.topology import Topology
from protocols import messages as m
from protocols import topics
from tests.alerts.clock import T0_S as T0
from tests.alerts.clock import FakeClock as Clock

GW, DEV = "gw-1", "m1"
TOPOLOGY = {
    "gateways": {GW: {"site": "site-1"}},
    "areas": {"area-1": {"region": "urban"}},
    "devices": {f"{GW}/{DEV}": {"area": "area-1", "phase": "A"}, f"{GW}/hall-1": {"hall": "hall-main"}},
}


def health(state: str, at: float, dev: str = DEV, gw: str = GW, **extra: Any) -> m.Health:
    return m.Health(schema=1, gw=gw, dev=dev, seq=int(at), ts=round(at * 1000), state=state, **extra)  # type: ignore[arg-type]


def status(state: str, at: float, gw: str = GW) -> m.Status:
    return m.Status(schema=1, gw=gw, seq=int(at), ts=round(at * 1000), state=state)  # type: ignore[arg-type]


def inbound(msg: m.Health | m.Status) -> Inbound:
    dev = getattr(msg, "dev", "")
    topic = topics.health_topic(msg.gw, dev) if isinstance(msg, m.Health) else topics.status_topic(msg.gw)
    return Inbound(topic, msg.gw, dev, msg)


def engine_with(**cfg: Any) -> tuple[Engine, Clock]:
    clock = Clock()
    engine = Engine([], clock=clock)
    rules = devices.RULESET.build(devices.DevicesConfig(**cfg), RuleContext(Topology.empty(), engine.firing))
    engine.rules = [("devices", r) for r in rules]
    return engine, clock


# ---- the rule ----------------------------------------------------------------------------------------


def test_offline_and_quarantined_are_active_online_inactive_probing_nothing() -> None:
    rule = devices.DeviceOffline(devices.DevicesConfig(), RuleContext(Topology.empty()))
    (s,) = rule.on_message(inbound(health("offline", T0, last_success_ts=round((T0 - 30) * 1000))), T0)
    assert s.active and s.rule == "device_offline" and s.subject == "gw-1/m1"
    assert s.started_at == T0 - 30 and s.pending_s == 120
    assert [x.active for x in rule.on_message(inbound(health("quarantined", T0 + 5)), T0 + 5)] == [True]
    assert list(rule.on_message(inbound(health("probing", T0 + 6)), T0 + 6)) == []
    (back,) = rule.on_message(inbound(health("online", T0 + 9)), T0 + 9)
    assert not back.active and back.ended_at == T0 + 9


def test_labels_come_from_the_topology(tmp_path) -> None:
    import yaml

    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(TOPOLOGY))
    rule = devices.DeviceOffline(devices.DevicesConfig(), RuleContext(Topology.load(path)))
    (s,) = rule.on_message(inbound(health("offline", T0, dev="hall-1")), T0)
    assert dict(s.labels) == {"gw": GW, "dev": "hall-1", "site": "site-1", "hall": "hall-main"}
    (s,) = rule.on_message(inbound(health("offline", T0)), T0)
    assert s.labels["area"] == "area-1" and s.labels["phase"] == "A"


def test_pending_then_firing_then_resolved_through_the_engine() -> None:
    engine, clock = engine_with(pending_s=120)
    assert engine.on_message(inbound(health("offline", T0))) == []
    clock.t = T0 + 119
    assert engine.tick() == []
    clock.t = T0 + 120
    (fired,) = engine.tick()
    assert fired.kind == "firing" and fired.alert.started_at == T0
    clock.t = T0 + 300
    (resolved,) = engine.on_message(inbound(health("online", T0 + 300)))
    assert resolved.kind == "resolved" and resolved.alert.duration_s == 300


def test_a_short_blip_never_fires() -> None:
    engine, clock = engine_with(pending_s=120)
    engine.on_message(inbound(health("offline", T0)))
    clock.t = T0 + 60
    assert engine.on_message(inbound(health("online", T0 + 60))) == []
    clock.t = T0 + 600
    assert engine.tick() == [] and engine.alerts() == []


def test_gateway_offline_is_not_device_offline() -> None:
    engine, clock = engine_with(pending_s=120)
    engine.on_message(inbound(health("offline", T0)))  # pending when the gateway dies
    clock.t = T0 + 10
    engine.on_message(inbound(status("offline", T0 + 10)))
    engine.on_message(inbound(health("offline", T0 + 11, dev="m2")))  # the gateway's last words
    clock.t = T0 + 1000
    assert engine.tick() == [] and engine.alerts() == []
    engine.on_message(inbound(status("online", T0 + 1000)))
    engine.on_message(inbound(health("offline", T0 + 1000, dev="m2")))
    clock.t = T0 + 1120
    assert [c.alert.subject for c in engine.tick()] == ["gw-1/m2"]


def test_a_firing_device_alert_survives_its_gateway_going_offline() -> None:
    engine, clock = engine_with(pending_s=0)
    assert [c.kind for c in engine.on_message(inbound(health("offline", T0)))] == ["firing"]
    clock.t = T0 + 5
    engine.on_message(inbound(status("offline", T0 + 5)))
    assert engine.firing("device_offline", "gw-1/m1") is not None


def test_snapshot_restore_carries_on() -> None:
    rule = devices.DeviceOffline(devices.DevicesConfig(), RuleContext(Topology.empty()))
    rule.on_message(inbound(health("offline", T0)), T0)
    rule.on_message(inbound(status("offline", T0 + 1, gw="gw-2")), T0 + 1)
    again = devices.DeviceOffline(devices.DevicesConfig(), RuleContext(Topology.empty()))
    again.restore(rule.snapshot())
    (s,) = again.on_message(inbound(health("offline", T0 + 50)), T0 + 50)
    assert s.started_at == T0  # the same outage, not a new one
    assert list(again.on_message(inbound(health("offline", T0 + 50, gw="gw-2")), T0 + 50)) == []


def test_config_errors_name_the_field() -> None:
    from ingest.alerts.config import AlertsSection

    with pytest.raises(ValueError, match=r"alerts\.rules\.devices\.pending_s"):
        AlertsSection(rules={"devices": {"pending_s": -1}})
    with pytest.raises(ValueError, match=r"alerts\.rules\.nosuch: unknown rule set"):
        AlertsSection(rules={"nosuch": {}})


# ---- end to end ------------------------------------------------------------------------------------


@pytest.mark.integration
async def test_device_offline_end_to_end_with_a_restart(alert_harness) -> None:
    h = await alert_harness(TOPOLOGY, {"devices": {"pending_s": 120}}, sets=[devices.RULESET])
    key = ("device_offline", f"{GW}/{DEV}")
    topic = topics.health_topic(GW, DEV)
    t0 = h.now
    await h.publish(topic, health("online", t0), retain=True)
    await h.publish(topic, health("offline", t0 + 1), retain=True)
    await h.advance(60)
    assert h.retained_alerts() == {} and h.influx_alerts() == []
    await h.advance(61)
    (fired,) = h.retained_alerts().items()
    assert fired[0] == key
    assert fired[1]["state"] == "firing" and fired[1]["start_ts"] == round((t0 + 1) * 1000)
    assert fired[1]["labels"] == {"gw": GW, "dev": DEV, "site": "site-1", "area": "area-1", "phase": "A"}
    (row,) = h.influx_alerts()
    assert (row["rule"], row["subject"], row["state"]) == ("device_offline", f"{GW}/{DEV}", "firing")

    await h.restart()  # mid-scenario: the retained health comes again; nothing is re-raised or lost
    assert h.engine.firing(*key) is not None
    await h.advance(30)
    assert list(h.retained_alerts()) == [key]
    assert len(h.influx_alerts()) == 1
    fired_live = [x for x in await h.alert_messages() if x[1] and x[1]["state"] == "firing"]
    assert len(fired_live) == 1, fired_live

    await h.publish(topic, health("online", h.now), retain=True)
    await h.advance(1)
    assert h.retained_alerts() == {}
    rows = sorted(h.influx_alerts(), key=lambda r: r["time"])
    assert [r["state"] for r in rows] == ["firing", "resolved"]
    assert rows[1]["duration_s"] == pytest.approx(h.now - 1 - (t0 + 1))
    live = await h.alert_messages()
    # live subscribers: the firing record, the resolution with its duration, then the clearing
    assert [p["state"] if p else None for _, p, _ in live] == ["firing", "resolved", None]
    assert (live[1][1]["end_ts"] - live[1][1]["start_ts"]) / 1000 == pytest.approx(rows[1]["duration_s"])
    assert h.engine.get(*key).state is AlertState.RESOLVED  # type: ignore[union-attr]


def test_signal_helper_types() -> None:
    s = Signal("device_offline", "gw/x", True, T0)
    assert s.labels == {}
