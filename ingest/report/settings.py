"""The figures' yardsticks from the ingest config and its topology: the repair-promise preset and each
area's region, the reconnection promise per site, the expected meters and their reading intervals, the
clock-drift threshold, the dissatisfied rating levels, the callback deadline.

Layer: ingest reporting (pure: reads the already validated config models). Must not: read files or
the clock (the CLI loads the config; `as_of` is given).
"""

from __future__ import annotations

from typing import Any

from ..alerts.rules import rulesets
from ..config import IngestConfig
from ..topology import Topology
from .model import Context

__all__ = ["context"]


def context(
    cfg: IngestConfig,
    topology: Topology,
    as_of: float,
    *,
    preset: str | None = None,
    callback_deadline_s: float | None = None,
) -> Context:
    rules: dict[str, Any] = cfg.alerts.rule_configs(rulesets())
    outage, cost, reading, hall = rules["outage"], rules["costcontrol"], rules["reading"], rules["hall"]
    sites = dict(topology.sites)
    reconnect = {site: cost.reconnect_deadline(site) for site in {"", *sites.values()}}
    meters = {}
    for (gw, dev), info in topology.devices.items():
        if (info.area or info.account) and not info.hall:  # as the reading rules expect them
            interval = reading.interval_by_device.get(f"{gw}/{dev}") or reading.interval_by_class.get(
                info.customer_class
            )
            meters[(gw, dev)] = float(interval or reading.interval_s)
    # the follow-up rules give the callback deadline (rating_followup); the option wins, else 24 h
    followup = rules.get("followup", hall)
    deadline = callback_deadline_s or getattr(followup, "callback_deadline_s", None) or 24 * 3600.0
    return Context(
        as_of=as_of,
        sla_preset=preset or outage.sla_preset,
        regions={name: area.region for name, area in topology.areas.items()},
        sites=sites,
        reconnect_s=reconnect,
        meters=meters,
        default_interval_s=float(reading.interval_s),
        clock_warning_s=float(reading.clock_warning_s),
        dissatisfied_levels=tuple(hall.dissatisfied_levels),
        callback_deadline_s=float(deadline),
    )
