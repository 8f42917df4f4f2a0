"""A change on trial: kept once the gateway has reconnected to its broker and completed a poll on every
bus, rolled back otherwise. The A/B trial boot of a bootloader, for a gateway's config or software.

Layer: gateway core. Two parts, each usable alone (remote configuration uses both; a software update
can too):

- `TrialMarker`: a small JSON file (`Trial`: what is on trial, for which command, until when) written
  atomically before the change takes effect and removed once it is confirmed or rolled back. A gateway
  that starts and finds one died during the trial (a crash, a power cut, a watchdog, a SIGTERM): the
  change was never confirmed, so its owner rolls it back before running anything with it. A restart
  is never taken as a success: a change that makes the gateway die must not be kept because it
  happened to die after the deadline.
- `confirm(gw, deadline_s, since_ms)`: waits until the running gateway is connected to the broker and,
  on every bus with an enabled device, at least one device has answered a poll since `since_ms`.
  Returns None then, or the reason it did not happen within the deadline, naming the broker address
  and its last error and each silent bus with its port. A bus none of whose devices answers is what a
  wrong port, baud rate or parity looks like; a bus whose meters are all dead at that moment looks the
  same, and is rolled back too (the safe side: the previous config polled them).

The conditions are read (a few attributes) five times a second rather than hooked into the publisher
and every device runner: the trial lasts seconds to minutes, once in a long while.

Must not: decide what to roll back or how (the change's owner does), or publish anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from .statefile import write_atomically

if TYPE_CHECKING:
    from .app import Gateway

log = logging.getLogger(__name__)

CHECK_EVERY_S: Final = 0.2


@dataclass(frozen=True)
class Trial:
    """What is on trial. `kind`: `config` (remote configuration) or another owner's (e.g. `software`);
    `command_id` / `dev`: the command that asked for it (its final result is due on that device's
    result topic); `detail`: what the owner needs to report or roll back (hashes, versions, paths)."""

    kind: str
    command_id: str
    dev: str
    deadline_s: float
    started_ms: int
    detail: dict[str, str] = field(default_factory=dict)


class TrialMarker:
    """The marker file of one kind of change (e.g. `gateway.yaml.trial` beside the config)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def begin(self, trial: Trial) -> None:
        """Blocking (call in a thread): the marker is on disk, fsync'd, when this returns."""
        write_atomically(self.path, json.dumps(asdict(trial), sort_keys=True) + "\n")

    def pending(self) -> Trial | None:
        """The trial a previous run left unconfirmed, or None. A marker that cannot be read still
        means a change was on trial: it comes back as a Trial of kind `unreadable`."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            raw = json.loads(text)
            return Trial(
                kind=str(raw["kind"]),
                command_id=str(raw["command_id"]),
                dev=str(raw["dev"]),
                deadline_s=float(raw["deadline_s"]),
                started_ms=int(raw["started_ms"]),
                detail={str(k): str(v) for k, v in dict(raw.get("detail", {})).items()},
            )
        except (ValueError, KeyError, TypeError) as exc:
            log.error(
                "trial marker %s is unreadable (%s): treating it as an unconfirmed change", self.path, exc
            )
            return Trial("unreadable", "", "", 0.0, 0, {"error": str(exc)})

    def end(self) -> None:
        self.path.unlink(missing_ok=True)


async def confirm(gw: Gateway, deadline_s: float, since_ms: int) -> str | None:
    """None once `gw` is connected and has a poll answered on every bus since `since_ms`; else, at the
    deadline, why not."""
    deadline = time.monotonic() + deadline_s
    while True:
        connected = gw.publisher.stats.connects > 0
        silent = silent_buses(gw, since_ms)
        if connected and not silent:
            return None
        if time.monotonic() >= deadline:
            return failure_reason(gw, connected, silent, deadline_s)
        await asyncio.sleep(CHECK_EVERY_S)


def silent_buses(gw: Gateway, since_ms: int) -> list[str]:
    """Buses with an enabled device of which none has answered a poll since `since_ms`."""
    silent = []
    for bus in gw.cfg.buses:
        runners = [gw.runners[d.id] for d in bus.devices if d.enabled and d.id in gw.runners]
        if not runners:
            continue
        if not any((r.health.last_success_ms or 0) >= since_ms for r in runners):
            silent.append(bus.name)
    return silent


def failure_reason(gw: Gateway, connected: bool, silent: list[str], deadline_s: float) -> str:
    reasons = []
    if not connected:
        mqtt = gw.cfg.mqtt
        last = gw.publisher.stats.last_error or "no answer"
        reasons.append(f"no connection to the broker at {mqtt.host}:{mqtt.port} ({last})")
    ports = {bus.name: bus.port for bus in gw.cfg.buses}
    reasons += [f"bus {name} on {ports[name]}: no device answered a poll" for name in silent]
    return f"within {deadline_s:g} s: " + "; ".join(reasons)
