"""The `alerts:` section of ingest.yaml: state file, tick, flap damping, webhook, per-rule-set thresholds.

Layer: ingest alert configuration (pure: validates what it is given). Must not: open the state file,
connect anywhere or read the clock.

    alerts:
      state_path: /var/lib/gridedge/alerts.sqlite
      tick_s: 5
      flap: {max_flips: 4, window_s: 3600, hold_s: 1800}
      webhook: {url: https://ops.example/hook, timeout_s: 5, retries: 5}
      rules:
        devices: {pending_s: 120}
        outage: {...}

`rules` maps a rule set's name (see ingest/alerts/rules) to its own config model; every set not
named runs with its documented defaults. Errors name the field: `alerts.rules.devices.pending_s`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from protocols.config import Frozen

from .model import RuleSet


class FlapSection(Frozen):
    """A subject whose alert changed firing <-> resolved more than `max_flips` times within `window_s`
    (the current firing counts) is flapping: it is then held firing until its condition has been gone
    for `hold_s` (instead of the rule's own `clear_s`)."""

    max_flips: int = Field(default=4, ge=1, description="more changes than this are a flap")
    window_s: float = Field(default=3600.0, gt=0, description="window in which changes are counted")
    hold_s: float = Field(default=1800.0, ge=0, description="quiet time a flapping alert needs to resolve")


class WebhookSection(Frozen):
    """Optional: every state change POSTed as JSON. Never blocks the engine: a bounded queue feeds
    one sender; when the queue is full the change is dropped and counted."""

    url: str | None = Field(default=None, description="http(s) URL; none: no webhook")
    timeout_s: float = Field(default=5.0, gt=0)
    retries: int = Field(default=5, ge=0, description="attempts after the first, with back-off")
    backoff_s: float = Field(default=1.0, gt=0, description="first back-off; doubles, full jitter")
    backoff_max_s: float = Field(default=60.0, gt=0)
    queue: int = Field(default=1000, ge=1, description="changes waiting to be sent before drops")
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. Authorization")


class AlertsSection(Frozen):
    enabled: bool = Field(default=True, description="--role all runs the alert engine when true")
    state_path: Path = Field(
        default=Path("alerts.sqlite"), description="SQLite file (WAL): alerts and rule state"
    )
    tick_s: float = Field(default=5.0, gt=0, description="how often timers (silence) are evaluated")
    history: int = Field(default=10_000, ge=0, description="resolved alerts kept in the state file")
    client_id_suffix: str = Field(default="-alerts", description="MQTT client id = mqtt.client_id + this")
    flap: FlapSection = FlapSection()
    webhook: WebhookSection = WebhookSection()
    rules: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per rule set: its thresholds (see each rule set's config)"
    )

    @field_validator("rules")
    @classmethod
    def _check_rules(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from .rules import rulesets

        rule_configs(value, rulesets())
        return value

    def rule_configs(self, sets: Iterable[RuleSet]) -> dict[str, Any]:
        """The validated config instance of every rule set (defaults for those not named)."""
        return rule_configs(self.rules, sets)


def rule_configs(rules: dict[str, dict[str, Any]], sets: Iterable[RuleSet]) -> dict[str, Any]:
    """Validate each rule set's section; raise ValueError naming `alerts.rules.<set>.<field>`."""
    sets = list(sets)
    known = {s.name for s in sets}
    problems = [
        f"alerts.rules.{name}: unknown rule set (known: {', '.join(sorted(known))})"
        for name in rules
        if name not in known
    ]
    out: dict[str, Any] = {}
    for rs in sets:
        try:
            out[rs.name] = rs.config.model_validate(rules.get(rs.name) or {})
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"])
                problems.append(f"alerts.rules.{rs.name}{'.' + where if where else ''}: {err['msg']}")
    if problems:
        raise ValueError("; ".join(problems))
    return out
