"""Signed remote commands: verify, refuse with a reason, or run on the device's bus ahead of polls.

Layer: gateway core. A command arrives on `gridedge/v1/{gw}/{dev}/cmd` (QoS 1, persistent session, so
one sent while the gateway was offline is delivered later, and its expiry decides). Checks, in order,
each with its own reason in the `rejected` result and an audit log line (never the key):
malformed payload -> signature (protocols.signing.Keyring: the command's `alg` picks the kind of key,
HMAC-SHA256 with a configured shared key or Ed25519 with the configured public key its `kid` names;
an algorithm this gateway has no key for, an unknown kid, an unsigned or a bad signature each have
their own reason; during a rotation several keys of a kind are valid; the audit line names the key
that matched by its id, never the key itself) -> topic and
payload name this gateway and a configured device -> not expired (and not issued in the future) ->
nonce not seen before (remembered on disk until the command's expiry, so a restart cannot replay) ->
action and params valid for the device kind (or, for the reserved device `gateway`, one of the
gateway-wide actions it was given: `config_apply`, see gateway.remote_config, which answers its
commands itself). Only then is the command `accepted`, executed through the driver (its
transactions go on the bus at command priority, before routine polls) and answered
`done` or `failed` with the device's answer and the state read back.

Must not: log the key or the signature; touch the bus for a command that failed any check.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from protocols import messages as m
from protocols import topics
from protocols.errors import ContractError
from protocols.signing import Keyring, SignatureRefused, hmac_key_id

from .drivers.base import CommandRejected, Driver
from .errors import GatewayError

audit = logging.getLogger("gateway.audit")

MAX_FUTURE_SKEW_MS: Final = 5 * 60 * 1000  # issued_at may be this far ahead of our clock
MAX_LIFETIME_MS: Final = 24 * 3600 * 1000  # a command may not stay valid longer than this
# the device id of commands to the gateway itself: gridedge/v1/{gw}/gateway/cmd (a device configured
# under this id would be shadowed: gateway.remote_config refuses such a config)
GATEWAY_DEV: Final = "gateway"


def key_id(key: bytes) -> str:
    """A short public fingerprint of an HMAC command key for logs (protocols.signing.hmac_key_id)."""
    return hmac_key_id(key)


# (topic, device, build(seq) -> result): results go through the spool, which assigns the gateway's seq
Publish = Callable[[str, str, Callable[[int], m.CommandResult]], Awaitable[None]]


class Reply(Protocol):
    """Answers one verified command (its result is spooled like every command result)."""

    async def __call__(
        self,
        status: m.CommandStatus,
        *,
        reason: str = "",
        answer: dict[str, Any] | None = None,
        state: dict[str, m.Scalar | None] | None = None,
    ) -> None: ...


# a gateway-wide action: runs with the command once every check passed, and answers it with reply
GatewayAction = Callable[[m.Command, Reply], Awaitable[None]]


class NonceStore:
    """Nonces seen, kept until their command expires (SQLite next to the spool; survives restarts)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS nonce (nonce TEXT PRIMARY KEY, expires_at INTEGER)")

    def remember(self, nonce: str, expires_at: int, now_ms: int) -> bool:
        """True if the nonce is new (and is now remembered); False for a replay."""
        self._db.execute("DELETE FROM nonce WHERE expires_at < ?", (now_ms,))
        try:
            self._db.execute("INSERT INTO nonce VALUES (?, ?)", (nonce, expires_at))
        except sqlite3.IntegrityError:
            return False
        return True

    def close(self) -> None:
        self._db.close()


