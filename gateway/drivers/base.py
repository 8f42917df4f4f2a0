"""The driver interface: what the scheduler and the command handler need from a device kind.

Layer: gateway drivers. A driver turns one poll into canonical samples/events by running transactions
on its Bus (never by opening the port), says how much airtime a poll costs (for the airtime budget),
and executes commands. Device kinds register in `gateway.drivers.registry`.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from protocols.config import Frozen
from protocols.messages import EventKind, Sample, Scalar, Source

__all__ = [
    "CommandOutcome",
    "CommandRejected",
    "DeviceBase",
    "DeviceEvent",
    "Driver",
    "DriverContext",
    "PollResult",
    "Sample",
]

from ..bus import Bus
from ..health import DeviceHealth
from ..line import LineSettings, Timing


class DeviceBase(Frozen):
    """Fields every device kind has. Kind-specific models subclass this and add a `kind` Literal."""

    kind: str  # narrowed to the kind's Literal by each kind's model (the union's discriminator)
    id: str
    interval_s: float = 60.0
    area: str = ""
    enabled: bool = True
    tags: dict[str, str] = {}

    def bus_addresses(self) -> list[tuple[str, object]]:
        """(address space, address) of every bus address the device answers on: two devices of one
        bus may not share one (`gateway check`). The hall answers on its dispenser, keypads and pads."""
        raise NotImplementedError(f"{type(self).__name__}.bus_addresses")


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    ts_ms: int
    kind: EventKind
    data: Mapping[str, Scalar | None]
    dev: str = ""  # defaults to the driver's device id
    source: Source = "live"


@dataclass
class PollResult:
    samples: list[Sample] = field(default_factory=list)
    events: list[DeviceEvent] = field(default_factory=list)
    # health of the driver's sub-devices (a hall's keypads and pads) that changed in this poll
    health: dict[str, DeviceHealth] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    status: str  # "done" | "failed" | "rejected"
    reason: str = ""
    answer: Mapping[str, Any] = field(default_factory=dict)
    state: Mapping[str, Scalar | None] = field(default_factory=dict)


class CommandRejected(Exception):
    """A command that is not valid for this device (unsupported action or bad params)."""


def _unknown() -> bool:
    return False


@dataclass
class DriverContext:
    gateway_id: str
    clock_ms: Callable[[], int]
    state_dir: Path
    log: logging.Logger
    # is the gateway's own clock synchronised (NTP)? Meter clocks are only corrected when it is
    clock_synchronised: Callable[[], bool] = _unknown


class Driver(abc.ABC):
    kind: ClassVar[str]
    config_model: ClassVar[type[DeviceBase]]
    actions: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: DeviceBase, bus: Bus, ctx: DriverContext) -> None:
        self.config = config
        self.bus = bus
        self.ctx = ctx
        # Set by the scheduler while the device is being probed after quarantine: one attempt, no
        # retries, so a dead device costs the bus as little airtime as possible.
        self.probing = False
        self._last_relay: Scalar | None = None

    @property
    def id(self) -> str:
        return self.config.id

    @abc.abstractmethod
    async def poll(self) -> PollResult:
        """One poll. Raise a GatewayError when the device did not answer at all."""

    @classmethod
    @abc.abstractmethod
    def poll_airtime_s(cls, config: Any, line: LineSettings) -> float:
        """Wire time of one poll of a device configured as `config` at `line`'s baud rate, including
        the expected turnarounds (used by the airtime budget before any port is opened)."""

    @classmethod
    def line_gap_s(cls, line: LineSettings) -> float:
        """Quiet time this protocol needs on the line before a request."""
        return max(3.5 * line.char_time(), 0.002)

    def transaction_timing(self, reply_timeout_ms: int, byte_timeout_ms: int, retries: int) -> Timing:
        """Timeouts from the device's config and the line's wire time (an inter-byte timeout is never
        shorter than three characters); no retries while a quarantined device is being probed."""
        line = self.bus.line
        return Timing(
            first_byte_s=reply_timeout_ms / 1000,
            inter_byte_s=max(byte_timeout_ms / 1000, 3 * line.char_time()),
            gap_before_s=self.line_gap_s(line),
            retries=0 if self.probing else retries,
        )

    def relay_events(self, ts_ms: int, values: Mapping[str, Scalar]) -> list[DeviceEvent]:
        """A `relay_change` event when the relay's actual state differs from the previous poll's."""
        relay = values.get("relay")
        if relay is None:
            return []
        previous, self._last_relay = self._last_relay, relay
        if previous is None or previous == relay:
            return []
        return [DeviceEvent(ts_ms, EventKind.RELAY_CHANGE, {"relay": relay, "previous": previous})]

    def health_devices(self) -> list[str]:
        """Device ids whose health this driver reports (a hall reports each keypad and pad)."""
        return [self.id]

    def check_command(self, action: str, params: Mapping[str, Any]) -> None:
        """Raise CommandRejected if `action`/`params` are not valid for this device."""
        if action not in self.actions:
            supported = ", ".join(sorted(self.actions)) or "none"
            raise CommandRejected(f"action {action!r} is not supported by {self.kind} devices ({supported})")

    async def execute(self, action: str, params: Mapping[str, Any]) -> CommandOutcome:
        raise CommandRejected(f"{self.kind} devices accept no commands")

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Persist state before shutdown (e.g. a hall queue)."""
