"""`device_offline`: a device its gateway reports offline (or quarantined) on the retained `health` topic.

Layer: ingest alert rules (pure). Must not: do I/O, read the wall clock, or own the life cycle.

`gridedge/v1/{gw}/{dev}/health` with state offline/quarantined -> active (after `pending_s`, default
120 s, so a single missed poll cycle does not page anyone); online/degraded -> inactive; probing
(the gateway retrying a quarantined device) changes nothing. Subject `device_subject(gw, dev)`, labels
gw/dev and site/area/hall/counter from the topology.

A gateway that is itself offline (its status Last Will) is `gateway_offline` (the outage rule set),
not one device_offline per device: while a gateway is offline its devices' health is ignored, and a
device alert still pending when the gateway died is withdrawn (an already firing one is kept: its
device was offline before the gateway went).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, Final

from pydantic import Field

from protocols import messages as m
from protocols.config import Frozen

from ...topology import Topology
from ..model import Inbound, RuleContext, RuleSet, Severity, Signal, device_subject

__all__ = ["RULESET", "DeviceOffline", "DevicesConfig"]

RULE: Final = "device_offline"


class DevicesConfig(Frozen):
    """Section `alerts.rules.devices` of ingest.yaml."""

    pending_s: float = Field(120.0, ge=0, description="device_offline: offline this long before firing")
    clear_s: float = Field(0.0, ge=0, description="device_offline: online this long before resolving")
    offline_states: tuple[str, ...] = Field(
        ("offline", "quarantined"), description="health states that mean the device is lost"
    )
    online_states: tuple[str, ...] = Field(
        ("online", "degraded"), description="health states that mean the device answers"
    )
    severity: Severity = Field(Severity.WARNING, description="device_offline severity")
    severity_by_site: dict[str, Severity] = Field(
        default_factory=dict, description="per site (topology gateways.<gw>.site) severity override"
    )


class DeviceOffline:
    ids = (RULE,)

    def __init__(self, cfg: DevicesConfig, ctx: RuleContext) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self._offline: dict[str, float] = {}  # subject -> since (s), as last reported
        self._gateways_down: set[str] = set()

    def on_message(self, inbound: Inbound, now: float) -> Iterable[Signal]:
        msg = inbound.message
        if isinstance(msg, m.Status):
            return self._status(msg)
        if isinstance(msg, m.Health):
            return self._health(msg, now)
        return ()

    def on_tick(self, now: float) -> Iterable[Signal]:
        return ()

    def snapshot(self) -> dict[str, Any]:
        return {"offline": dict(self._offline), "gateways_down": sorted(self._gateways_down)}

    def restore(self, state: Mapping[str, Any]) -> None:
        self._offline = {str(k): float(v) for k, v in dict(state.get("offline") or {}).items()}
        self._gateways_down = set(state.get("gateways_down") or ())

    # ----

    def _status(self, msg: m.Status) -> list[Signal]:
        if msg.state == "online":
            self._gateways_down.discard(msg.gw)
            return []
        self._gateways_down.add(msg.gw)
        out = []
        prefix = device_subject(msg.gw, "")
        for subject, since in list(self._offline.items()):
            if subject.startswith(prefix) and self._firing(subject) is None:
                del self._offline[subject]  # withdraw what was only pending: gateway_offline covers it
                out.append(self._signal(msg.gw, subject[len(prefix) :], False, msg.ts / 1000, since))
        return out

    def _health(self, msg: m.Health, now: float) -> list[Signal]:
        if msg.gw in self._gateways_down:
            return []
        subject = device_subject(msg.gw, msg.dev)
        at = msg.ts / 1000
        if msg.state in self.cfg.offline_states:
            since = self._offline.setdefault(subject, _since(msg, at))
            return [self._signal(msg.gw, msg.dev, True, at, since)]
        if msg.state in self.cfg.online_states:
            since = self._offline.pop(subject, at)
            return [self._signal(msg.gw, msg.dev, False, at, since)]
        return []

    def set_topology(self, topology: Topology) -> None:
        self.ctx = replace(self.ctx, topology=topology)

    def _signal(self, gw: str, dev: str, active: bool, at: float, since: float) -> Signal:
        topo = self.ctx.topology
        labels = {"gw": gw, "dev": dev, **topo.tags(gw, dev)}
        site = topo.site(gw)
        severity = self.cfg.severity_by_site.get(site, self.cfg.severity)
        message = (
            f"device {dev} on gateway {gw} is offline since {_clock(since)}"
            if active
            else f"device {dev} on gateway {gw} answers again"
        )
        return Signal(
            rule=RULE,
            subject=device_subject(gw, dev),
            active=active,
            at=at,
            severity=severity,
            message=message,
            pending_s=self.cfg.pending_s,
            clear_s=self.cfg.clear_s,
            started_at=since if active else None,
            ended_at=at if not active else None,
            labels=labels,
        )

    def _firing(self, subject: str) -> Any:
        firing = self.ctx.firing
        return firing(RULE, subject) if firing is not None else None


def _since(msg: m.Health, at: float) -> float:
    """Offline since the last successful poll when the gateway says so (better than the report time)."""
    if msg.last_success_ts is not None and msg.last_success_ts / 1000 <= at:
        return msg.last_success_ts / 1000
    return at


def _clock(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _build(cfg: DevicesConfig, ctx: RuleContext) -> list[DeviceOffline]:
    return [DeviceOffline(cfg, ctx)]


RULESET: Final = RuleSet(name="devices", config=DevicesConfig, build=_build)
