"""Gateway configuration: typed, frozen, validated once at start-up and compiled into a poll plan.

Layer: gateway core. `load_config(path)` parses the YAML (with GRIDEDGE_<SECTION>__<KEY> overrides),
then `compile_plan` runs the checks a schema cannot express: duplicate device ids, duplicate addresses
on a bus, ports that do not exist, and the airtime budget (the wire time of one cycle of every device's
polls at the bus's baud rate against the configured intervals). Every error names file, line and field.
A config file holding a secret inline, or a secret file it names, that every local user can read is
refused (`secret_problems`: the fix is `chmod 600 FILE`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from protocols import config as conventions
from protocols import signing
from protocols.config import Frozen, Locator
from protocols.config import secret_problems as shared_secret_problems
from protocols.errors import ConfigError
from protocols.messages import check_id

from .drivers.registry import DeviceConfig, driver_class
from .line import LineSettings
from .transport import tcp_address


class GatewaySection(Frozen):
    id: str
    site: str = ""
    state_dir: Path = Path("/var/lib/gridedge")
    status_interval_s: float = Field(default=60.0, gt=0)
    require_ntp: bool = Field(default=True, description="correct meter clocks only from an NTP-synced clock")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        check_id("$.gw", value)
        return value


class SpoolSection(Frozen):
    path: Path = Path("/var/lib/gridedge/spool.sqlite3")
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    fsync: Literal["always", "normal", "off"] = "always"


class TlsSection(Frozen):
    ca_file: Path | None = Field(default=None, description="CA bundle; default: the system's")
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(default=False, description="skip hostname verification (testing only)")


class MqttSection(Frozen):
    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = Field(default="", description="default gridedge-<gateway id>; must be stable")
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    password_file: Path | None = Field(default=None, description="read the password from this file")
    tls: TlsSection | None = None
    qos: Literal[0, 1] = 1
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(default=7 * 86400, ge=0, description="broker keeps our session this long")
    max_inflight: int = Field(default=32, ge=1, le=1000, description="unacknowledged publishes at once")
    batch_samples: int = Field(default=100, ge=1, le=1000, description="samples per replay message")
    publish_timeout_s: float = Field(default=20.0, gt=0)
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)

    def identifier(self, gateway_id: str) -> str:
        return self.client_id or f"gridedge-{gateway_id}"

    def secret(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text().strip()
        return self.password


class CommandsSection(Frozen):
    """Who may command this gateway: HMAC keys (shared secrets: whoever holds one can sign) and
    Ed25519 public keys (operators sign with the private key; a public key signs nothing)."""

    enabled: bool = True
    hmac: bool = Field(default=True, description="accept HMAC-signed commands (false: Ed25519 only)")
    key: str | None = Field(default=None, repr=False, description="HMAC key; prefer key_file or the env var")
    key_file: Path | None = Field(default=None, description="one key per line (several during a rotation)")
    public_keys: list[str] = Field(
        default=[], description="Ed25519 keys, 'ed25519 BASE64 [label]' (gridedge keys generate prints one)"
    )
    public_keys_file: Path | None = Field(default=None, description="Ed25519 public keys, one per line")

    @field_validator("public_keys")
    @classmethod
    def _public_keys(cls, value: list[str]) -> list[str]:
        for index, line in enumerate(value):
            signing.parse_public_key(line, f"public_keys[{index}]")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CommandsSection:
        if not self.hmac and (self.key or self.key_file):
            # a key that verifies HMAC also signs: an Ed25519-only gateway must not hold one
            raise ValueError("hmac is false: remove key / key_file (an HMAC key on a gateway can sign)")
        # an unreadable or bad public_keys_file, or a key listed twice: found at start-up
        signing.Keyring(public_keys=self._public())
        return self

    def _public(self) -> tuple[signing.PublicKey, ...]:
        public = [signing.parse_public_key(line, "public_keys") for line in self.public_keys]
        if self.public_keys_file is not None:
            try:
                text = self.public_keys_file.read_text()
            except OSError as exc:
                raise ValueError(
                    f"public_keys_file: cannot read {self.public_keys_file}: {exc.strerror}"
                ) from None
            public += signing.parse_public_keys(text, str(self.public_keys_file))
        return tuple(public)

    def keys(self) -> signing.Keyring:
        """The accepted keys (never logged). None: every command is refused."""
        if not self.enabled:
            return signing.Keyring()
        hmac_keys = [self.key] if self.key and self.hmac else []
        if self.key_file is not None and self.hmac:
            hmac_keys += [line.strip() for line in self.key_file.read_text().splitlines() if line.strip()]
        return signing.Keyring(tuple(k.encode() for k in hmac_keys), self._public())


class UpdateSection(Frozen):
    """Signed software updates (gateway.update): where releases live and how long a trial may take."""

    enabled: bool = True
    root: Path = Field(default=Path("/opt/gridedge"), description="releases/<version>/venv, current")
    trial_s: float = Field(default=120.0, gt=0, le=3600, description="connect + a poll on every bus")
    share_site_packages: bool = Field(
        default=False, description="development and tests only: new venvs reuse this one's packages"
    )


class BusConfig(Frozen):
    name: str
    port: str = Field(description="/dev/ttyUSB0, /dev/serial/by-id/..., or socket://HOST:PORT")
    baud: int = Field(default=2400, ge=0, le=921600, description="0 for Modbus TCP (no serial line)")
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1
    echo: bool = False  # the adapter reads back what it sends (2-wire RS-485 without echo cancel)
    gap_ms: float | None = Field(default=None, ge=0, le=1000, description="quiet time between requests")
    max_utilisation: float = Field(default=0.8, gt=0, le=1.0)
    devices: list[DeviceConfig]

    @property
    def line(self) -> LineSettings:
        return LineSettings(self.baud, self.bytesize, self.parity, self.stopbits)


class GatewayConfig(Frozen):
    gateway: GatewaySection
    mqtt: MqttSection = MqttSection()
    spool: SpoolSection = SpoolSection()
    commands: CommandsSection = CommandsSection()
    update: UpdateSection = UpdateSection()
    buses: list[BusConfig]


@dataclass(frozen=True)
class BusBudget:
    bus: str
    line: str
    devices: int
    cycle_airtime_s: float  # one poll of every device, back to back
    utilisation: float  # sum over devices of airtime / interval
    limit: float

    @property
    def over(self) -> bool:
        return self.utilisation > self.limit


@dataclass(frozen=True)
class Plan:
    config: GatewayConfig
    budgets: list[BusBudget]


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Plan:
    """Read, validate and compile `path`; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    env = os.environ if environ is None else environ
    cfg = conventions.load(GatewayConfig, text, source=str(path), environ=env)
    if problems := secret_problems(path, text, cfg):
        raise ConfigError(problems)
    return compile_plan(cfg, Locator(text, str(path)))