@dataclass
class CommandStats:
    received: int = 0
    rejected: int = 0
    done: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class CommandHandler:
    def __init__(
        self,
        gateway_id: str,
        keys: Keyring,
        drivers: Mapping[str, Driver],
        nonces: NonceStore,
        publish: Publish,
        *,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        gateway_actions: Mapping[str, GatewayAction] | None = None,
    ) -> None:
        self.gw = gateway_id
        self.gateway_actions = gateway_actions or {}
        self.keys = keys
        self.drivers = drivers
        self.nonces = nonces
        self.publish = publish
        self.clock_ms = clock_ms
        self.stats = CommandStats()

    async def handle(self, topic: str, payload: bytes) -> None:
        self.stats.received += 1
        try:
            command, driver, key = self._check(topic, payload)
        except _Refused as refused:
            await self._reject(topic, refused)
            return
        audit.warning(
            "command %s %s/%s %s: %s (signed with key %s)",
            command.id,
            command.gw,
            command.dev,
            command.action,
            "accepted" if driver is not None else "verified",
            key,
        )
        if driver is None:  # a gateway-wide action: it answers (accepted, then its outcome) itself
            await self._gateway_action(command)
            return
        await self._result(command, "accepted")
        try:
            outcome = await driver.execute(command.action, command.params)
        except CommandRejected as exc:  # params the device refused before touching the line
            await self._result(command, "rejected", reason=str(exc))
            return
        except GatewayError as exc:
            self.stats.failed += 1
            audit.warning("command %s: failed: %s", command.id, exc)
            await self._result(command, "failed", reason=str(exc))
            return
        status: m.CommandStatus = "done" if outcome.status == "done" else "failed"
        setattr(self.stats, status, getattr(self.stats, status) + 1)
        audit.warning(
            "command %s %s/%s %s: %s %s",
            command.id,
            command.gw,
            command.dev,
            command.action,
            status,
            outcome.reason,
        )
        await self._result(
            command, status, reason=outcome.reason, answer=dict(outcome.answer), state=dict(outcome.state)
        )

    async def _gateway_action(self, command: m.Command) -> None:
        async def reply(
            status: m.CommandStatus,
            *,
            reason: str = "",
            answer: dict[str, Any] | None = None,
            state: dict[str, m.Scalar | None] | None = None,
        ) -> None:
            if status != "accepted":
                setattr(self.stats, status, getattr(self.stats, status) + 1)
            audit.warning(
                "command %s %s/%s %s: %s %s", command.id, self.gw, GATEWAY_DEV, command.action, status, reason
            )
            await self._result(command, status, reason=reason, answer=answer or {}, state=state or {})

        await self.gateway_actions[command.action](command, reply)

    # ---- checks -----------------------------------------------------------------------------------

    def _check(self, topic: str, payload: bytes) -> tuple[m.Command, Driver | None, str]:
        """The command, its driver (None: a gateway-wide action) and the id of the key that signed it;
        or _Refused."""
        try:
            raw = json.loads(payload)
        except ValueError:
            raise _Refused("malformed", "not valid JSON", {}) from None
        if not isinstance(raw, dict):
            raise _Refused("malformed", "a command is a JSON object", {})
        if not self.keys:
            raise _Refused("no_key", "this gateway has no command key configured: commands are disabled", raw)
        try:
            key = self.keys.verify(raw)
        except SignatureRefused as exc:
            raise _Refused(exc.code, exc.reason, raw) from None
        try:
            command = m.decode(m.Command, payload)
        except ContractError as exc:
            raise _Refused("malformed", str(exc), raw) from None
        where = topics.parse_topic(topic)
        if command.gw != self.gw or where.gw != self.gw:
            raise _Refused("wrong_gateway", f"command for gateway {command.gw!r}, this is {self.gw!r}", raw)
        if command.dev != where.dev:
            raise _Refused(
                "wrong_device", f"payload device {command.dev!r} != topic device {where.dev!r}", raw
            )
        driver = self.drivers.get(command.dev)
        if driver is None and command.dev != GATEWAY_DEV:
            raise _Refused("wrong_device", f"device {command.dev!r} is not configured on this gateway", raw)
        now = self.clock_ms()
        if command.expires_at <= now:
            raise _Refused("expired", f"expired {(now - command.expires_at) / 1000:.0f} s ago", raw)
        if command.issued_at > now + MAX_FUTURE_SKEW_MS:
            raise _Refused("not_yet_valid", "issued in the future (check the sender's clock)", raw)
        if command.expires_at - command.issued_at > MAX_LIFETIME_MS:
            raise _Refused("too_long", "valid for more than 24 h: refused", raw)
        if not self.nonces.remember(command.nonce, command.expires_at, now):
            raise _Refused("replayed", f"nonce {command.nonce!r} was already used", raw)
        if driver is None:
            if command.action not in self.gateway_actions:
                offered = ", ".join(sorted(self.gateway_actions)) or "none"
                reason = f"the gateway has no action {command.action!r} (it offers: {offered})"
                raise _Refused("unsupported", reason, raw)
            return command, None, key
        try:
            driver.check_command(command.action, command.params)
        except CommandRejected as exc:
            raise _Refused("unsupported", str(exc), raw) from None
        return command, driver, key

    async def _reject(self, topic: str, refused: _Refused) -> None:
        self.stats.rejected += 1
        self.stats.reasons[refused.code] = self.stats.reasons.get(refused.code, 0) + 1
        raw = refused.raw
        cmd_id = str(raw.get("id", ""))[:64]
        audit.warning(
            "command %s on %s: rejected (%s): %s", cmd_id or "?", topic, refused.code, refused.reason
        )
        try:
            where = topics.parse_topic(topic)
        except ContractError:
            return
        if where.gw != self.gw:
            return
        await self._publish(where.dev, cmd_id, "rejected", reason=f"{refused.code}: {refused.reason}")

    async def _result(self, command: m.Command, status: m.CommandStatus, **fields: Any) -> None:
        await self._publish(command.dev, command.id, status, **fields)

    async def _publish(self, dev: str, cmd_id: str, status: m.CommandStatus, **fields: Any) -> None:
        ts = self.clock_ms()

        def build(seq: int) -> m.CommandResult:
            return m.CommandResult(
                schema=m.SCHEMA_VERSION,
                gw=self.gw,
                dev=dev,
                seq=seq,
                ts=ts,
                id=cmd_id,
                status=status,
                **fields,
            )

        await self.publish(topics.cmd_result_topic(self.gw, dev), dev, build)


class _Refused(Exception):
    def __init__(self, code: str, reason: str, raw: Mapping[str, Any]) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.raw = raw
