"""What `gridedge commission` found on a line and what it proposes to add to a gateway config.

Layer: gateway commissioning. The scanning is each kind's own `scan` (`gateway/drivers/<kind>/
commission.py`, the one `gridedge scan` runs); a kind whose scan rows are not one device each (a hall:
dispenser, keypads and pads are one device) turns them into devices with an optional
`propose(rows) -> [placeholder values]`. Must not: open a port (the caller's Bus owns it), or write
a file (`configtext` renders, the CLI writes after `gateway check` accepted the result).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from protocols.errors import ConfigError

from ..bus import Bus
from ..drivers.base import DeviceBase
from .common import protocol_module
from .templates import Template

Progress = Callable[[int, int, str], None]
_NOT_SHOWN = {"latency_ms", "answer", "counters"}


@dataclass(frozen=True)
class Finding:
    """One device a scan found, as its template proposes it."""

    template: Template
    values: Mapping[str, Any]  # the placeholders' values (a scan row, or a kind's `propose` output)
    entry: dict[str, Any] | None = None  # the device entry for the config
    device: DeviceBase | None = None  # the entry validated by the kind's model
    problem: str = ""  # why there is no device (the template does not fit what answered)

    @property
    def answer(self) -> str:
        """What the device answered, one line (a kind's own summary, or the scan row's fields)."""
        if text := self.values.get("answer"):
            shown = [str(text)]
        else:
            shown = [f"{k} {v}" for k, v in self.values.items() if k not in _NOT_SHOWN]
        latency = self.values.get("latency_ms")
        return ", ".join(shown + ([f"in {latency} ms"] if latency is not None else []))


@dataclass
class Outcome:
    """The table row of one device: found and added, found and already there, or not found."""

    device: str
    kind: str
    addresses: str
    template: str
    answer: str
    result: str
    entry: dict[str, Any] | None = field(default=None, repr=False)  # set when the device is to be added


async def scan(bus: Bus, template: Template, args: argparse.Namespace, progress: Progress) -> list[Finding]:
    """Run the kind's scan with the template's scan defaults, and propose a device for each find."""
    module = protocol_module(template.kind)
    rows: list[dict[str, Any]] = await module.scan(bus, args, progress)
    propose = getattr(module, "propose", None)
    found: list[dict[str, Any]] = propose(rows) if propose is not None else rows
    return [_finding(template, values) for values in found]


def _finding(template: Template, values: Mapping[str, Any]) -> Finding:
    try:
        entry = template.entry(values)
        return Finding(template, values, entry, template.device(values))
    except ConfigError as exc:
        return Finding(template, values, problem="; ".join(exc.problems))


def scan_args(
    args: argparse.Namespace, template: Template, defaults: Mapping[str, Any]
) -> argparse.Namespace:
    """`args` with the template's `scan` values for the options left at their default: what the
    engineer typed wins over the template, the template over the option's own default."""
    merged = argparse.Namespace(**vars(args))
    for dest, value in template.spec.scan.items():
        if not hasattr(args, dest):
            raise ConfigError(
                [
                    f"{template.path}: scan: {dest!r} is not an option of `gridedge scan --protocol "
                    f"{template.kind}`"
                ]
            )
        if getattr(args, dest) == defaults.get(dest):
            setattr(merged, dest, value)
    return merged


def compare(
    findings: Sequence[Finding], scanned: set[str], existing: Sequence[DeviceBase], taken_ids: Iterable[str]
) -> list[Outcome]:
    """One row per finding (to add, or why not) and per configured device of the `scanned` kinds that
    this scan did not find. `existing`: the devices already on this line's bus; `taken_ids`: every
    device id of the config (ids are unique per gateway)."""
    owner = {key: dev.id for dev in existing for key in dev.bus_addresses()}
    ids = set(taken_ids)
    seen: set[tuple[str, object]] = set()
    rows = []
    for f in findings:
        device = f.device
        keys = device.bus_addresses() if device is not None else []
        row = Outcome(
            device.id if device else "?",
            f.template.kind,
            _where(keys) or f.answer,
            f.template.name,
            f.answer,
            "",
        )
        if device is None:
            row.result = f"not added: {f.problem}"
        elif mine := sorted({owner[k] for k in keys if k in owner}):
            row.result = f"already configured ({', '.join(mine)})"
        elif device.id in ids:
            row.result = f"not added: device id {device.id!r} is already used in this config"
        elif seen & set(keys):
            row.result = "not added: found twice in this scan"
        else:
            row.result, row.entry = "added", f.entry
            ids.add(device.id)
        seen.update(keys)
        rows.append(row)
    for dev in existing:
        keys = dev.bus_addresses()
        if dev.kind in scanned and not seen & set(keys):
            rows.append(
                Outcome(dev.id, dev.kind, _where(keys), "", "nothing", "configured, not found by this scan")
            )
    return rows


def _where(keys: Sequence[tuple[str, object]]) -> str:
    if not keys:
        return ""
    space = keys[0][0]
    return f"{space} " + ",".join(str(address) for _, address in keys)