# ---- secrets on disk (the rule is protocols.config.secret_problems; here: which fields hold them) -

_INLINE_SECRETS: tuple[tuple[str, str], ...] = (("mqtt", "password"), ("commands", "key"))


def secret_problems(path: Path, text: str, cfg: GatewayConfig) -> list[str]:
    """Refuse secrets that every local user can read: a config file holding a secret inline, or a
    secret file it names, with the world-read bit set. A named secret file that cannot be read is an
    error too (found now rather than at the first connection or command)."""
    files = {
        "mqtt.password_file": cfg.mqtt.password_file,
        "mqtt.tls.key_file": cfg.mqtt.tls.key_file if cfg.mqtt.tls else None,
        "commands.key_file": cfg.commands.key_file,
    }
    return shared_secret_problems(path, text, _INLINE_SECRETS, files)


def compile_plan(cfg: GatewayConfig, where: Locator, *, check_ports: bool = True) -> Plan:
    problems: list[str] = []
    seen_ids: dict[str, tuple[object, ...]] = {}
    seen_ports: dict[str, int] = {}
    budgets = []
    for b, bus in enumerate(cfg.buses):
        loc: tuple[object, ...] = ("buses", b)
        if bus.port in seen_ports:
            problems.append(
                f"{where((*loc, 'port'))}: port {bus.port} is already used by bus {seen_ports[bus.port]}"
            )
        seen_ports[bus.port] = b
        if check_ports and (why := _port_problem(bus.port)):
            problems.append(f"{where((*loc, 'port'))}: {why}")
        problems += _check_devices(bus, loc, where, seen_ids)
        budget, unplannable = _budget(bus, loc, where)
        problems += unplannable
        budgets.append(budget)
        if budget.over:
            problems.append(
                f"{where((*loc, 'devices'))}: bus {bus.name} is over capacity: the polls need "
                f"{budget.utilisation:.0%} of the line at {bus.line.describe()} (limit {budget.limit:.0%}); "
                "lengthen intervals, raise the baud rate or split the bus"
            )
    if problems:
        raise ConfigError(problems)
    return Plan(cfg, budgets)


def _check_devices(
    bus: BusConfig, loc: tuple[object, ...], where: Locator, seen_ids: dict[str, tuple[object, ...]]
) -> list[str]:
    problems = []
    addresses: dict[tuple[str, object], str] = {}
    for d, dev in enumerate(bus.devices):
        dloc = (*loc, "devices", d)
        try:
            check_id("$.dev", dev.id)
        except Exception as exc:
            problems.append(f"{where((*dloc, 'id'))}: {exc}")
        if dev.id in seen_ids:
            problems.append(f"{where((*dloc, 'id'))}: device id {dev.id!r} is used twice")
        seen_ids[dev.id] = dloc
        for key in dev.bus_addresses():
            if key in addresses:
                other = addresses[key]
                problems.append(
                    f"{where(dloc)}: {key[0]} address {key[1]} on bus {bus.name} is used by {other}"
                )
            addresses[key] = dev.id
    return problems


def _budget(bus: BusConfig, loc: tuple[object, ...], where: Locator) -> tuple[BusBudget, list[str]]:
    """The bus's airtime budget, and the problems of devices whose poll cannot even be planned (an
    unknown register map or point, a device kind whose driver is missing)."""
    line = bus.line
    cycle = 0.0
    utilisation = 0.0
    problems = []
    enabled = [(d, dev) for d, dev in enumerate(bus.devices) if dev.enabled]
    for d, dev in enabled:
        try:
            cls = driver_class(dev.kind)
            airtime = cls.poll_airtime_s(dev, line) + cls.line_gap_s(line)
        except ConfigError as exc:
            problems += [f"{where((*loc, 'devices', d))}: device {dev.id}: {p}" for p in exc.problems]
            continue
        except ImportError as exc:
            problems.append(
                f"{where((*loc, 'devices', d))}: device {dev.id}: {dev.kind} driver missing: {exc}"
            )
            continue
        cycle += airtime
        utilisation += airtime / dev.interval_s
    budget = BusBudget(bus.name, line.describe(), len(enabled), cycle, utilisation, bus.max_utilisation)
    return budget, problems


def _port_problem(port: str) -> str:
    try:
        if tcp_address(port) is not None:
            return ""
    except ValueError as exc:
        return str(exc)
    if not os.path.exists(port):
        return (
            f"serial port {port} does not exist (is the USB adapter plugged in? see `ls /dev/serial/by-id/`)"
        )
    if not os.access(port, os.R_OK | os.W_OK):
        return f"no permission to open {port}: add the service user to the 'dialout' group"
    return ""
