"""What rules and the alert engine share: signals, alerts, the rule interface, subjects, severities.

Layer: ingest alert model (pure). Must not: do I/O, read the wall clock (time is the `now` given, UNIX
seconds, so tests run in compressed time), or import the engine, stores or outputs.

A **rule** watches decoded messages (`on_message`) and time (`on_tick`) and reports `Signal`s: "this
condition holds / no longer holds for this subject". It reports the *raw* condition; the engine owns the
alert life cycle — `pending -> firing -> resolved`, the `pending_s` delay before firing, the `clear_s`
hysteresis before resolving, flap damping, de-duplication, persistence and the outputs. A rule that
needs memory (last reading per meter, a ledger) keeps it in its own object and round-trips it through
`snapshot()` / `restore()` (JSON-able), which the engine persists next to the alerts.

Rule identifiers are a contract (topics, InfluxDB, docs): see `RULE_IDS`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from protocols import messages as m

from ..topology import Topology

RULE_IDS: Final = (
    # outages (ingest/alerts/rules/outage.py)
    "meter_supply_lost",
    "area_outage",
    "phase_outage",
    "gateway_offline",
    "comm_fault",
    "outage_sla_at_risk",
    # remote cost control (ingest/alerts/rules/costcontrol.py)
    "balance_low",
    "arrears",
    "balance_divergence",
    "relay_misoperation",
    "reconnect_overdue",
    # reading health (ingest/alerts/rules/reading.py)
    "missed_reading",
    "register_decrease",
    "register_runaway",
    "register_stopped",
    "zero_consumption",
    "consumption_swing",
    "clock_drift",
    # business hall (ingest/alerts/rules/hall.py)
    "hall_wait",
    "queue_depth",
    "counter_paused",
    "dissatisfied_rating",
    "satisfaction_low",
    "rating_followup",  # a dissatisfied rating's callback overdue (ingest/alerts/rules/followup.py)
    # devices (ingest/alerts/rules/devices.py)
    "device_offline",
)


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    MAJOR = "major"
    CRITICAL = "critical"


class AlertState(enum.StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


# ---- subjects: the thing an alert is about, also the tail of gridedge/v1/alerts/{rule}/{subject} --------


def meter_subject(gw: str, dev: str) -> str:
    return f"{gw}/{dev}"


def device_subject(gw: str, dev: str) -> str:
    return f"{gw}/{dev}"


def gateway_subject(gw: str) -> str:
    return gw


def area_subject(area: str) -> str:
    return f"area/{area}"


def phase_subject(area: str, phase: str) -> str:
    return f"area/{area}/phase-{phase}"


def hall_subject(hall: str) -> str:
    return f"hall/{hall}"


def counter_subject(hall: str, counter: int | str) -> str:
    return f"hall/{hall}/counter-{counter}"


def account_subject(account: str) -> str:
    return f"account/{account}"


def subject_kind(subject: str) -> str:
    """What a subject built above is about: gateway, device (meters included), area, phase, hall,
    counter or account (the contract's `subject_kind`)."""
    head, _, rest = subject.partition("/")
    if head == "account" and rest:
        return "account"
    if head == "area" and rest:
        return "phase" if "/" in rest else "area"
    if head == "hall" and rest:
        return "counter" if "/" in rest else "hall"
    return "device" if rest else "gateway"


@dataclass(frozen=True, slots=True)
class Signal:
    """A rule's report on one (rule, subject) at time `at`: the condition is `active` or not.

    `pending_s`: how long the condition must hold before the alert fires (0: fire at once, e.g. a
    dissatisfied rating); `clear_s`: how long it must be gone before the alert resolves (hysteresis).
    `started_at`, when known better than `at` (a power-down record back-filled after restoration),
    corrects the alert's start; `ended_at` likewise corrects the end on resolve.
    `once`: an instantaneous alert (a rating) that fires and resolves by itself after `clear_s`.
    `resolve_message` (inactive signals): the resolved alert's message instead of the firing one;
    `{duration}` in it becomes the alert's final duration ("42 min"), corrections included.
    """

    rule: str
    subject: str
    active: bool
    at: float
    severity: Severity = Severity.WARNING
    value: float | None = None
    message: str = ""
    pending_s: float = 0.0
    clear_s: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    once: bool = False
    resolve_message: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)  # gw, area, hall, counter, staff, account ...


def human_duration(seconds: float | None) -> str:
    """ "42 s", "42 min", "3 h 05 min": how a resolved alert's message states its duration."""
    if seconds is None:
        return "?"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    h, rest = divmod(round(s / 60), 60)
    return f"{h} h {rest:02d} min"


