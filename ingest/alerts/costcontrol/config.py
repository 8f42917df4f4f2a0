"""The configuration of remote cost control: `alerts.rules.costcontrol` in ingest.yaml.

Layer: ingest alert configuration (a pydantic model, validated once). Must not: open the ledger, decide
alerts or import the ingest service's config (ingest/config.py reaches this through the rule set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from pydantic import Field

from protocols.config import Frozen

__all__ = ["RECONNECT_PRESETS", "CostControlConfig", "LadderThresholds", "SiteOverride"]

RECONNECT_PRESETS: Final = {"sgcc": 24 * 3600.0, "csg": 12 * 3600.0}


class LadderThresholds(Frozen):
    reminder_cny: float = Field(default=50.0, description="balance below this: reminder (severity info)")
    warning_cny: float = Field(default=10.0, description="balance below this: warning (severity warning)")


class SiteOverride(Frozen):
    classes: dict[str, LadderThresholds] = Field(default_factory=dict, description="per class, this site")
    reconnect_deadline_s: float | None = Field(default=None, gt=0, description="stricter local promise")


class CostControlConfig(Frozen):
    """`alerts.rules.costcontrol` in ingest.yaml."""

    ledger_path: Path = Field(
        default=Path("costcontrol-ledger.sqlite"),
        description="the account ledger (SQLite); relative: from the alert state file's folder",
    )
    classes: dict[str, LadderThresholds] = Field(
        default_factory=lambda: {
            "residential": LadderThresholds(reminder_cny=50.0, warning_cny=10.0),
            "commercial": LadderThresholds(reminder_cny=200.0, warning_cny=50.0),
        },
        description="ladder thresholds per customer class (default: residential 50/10, commercial 200/50)",
    )
    default_thresholds: LadderThresholds = Field(
        default_factory=LadderThresholds, description="for classes not listed (50/10 CNY)"
    )
    sites: dict[str, SiteOverride] = Field(default_factory=dict, description="per-site overrides")
    reconnect_preset: Literal["sgcc", "csg"] = Field(
        default="sgcc", description="payment -> reconnection promise: sgcc 24 h, csg 12 h"
    )
    reconnect_deadline_s: float | None = Field(default=None, gt=0, description="overrides the preset")
    divergence_abs_cny: float = Field(default=1.0, ge=0, description="tolerance in CNY ...")
    divergence_rel: float = Field(default=0.02, ge=0, description="... or as a share of the balance")
    divergence_pending_s: float = Field(default=900.0, ge=0, description="how long it must diverge")
    relay_current_a: float = Field(default=0.1, ge=0, description="current above this 'flows'")
    relay_power_kw: float = Field(default=0.02, ge=0, description="active power above this 'flows'")
    relay_settle_s: float = Field(default=120.0, ge=0, description="commanded vs actual may differ this long")
    balance_clear_s: float = Field(default=0.0, ge=0, description="hysteresis of balance_low / arrears")

    def thresholds(self, site: str, customer_class: str) -> LadderThresholds:
        override = self.sites.get(site)
        if override is not None and customer_class in override.classes:
            return override.classes[customer_class]
        return self.classes.get(customer_class, self.default_thresholds)

    def reconnect_deadline(self, site: str) -> float:
        override = self.sites.get(site)
        if override is not None and override.reconnect_deadline_s is not None:
            return override.reconnect_deadline_s
        return self.reconnect_deadline_s or RECONNECT_PRESETS[self.reconnect_preset]
