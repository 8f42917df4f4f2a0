"""`gridedge commission`: scan a line with device templates and write (or extend) the gateway config.

    gridedge commission --port PORT --template dlt645-1p-prepaid --addresses 000000000001-000000000032 \
        --write /etc/gridedge/gateway.yaml --gateway-id gw-t01 --mqtt-host mqtt.example.net
    gridedge commission --port PORT --template modbus-gridedge-prepaid --append /etc/gridedge/gateway.yaml

Layer: gateway commissioning. Scans with each kind's own `scan` (the one `gridedge scan` runs), proposes
each find through its template (validated by the kind's config model), checks the whole result as
`gridedge gateway check` does (`load_config`: schema, ports, duplicate addresses, airtime budget) and
only then replaces the file, atomically. With `--append` a device already on the bus (same bus
address) is left alone: re-running it on a line with one new meter adds only that meter. Must not:
write a config that `gateway check` refuses, or change anything in an existing file but the new entries.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from protocols import config as conventions
from protocols.errors import ConfigError, ProtocolError

from ..bus import Bus
from ..config import BusConfig, GatewayConfig, Plan, load_config
from ..errors import GatewayError
from ..line import LineSettings
from . import configtext, provision
from .common import check_port, one_line, protocol_module, protocols
from .provision import Finding, Outcome
from .templates import Template, load_template, shipped


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "commission", help="scan a line with device templates and write or extend the gateway config"
    )
    p.add_argument("--port", required=True, help="/dev/ttyUSB0, /dev/serial/by-id/..., socket://HOST:PORT")
    p.add_argument(
        "--template",
        required=True,
        action="append",
        help=f"a template file or a shipped one ({', '.join(shipped())}); one per kind, repeatable",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--write", metavar="FILE", help="write a new config with one bus (FILE must not exist)")
    out.add_argument("--append", metavar="FILE", help="add the devices not yet configured to this config")
    p.add_argument("--bus", help="bus name (default: the bus with this port, or one named after the port)")
    p.add_argument("--baud", type=int, default=None, help="default: the bus's, else the template's")
    p.add_argument("--parity", choices=("N", "E", "O"), default=None)
    p.add_argument("--stopbits", type=int, choices=(1, 2), default=None)
    p.add_argument("--echo", action="store_true", help="the adapter echoes what it sends")
    g = p.add_argument_group("a new config (--write)")
    g.add_argument("--gateway-id", help="the gateway's id (in every MQTT topic)")
    g.add_argument("--mqtt-host", default="localhost")
    g.add_argument("--mqtt-port", type=int, default=1883)
    g.add_argument(
        "--state-dir", default="/var/lib/gridedge", help="spool and state (default /var/lib/gridedge)"
    )
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    for name in protocols():
        protocol_module(name).add_scan_arguments(p)
    defaults = {a.dest: a.default for a in p._actions}
    p.set_defaults(handler=lambda args: run(args, defaults))


def run(args: argparse.Namespace, defaults: Mapping[str, Any]) -> int:
    try:
        check_port(args.port)
        job = Job.prepare(args)
        findings = asyncio.run(job.scan(args, defaults))
        return job.finish(findings)
    except (GatewayError, ProtocolError, ValueError) as exc:  # ConfigError is a ProtocolError
        problems = exc.problems if isinstance(exc, ConfigError) else [one_line(exc)]
        if args.json:
            print(json.dumps({"ok": False, "error": "; ".join(problems), "error_type": type(exc).__name__}))
        else:
            print(f"gridedge commission: {type(exc).__name__}:", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1


class Job:
    """One run: the templates, the config it extends (if any), the line, and what to write."""

    def __init__(self, args: argparse.Namespace, templates: list[Template]) -> None:
        self.args = args
        self.templates = templates
        self.target = Path(args.write or args.append) if (args.write or args.append) else None
        self.text = Path(args.append).read_text() if args.append else ""
        self.cfg = conventions.load(GatewayConfig, self.text, source=args.append) if args.append else None
        self.bus_index = self._bus_index()
        self.line = self._line()
        self.when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> Job:
        templates = [load_template(name) for name in args.template]
        kinds = [t.kind for t in templates]
        if len(set(kinds)) != len(kinds):
            raise ConfigError(
                ["--template: one template per device kind and line (each kind is scanned once)"]
            )
        if args.write and Path(args.write).exists():
            raise ConfigError(
                [f"--write {args.write}: the file exists; use --append {args.write} to add to it"]
            )
        if args.write and not args.gateway_id:
            raise ConfigError(["--write needs --gateway-id (the gateway's id in every MQTT topic)"])
        return cls(args, templates)

    @property
    def bus(self) -> BusConfig | None:
        return None if self.cfg is None or self.bus_index is None else self.cfg.buses[self.bus_index]

    def _bus_index(self) -> int | None:
        if self.cfg is None:
            return None
        for i, bus in enumerate(self.cfg.buses):
            if bus.name == self.args.bus or (self.args.bus is None and _same_port(bus.port, self.args.port)):
                if not _same_port(bus.port, self.args.port):
                    raise ConfigError(
                        [f"--bus {bus.name}: that bus is on {bus.port}, not on {self.args.port}"]
                    )
                return i
        return None

    def _line(self) -> LineSettings:
        """The flags over the bus's settings (appending to a bus) or the templates' (all must agree)."""
        if self.bus is not None:
            base = self.bus.line
        else:
            lines = {t.line() for t in self.templates}
            if len(lines) > 1 and not (self.args.baud and self.args.parity):
                names = ", ".join(f"{t.name} {t.line().describe()}" for t in self.templates)
                raise ConfigError(
                    [f"--template: the templates' line settings differ ({names}): give --baud and --parity"]
                )
            base = self.templates[0].line()
        a = self.args
        return LineSettings(
            a.baud or base.baud, base.bytesize, a.parity or base.parity, a.stopbits or base.stopbits
        )

    async def scan(self, args: argparse.Namespace, defaults: Mapping[str, Any]) -> list[Finding]:
        from rich.progress import Progress

        findings: list[Finding] = []
        async with Bus("commission", args.port, self.line, echo=args.echo, reconnect_min_s=0.2) as bus:
            if not await bus.wait_connected(5):
                raise GatewayError(f"cannot open {args.port}")
            with Progress(transient=True, disable=args.json or not sys.stderr.isatty()) as bar:
                for template in self.templates:
                    task = bar.add_task(template.name, total=None)

                    def progress(done: int, total: int, label: str, task: Any = task) -> None:
                        bar.update(task, completed=done, total=total, description=label)

                    scan_args = provision.scan_args(args, template, defaults)
                    findings += await provision.scan(bus, template, scan_args, progress)
        return findings

    def finish(self, findings: list[Finding]) -> int:
        existing = self.bus.devices if self.bus is not None else []
        ids = [d.id for b in self.cfg.buses for d in b.devices] if self.cfg is not None else []
        outcomes = provision.compare(findings, {t.kind for t in self.templates}, existing, ids)
        entries = [configtext.Entry(o.entry, self._comment(o)) for o in outcomes if o.entry is not None]
        if not entries:
            self._report(outcomes, None, None)
            return 0 if self.args.append or self.target is None else 1
        text = self._text(entries)
        if self.target is None:  # neither --write nor --append: show what would be written
            plan = check_text(
                text, Path(tempfile.gettempdir()) / "proposed-gateway.yaml", None, replace=False
            )
            self._report(outcomes, plan, text)
            return 0
        plan = check_text(
            text, self.target, Path(self.args.append) if self.args.append else None, replace=True
        )
        self._report(outcomes, plan, None)
        return 0

    def _comment(self, row: Outcome) -> str:
        return f"{row.device}: found {self.when} by template {row.template}: {row.answer}"

    def _text(self, entries: list[configtext.Entry]) -> str:
        names = ", ".join(t.name for t in self.templates)
        scanned = f"{self.args.port} scanned at {self.line.describe()} ({names})"
        bus_comment = f"gridedge commission {self.when}: {scanned}"
        if self.args.append:
            return configtext.append(self.text, self.bus_index, self._new_bus(), entries, bus_comment)
        state = Path(self.args.state_dir)
        sections = {
            "gateway": {"id": self.args.gateway_id, "state_dir": str(state)},
            "mqtt": {"host": self.args.mqtt_host, "port": self.args.mqtt_port},
            "spool": {"path": str(state / "spool.sqlite3")},
        }
        header = [
            f"Written by `gridedge commission` on {self.when}: {scanned}.",
            "Add the broker's credentials (mqtt: username, password_file) and the command keys",
            "(commands: key_file) before installing it, then check it again:",
            f"    gridedge gateway check -c {self.target or 'FILE'}",
        ]
        return configtext.new_config(sections, self._new_bus(), entries, header, bus_comment)

    def _new_bus(self) -> dict[str, Any]:
        name = (
            self.args.bus or re.sub(r"[^A-Za-z0-9_-]+", "-", Path(self.args.port).name).strip("-") or "line-1"
        )
        bus: dict[str, Any] = {"name": name, "port": self.args.port, "baud": self.line.baud}
        bus |= {"bytesize": self.line.bytesize, "parity": self.line.parity, "stopbits": self.line.stopbits}
        return bus | ({"echo": True} if self.args.echo else {})

    def _report(self, outcomes: Sequence[Outcome], plan: Plan | None, text: str | None) -> None:
        added = sum(o.result == "added" for o in outcomes)
        written = str(self.target) if plan is not None and self.target is not None else None
        if self.args.json:
            rows = [{k: v for k, v in asdict(o).items() if k != "entry"} for o in outcomes]
            print(
                json.dumps({"ok": True, "written": written, "added": added, "devices": rows, "config": text})
            )
            return
        _print_outcomes(outcomes, f"{self.args.port} at {self.line.describe()}: {added} device(s) to add")
        if plan is not None:
            from ..cli import print_budget

            print_budget(plan)
        if text is not None:
            print(text)
        print(f"written: {written}" if written else "nothing written")


def check_text(text: str, target: Path, like: Path | None, *, replace: bool) -> Plan:
    """`gateway check` on `text` as if it were `target` (written beside it first, so ports, secret
    files and their modes are checked as they will be), then, if `replace`, atomically in place.
    Problems name `target`, not the temporary file. `like`: the file whose mode the result keeps."""
    directory = target.parent if replace else Path(tempfile.gettempdir())
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".commission", dir=directory)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        mode = like.stat().st_mode & 0o777 if like is not None else 0o644 & ~_umask()
        os.chmod(tmp, mode)
        try:
            plan = load_config(tmp)
        except ConfigError as exc:
            raise ConfigError([p.replace(str(tmp), str(target)) for p in exc.problems]) from None
        if replace:
            os.replace(tmp, target)
        return plan
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _same_port(a: str, b: str) -> bool:
    return a == b or os.path.realpath(a) == os.path.realpath(b)


def _print_outcomes(rows: Sequence[Outcome], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("device", "kind", "address", "template", "answered", "result"):
        table.add_column(col)
    for o in rows:
        table.add_row(o.device, o.kind, o.addresses, o.template, o.answer, o.result)
    Console().print(table)