@dataclass(slots=True)
class Alert:
    """One alert's life, as the engine keeps, persists and publishes it."""

    rule: str
    subject: str
    state: AlertState
    severity: Severity
    started_at: float  # when the condition began (pending since)
    fired_at: float | None = None
    ended_at: float | None = None
    value: float | None = None
    message: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    flaps: int = 0  # firing <-> resolved changes within the damping window
    # the people's work on it (operators' actions, ingest/alerts/work.py): open .. closed
    work: m.WorkState = "open"
    assignee: str = ""
    arrived_at: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.rule, self.subject

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


@dataclass(frozen=True, slots=True)
class Inbound:
    """A decoded message and where it came from (the topic's gateway/device)."""

    topic: str
    gw: str
    dev: str
    message: m.Message | Mapping[str, Any]  # a Mapping for non-device topics (billing) decoded by their rule


Wants = Callable[[str, str, bool], bool]
"""`wants(rule, subject, active)`: whether the engine would look at that signal. An active one always
(the engine notes it); an inactive one only when (rule, subject) has a current or recently resolved
alert or was reported active earlier in the same evaluation: otherwise it would change nothing, and a
rule may skip building it (its message, labels and the Signal). Measured: the inactive signals every
reading raises (register checks, balance ladder, relay) were ~30 % of the engine's time per reading.
A rule asking this must ask it for the active signals of the same (rule, subject) too."""


def always(rule: str, subject: str, active: bool) -> bool:
    """A rule's `wants` when no engine gives one (tests, a rule on its own): every signal."""
    return True


class SampleView(Protocol):
    """What the rules read of one sample: a `Sample`, or a `Reading` itself (its first sample)."""

    @property
    def ts(self) -> int: ...

    @property
    def values(self) -> dict[str, m.Scalar]: ...

    @property
    def source(self) -> m.Source: ...


def in_time_order(reading: m.Reading) -> Sequence[SampleView]:
    """A reading's samples oldest first; a one-sample reading (live polling) is its own sample, without
    building a Sample for it."""
    if not reading.more:
        return (reading,)
    return sorted(reading.samples(), key=_ts)


def _ts(sample: SampleView) -> int:
    return sample.ts


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What every rule gets at construction: the topology (areas, phases, halls, accounts, customer
    class, region) and a way to look up the engine's current alerts (e.g. outage rules check whether
    a meter's gateway is offline). Thresholds come from the rule set's own config model."""

    topology: Topology
    firing: Any = None  # Callable[[str, str], Alert | None]: the engine's alert for (rule, subject)
    state_dir: Path = Path(".")  # where rules keep files of their own (relative paths are taken from here)
    wants: Wants | None = None  # the engine's Wants (None, a rule on its own: every signal is wanted)


class Rule(Protocol):
    """One or more related rule ids evaluated by one object."""

    ids: tuple[str, ...]

    def on_message(self, inbound: Inbound, now: float) -> Iterable[Signal]: ...

    def on_tick(self, now: float) -> Iterable[Signal]: ...

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, state: Mapping[str, Any]) -> None: ...


@runtime_checkable
class Partitioned(Protocol):
    """A rule whose state is many independent parts (one per meter): at each commit only the parts
    changed since the last one are written (`take_changes`: changed parts, removed part keys), and at a
    restart they are handed back (`restore_parts`, after `restore` of its `snapshot()`, which then holds
    only what is not per part). A part is plain JSON: strings, finite numbers, booleans, None, lists and
    dicts with string keys (a NaN would come back None). Measured: the whole reading-rule state of 20,000
    meters was 5.6 MB and 0.65 s to build, written at every batch."""

    def take_changes(self) -> tuple[dict[str, dict[str, Any]], set[str]]: ...

    def restore_parts(self, parts: Mapping[str, Mapping[str, Any]]) -> None: ...


@runtime_checkable
class Flushes(Protocol):
    """A rule that batches writes to a store of its own (the cost-control ledger): the engine calls
    `flush()` at every commit, before the alert state is saved and the messages are acknowledged."""

    def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A module's rules: `name` is its section under `alerts.rules` in ingest.yaml, `config` the pydantic
    model of that section (defaults documented there), `build` makes the rule objects."""

    name: str
    config: type[Any]
    build: Any  # Callable[[config instance, RuleContext], list[Rule]]
    topics: tuple[str, ...] = ()  # extra MQTT filters this rule set needs (e.g. gridedge/v1/billing/#)
