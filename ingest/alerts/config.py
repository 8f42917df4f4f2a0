"""The `alerts:` section of ingest.yaml: state file, tick, flap damping, webhook, per-rule-set thresholds.

Layer: ingest alert configuration (pure: validates what it is given). Must not: open the state file,
connect anywhere or read the clock.

    alerts:
      state_path: /var/lib/gridedge/alerts.sqlite
      tick_s: 5
      flap: {max_flips: 4, window_s: 3600, hold_s: 1800}
      webhook: {url: https://ops.example/hook, timeout_s: 5, retries: 5}
      alertmanager: {url: http://127.0.0.1:9093, resend_s: 60, lease_s: 300}
      autocontrol: {enabled: false, hours: "08:00-17:00", approval: true, max_per_hour: 30}
      partition: {index: 0, count: 2}   # this engine's share of the gateways (ingest/alerts/partition.py)
      rules:
        devices: {pending_s: 120}
        outage: {...}

`rules` maps a rule set's name (see ingest/alerts/rules) to its own config model; every set not
named runs with its documented defaults. Errors name the field: `alerts.rules.devices.pending_s`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from protocols.config import Frozen, HttpUrl

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

    url: HttpUrl | None = Field(default=None, description="http(s) URL; none: no webhook")
    timeout_s: float = Field(default=5.0, gt=0)
    retries: int = Field(default=5, ge=0, description="attempts after the first, with back-off")
    backoff_s: float = Field(default=1.0, gt=0, description="first back-off; doubles, full jitter")
    backoff_max_s: float = Field(default=60.0, gt=0)
    queue: int = Field(default=1000, ge=1, description="changes waiting to be sent before drops")
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. Authorization")


# where the subject is: fixed for an alert's life, so Alertmanager's identity of it (its label set) is too
ALERTMANAGER_LABEL_KEYS = (
    "gw", "dev", "site", "area", "region", "phase", "hall", "counter", "account", "customer_class", "outage",
)  # fmt: skip


class AlertmanagerSection(Frozen):
    """Optional: alerts POSTed to a Prometheus Alertmanager's v2 API (ingest/alerts/alertmanager.py).
    A firing alert is re-sent every `resend_s` with `endsAt` = now + `lease_s`, so Alertmanager ends
    it by itself `lease_s` after gridedge stops saying it fires; a resolved one is sent with its end.
    Never blocks the engine: the latest state of each alert waits in a bounded set for one sender."""

    url: HttpUrl | None = Field(
        default=None, description="Alertmanager's base URL, e.g. http://127.0.0.1:9093; none: off"
    )
    timeout_s: float = Field(default=5.0, gt=0)
    resend_s: float = Field(default=60.0, gt=0, description="firing alerts are re-sent this often")
    lease_s: float = Field(
        default=300.0, gt=0, description="endsAt of a firing alert: now + this (at least 2 x resend_s)"
    )
    batch: int = Field(default=500, ge=1, description="alerts per POST")
    queue: int = Field(
        default=10_000, ge=1, description="ended alerts waiting to be sent before more are dropped"
    )
    backoff_s: float = Field(default=1.0, gt=0, description="first back-off; doubles, full jitter")
    backoff_max_s: float = Field(default=60.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. Authorization")
    labels: dict[str, str] = Field(
        default_factory=dict, description="added to every alert, e.g. {source: gridedge, company: x}"
    )
    label_keys: list[str] = Field(
        default_factory=lambda: list(ALERTMANAGER_LABEL_KEYS),
        description="the alert's labels sent as labels (they place the subject and never change while "
        "it fires); its others (inhibits, ticket, SLA clock states ...) are sent as annotations",
    )
    generator_url: str | None = Field(
        default=None, description="generatorURL, with {rule} and {subject} replaced (URL-quoted)"
    )

    @model_validator(mode="after")
    def _lease_outlives_resends(self) -> AlertmanagerSection:
        if self.lease_s < 2 * self.resend_s:
            raise ValueError(
                f"lease_s {self.lease_s:g} must be at least 2 x resend_s {self.resend_s:g}: otherwise "
                "Alertmanager ends a firing alert when one re-send is late"
            )
        return self

    @field_validator("generator_url")
    @classmethod
    def _check_template(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.format(rule="r", subject="s")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"{value!r}: only {{rule}} and {{subject}} are replaced ({exc})") from None
        return value


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def parse_hours(text: str) -> tuple[int, int]:
    """ "HH:MM-HH:MM" -> (start, end) in minutes of the local day; end may be 24:00; start > end wraps
    past midnight; equal start and end means all day."""
    found = _HOURS.match(text.strip())
    if found is None:
        raise ValueError(f"hours {text!r}: expected HH:MM-HH:MM, e.g. 08:00-17:00")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    if h2 == 24 and m2:
        raise ValueError(f"hours {text!r}: 24:MM is not a time")
    return h1 * 60 + m1, h2 * 60 + m2


class AutoControlSection(Frozen):
    """Optional automatic trip / reconnect (ingest/alerts/autocontrol.py), **off by default**. When on, an
    `arrears` alert that fires leads to a signed `trip` of the account's meter, and a payment that
    clears arrears to `reconnect_action`; never for keep-power accounts, only inside `hours` on
    `weekdays` that are not `holidays` (local time = UTC + `utc_offset_s`), trips held for an
    operator's approval when `approval`, at most `max_per_minute` / `max_per_hour` commands, every
    decision audited. The command key comes from `key_file` (first line) or the `key_env` variable;
    with `private_key_file` commands are signed with that Ed25519 key instead."""

    enabled: bool = Field(default=False, description="publish commands at all (default: no)")
    hours: str = Field(default="08:00-17:00", description="local HH:MM-HH:MM in which commands may go")
    weekdays: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS[:5]), description="working days (default mon..fri)"
    )
    holidays: list[dt.date] = Field(default_factory=list, description="local dates with no commands")
    utc_offset_s: float = Field(default=8 * 3600.0, description="local time = UTC + this (default +08:00)")
    approval: bool = Field(default=True, description="trips wait for an operator's approval")
    approval_reconnect: bool = Field(default=False, description="reconnections wait for approval too")
    max_per_minute: int = Field(default=10, ge=1, description="commands sent in any 60 s, all meters")
    max_per_hour: int = Field(default=60, ge=1, description="commands sent in any 3600 s, all meters")
    reconnect_action: Literal["allow_close", "close"] = Field(
        default="allow_close", description="allow_close (customer presses the button) or close now"
    )
    key_file: Path | None = Field(
        default=None, description="file whose first line is the command key (relative: state folder)"
    )
    key_env: str = Field(default="GRIDEDGE_COMMAND_KEY", description="else the key from this variable")
    private_key_file: Path | None = Field(
        default=None,
        description="an operator's Ed25519 private key (PEM, `gridedge keys generate`; relative: state "
        "folder) to sign with instead of the HMAC key: for gateways that accept Ed25519 only",
    )
    command_ttl_s: float = Field(default=300.0, gt=0, description="validity of a command (expires_at)")
    defer_max_s: float = Field(
        default=7 * 86400.0, gt=0, description="a deferred / unapproved action is dropped after this"
    )

    @field_validator("hours")
    @classmethod
    def _check_hours(cls, value: str) -> str:
        parse_hours(value)
        return value


class PartitionSection(Frozen):
    """`alerts.partition`: this engine is partition `index` of `count` alert engines, each owning the
    gateways whose group key hashes to it (ingest/alerts/partition.py). Its MQTT client id and its state
    file get `-p{index}of{count}` (alerts.sqlite -> alerts-p0of2.sqlite, unless `state_path`); the
    cost-control ledger stays one file for all of them (the account book, which `gridedge ingest billing
    import` writes too)."""

    index: int = Field(ge=0, description="this engine's partition, 0 .. count-1")
    count: int = Field(ge=1, description="how many alert engines share the gateways")
    state_path: Path | None = Field(
        default=None,
        description="this partition's state file (default: alerts.state_path with -p{index}of{count}); "
        "relative: from the alert state file's folder",
    )
    inherit_from: list[Path] = Field(
        default_factory=list,
        description="state file(s) of the engines this partition takes over from (a partition's name "
        "says which: alerts-p1of2.sqlite), read once when its own state file does not exist yet "
        "(repartitioning, docs/production.md); relative: from the alert state file's folder",
    )
    inherit_ledger_from: Path | None = Field(
        default=None,
        description="with a cost-control ledger per partition: the ledger this one starts as a copy of, "
        "when its own does not exist yet; relative: from the alert state file's folder",
    )

    @field_validator("inherit_from", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | Path) else value

    @model_validator(mode="after")
    def _index_below_count(self) -> PartitionSection:
        if self.index >= self.count:
            raise ValueError(f"index {self.index} must be below count {self.count}")
        return self

    @property
    def suffix(self) -> str:
        """`-p{index}of{count}`: of the MQTT client id and of the state file's name."""
        return f"-p{self.index}of{self.count}"

    def own_state_path(self, alerts_state: Path) -> Path:
        """Where this partition keeps its state: `state_path`, else alerts.sqlite -> alerts-p0of2.sqlite."""
        if self.state_path is not None:
            return alerts_state.parent / self.state_path  # an absolute state_path stays as it is
        return alerts_state.with_name(f"{alerts_state.stem}{self.suffix}{alerts_state.suffix}")

    def inherited_states(self, alerts_state: Path) -> list[Path]:
        return [alerts_state.parent / path for path in self.inherit_from]

    def inherited_ledger(self, alerts_state: Path) -> Path | None:
        return None if self.inherit_ledger_from is None else alerts_state.parent / self.inherit_ledger_from


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
    alertmanager: AlertmanagerSection = AlertmanagerSection()
    prometheus_port: int | None = Field(
        default=None, ge=0, le=65535, description="the engine's own /metrics (its outputs' figures)"
    )
    autocontrol: AutoControlSection = AutoControlSection()
    partition: PartitionSection | None = Field(
        default=None, description="this engine's share when several alert engines split the gateways"
    )
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
