"""Per-device health: online -> degraded -> quarantined (exponential back-off) -> probing -> online.

Layer: gateway core, pure (time passed in). A quarantined device is not polled until its probe time,
and then only once with no retries, so a dead meter costs the bus one short timeout per back-off
period instead of a full timeout (plus retries) every interval: the live devices keep their rate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

State = Literal["online", "degraded", "quarantined", "probing"]


@dataclass
class HealthPolicy:
    degrade_after: int = 1  # consecutive failures before "degraded"
    quarantine_after: int = 3  # consecutive failures before "quarantined"
    backoff_min_s: float = 30.0
    backoff_max_s: float = 900.0


@dataclass
class DeviceHealth:
    policy: HealthPolicy = field(default_factory=HealthPolicy)
    state: State = "online"
    consecutive_failures: int = 0
    polls: int = 0
    failures: int = 0
    last_success_ms: int | None = None
    last_latency_ms: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    probe_at: float = 0.0
    backoff_s: float = 0.0
    changed: bool = True  # the retained health message needs publishing
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def may_poll(self, now: float) -> bool:
        if self.state != "quarantined":
            return True
        if now >= self.probe_at:
            self._set("probing")
            return True
        return False

    @property
    def retries_allowed(self) -> bool:
        return self.state in ("online", "degraded")

    def success(self, now_ms: int, latency_ms: float) -> None:
        self.polls += 1
        self.consecutive_failures = 0
        self.backoff_s = 0.0
        self.last_success_ms = now_ms
        self.last_latency_ms = latency_ms
        self._set("online")

    def failure(self, now: float, error: str) -> None:
        self.polls += 1
        self.failures += 1
        self.consecutive_failures += 1
        self.errors[error] = self.errors.get(error, 0) + 1
        p = self.policy
        if self.state == "probing" or self.consecutive_failures >= p.quarantine_after:
            self.backoff_s = min(max(self.backoff_s * 2, p.backoff_min_s), p.backoff_max_s)
            # full jitter in the upper half: many dead meters do not probe in lock-step
            self.probe_at = now + self.backoff_s * self._rng.uniform(0.5, 1.0)
            self._set("quarantined")
        elif self.consecutive_failures >= p.degrade_after:
            self._set("degraded")

    def port_down(self, error: str) -> None:
        """The bus lost its port: not the device's fault, so no back-off (it polls as soon as the port
        is back), but it is not answering either: degraded."""
        self.errors[error] = self.errors.get(error, 0) + 1
        if self.state == "online":
            self._set("degraded")

    def _set(self, state: State) -> None:
        if state != self.state:
            self.state = state
            self.changed = True
