"""Automatic trip / reconnect (远程费控 policy): `arrears` firing -> a signed `trip` of the account's meter;
`arrears` resolved (a payment cleared it, the reconnection clock runs) -> a signed `allow_close` (or
`close`). Off by default (`alerts.autocontrol.enabled`).

Layer: ingest alert policy (synchronous, no network, no wall clock: `now` is given). It decides and
queues what to publish in `outbox` and what to write in `lines` (InfluxDB measurement `autocontrol`);
the role publishes and writes them. It is the engine's `Control` (ingest/alerts/engine.py), its one way
in: the engine hands it every inbound message (an operator's `approve/{id}` / `reject/{id}`, decoded by
`decode_decision`, is its own), every evaluation's alert changes and every tick, and commits its
pending actions (`snapshot()` / `restore()`) with the alerts. Must not: publish, sleep, log the command
key, or command a keep-power account.

Every action goes through, in order (each outcome is one audit record: a structured log line on
`ingest.alerts.autocontrol`, a point in `autocontrol`, and a JSON message on `AUDIT_TOPIC`):
1. keep-power (the ledger's flag now, else the alert's label) -> `keep_power`, dropped;
2. approval (trips when `approval`) -> `awaiting_approval`: retained on `pending/{id}` until an operator
   publishes to `approve/{id}` (-> `approved`) or `reject/{id}` (-> `rejected`, dropped);
3. outside `hours` / `weekdays` / on a holiday -> `outside_hours`, kept and retried on every tick;
4. more than `max_per_minute` / `max_per_hour` commands sent -> `rate_limited`, kept and retried;
5. `sent`: the command (protocols.messages.Command, signed with protocols.signing) on
   `gridedge/v1/{gw}/{dev}/cmd`. Its `.../cmd/result` messages are audited as `result`.
A waiting trip is dropped as `superseded` when arrears resolves first; any waiting action is dropped
as `expired` after `defer_max_s`. Topics are under `gridedge/v1/alerts/autocontrol/`.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from protocols import messages as m
from protocols import operations as ops
from protocols import topics
from protocols.signing import KeyFormatError, Signer, new_command

from ..lineproto import point
from .config import WEEKDAYS, AutoControlSection, parse_hours
from .costcontrol.ledger import Account, Ledger
from .engine import Change
from .model import Inbound, Rule

__all__ = ["AUDIT_TOPIC", "PREFIX", "AutoControl", "Outgoing", "decode_decision", "ledger_of", "load_key"]

log = logging.getLogger("ingest.alerts.autocontrol")

PREFIX: Final = f"{topics.PREFIX}/alerts/autocontrol"
AUDIT_TOPIC: Final = f"{PREFIX}/audit"
APPROVE: Final = f"{PREFIX}/approve/"
REJECT: Final = f"{PREFIX}/reject/"
PENDING: Final = f"{PREFIX}/pending/"
FILTERS: Final = (f"{APPROVE}+", f"{REJECT}+", topics.gateway_filter(topics.TopicKind.CMD_RESULT))
COMMANDS_KEPT: Final = 1000  # command id -> action, for auditing results


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    retain: bool = False


@dataclass(slots=True)
class Action:
    id: str
    action: str  # trip | allow_close | close
    account: str
    gw: str
    dev: str
    created_at: float
    keep_power: bool = False  # the alert's label, when the ledger does not know the account
    approved: bool | None = None  # None: not needed (or not yet given)
    needs_approval: bool = False
    last: str = ""  # last audited decision, so a retry is audited only when it changes


@runtime_checkable
class KeepsLedger(Protocol):
    """A rule that keeps the cost-control ledger (ingest/alerts/costcontrol/rule.py): keep-power and
    the meter of an account are read from it."""

    ledger: Ledger


def ledger_of(rules: Sequence[Rule]) -> Callable[[str], Account | None]:
    """The account lookup of the cost-control ledger among `rules` (none without cost control)."""
    for rule in rules:
        if isinstance(rule, KeepsLedger) and isinstance(rule.ledger, Ledger):
            return rule.ledger.account
    return lambda _: None


def decode_decision(topic: str, payload: bytes) -> Inbound:
    """An operator's `approve/{id}` or `reject/{id}` (payload: empty or a JSON object, optionally
    {"by": "..."}) as the engine sees it; ValueError naming the topic for anything else."""
    if not topic.startswith((APPROVE, REJECT)):
        raise ValueError(f"{topic}: not an autocontrol decision topic")
    try:
        data = json.loads(payload) if payload.strip() else {}
    except ValueError as exc:
        raise ValueError(f"{topic}: payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{topic}: payload must be a JSON object")
    return Inbound(topic, "", "", data)


def load_key(cfg: AutoControlSection, base: Path, environ: Mapping[str, str] | None = None) -> bytes | Signer:
    """The signing key: the Ed25519 `private_key_file`, else the HMAC key from the first line of
    `key_file`, else `$key_env`. ValueError without one, or for a key file others can read."""
    if cfg.private_key_file is not None:
        path = cfg.private_key_file if cfg.private_key_file.is_absolute() else base / cfg.private_key_file
        try:
            if path.stat().st_mode & 0o077:
                raise ValueError(
                    f"alerts.autocontrol.private_key_file: {path} is readable by others: chmod 600"
                )
            return Signer.from_bytes(path.read_bytes(), str(path))
        except OSError as exc:
            raise ValueError(
                f"alerts.autocontrol.private_key_file: cannot read {path}: {exc.strerror}"
            ) from None
        except KeyFormatError as exc:
            raise ValueError(f"alerts.autocontrol.private_key_file: {exc}") from None
    env = os.environ if environ is None else environ
    if cfg.key_file is not None:
        path = cfg.key_file if cfg.key_file.is_absolute() else base / cfg.key_file
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"alerts.autocontrol.key_file: cannot read {path}: {exc.strerror}") from None
    else:
        text = env.get(cfg.key_env, "").strip()
    if not text:
        raise ValueError(f"alerts.autocontrol is enabled but has no command key (key_file or ${cfg.key_env})")
    return text.splitlines()[0].encode()


class AutoControl:
    def __init__(
        self,
        cfg: AutoControlSection,
        key: bytes | Signer,
        *,
        account: Callable[[str], Account | None] = lambda _: None,
    ) -> None:
        self.cfg = cfg
        self._key = key
        self._account = account  # the cost-control ledger's current record of an account
        self._hours = parse_hours(cfg.hours)
        self.actions: dict[str, Action] = {}
        self.sent_at: list[float] = []  # send times within the last hour (rate limit)
        self.commands: dict[str, dict[str, Any]] = {}  # command id -> its action (described)
        self.last_gw: dict[str, str] = {}  # dev -> gateway it was last heard through
        self.outbox: list[Outgoing] = []
        self.lines: list[str] = []
        self.audit: list[dict[str, Any]] = []  # this process's records (tests, diagnostics)

    # ---- engine-facing (engine.Control) -------------------------------------------------------------

    def on_message(self, inbound: Inbound, now: float) -> bool:
        """Track where meters are heard, audit command results; True for an operator's decision."""
        msg = inbound.message
        if inbound.topic.startswith((APPROVE, REJECT)):
            by = msg.get("by", "") if isinstance(msg, Mapping) else ""
            self._decide(inbound.topic, str(by or ""), now)
            return True
        if isinstance(msg, m.Reading):
            self.last_gw[inbound.dev] = inbound.gw
        elif isinstance(msg, m.CommandResult) and msg.id in self.commands:
            sent = self.commands[msg.id]
            self._audit(now, str(sent["id"]), "result", described=sent, status=msg.status,
                        reason=msg.reason, command=msg.id)  # fmt: skip
        return False

    def on_tick(self, now: float) -> None:
        for act in list(self.actions.values()):
            self._attempt(act, now)

    def snapshot(self) -> dict[str, Any]:
        return {
            "actions": {k: asdict(a) for k, a in self.actions.items()},
            "sent_at": list(self.sent_at),
            "commands": dict(self.commands),
            "last_gw": dict(self.last_gw),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.actions = {k: Action(**v) for k, v in state.get("actions", {}).items()}
        self.sent_at = [float(t) for t in state.get("sent_at", [])]
        self.commands = dict(state.get("commands", {}))
        self.last_gw = dict(state.get("last_gw", {}))

    def on_changes(self, changes: Sequence[Change], now: float) -> None:
        """Alert changes from the engine: arrears firing -> trip, arrears resolved -> reconnect."""
        for change in changes:
            a = change.alert
            if a.rule != "arrears" or change.kind == "updated":
                continue
            labels = a.labels
            account = labels.get("account") or a.subject.removeprefix("account/")
            if change.kind == "firing":
                self._new(account, "trip", labels, now, self.cfg.approval)
            else:
                for act in [x for x in self.actions.values() if x.account == account and x.action == "trip"]:
                    self._drop(act, now, "superseded")
                self._new(account, self.cfg.reconnect_action, labels, now, self.cfg.approval_reconnect)

    # ---- role-facing --------------------------------------------------------------------------------

    def take(self) -> tuple[list[Outgoing], list[str]]:
        out, lines = self.outbox, self.lines
        self.outbox, self.lines = [], []
        return out, lines

    # ---- the pipeline -------------------------------------------------------------------------------

    def _decide(self, topic: str, by: str, now: float) -> None:
        """An operator's `approve/{id}` or `reject/{id}`."""
        action_id = topic.rsplit("/", 1)[-1]
        act = self.actions.get(action_id)
        if act is None or not act.needs_approval or act.approved is not None:
            log.warning("autocontrol: %s for unknown or decided action %s ignored", topic, action_id)
            return
        self._clear_pending(act)
        if topic.startswith(REJECT):
            self._drop(act, now, "rejected", by=by)
            return
        act.approved = True
        act.last = "approved"
        self._audit(now, act.id, "approved", by=by)
        self._attempt(act, now)

    def _new(self, account: str, action: str, labels: Mapping[str, str], now: float, approval: bool) -> None:
        acc = self._account(account)
        gw, dev = (acc.gw, acc.dev) if acc is not None else (labels.get("gw", ""), labels.get("dev", ""))
        gw = self.last_gw.get(dev) or gw  # where the meter was last heard, else the ledger / topology
        act = Action(
            id=uuid.uuid4().hex[:16], action=action, account=account, gw=gw, dev=dev, created_at=now,
            keep_power=labels.get("keep_power") == "true", needs_approval=approval,
        )  # fmt: skip
        self.actions[act.id] = act
        self._attempt(act, now)

    def _attempt(self, act: Action, now: float) -> None:
        acc = self._account(act.account)
        if (acc.keep_power if acc is not None else act.keep_power) or not act.gw or not act.dev:
            self._drop(act, now, "keep_power" if act.gw and act.dev else "no_meter")
            return
        if now - act.created_at > self.cfg.defer_max_s:
            self._drop(act, now, "expired")
            return
        if act.needs_approval and not act.approved:
            if act.last != "awaiting_approval":
                act.last = "awaiting_approval"
                self._audit(now, act.id, "awaiting_approval")
                pending = ops.AutoControlPending(
                    schema=m.SCHEMA_VERSION, ts=round(now * 1000), id=act.id, action=act.action,
                    account=act.account, gw=act.gw, dev=act.dev, created_ts=round(act.created_at * 1000),
                )  # fmt: skip
                self.outbox.append(Outgoing(PENDING + act.id, ops.encode_operation(pending), retain=True))
            return
        reason = "outside_hours" if not self._in_hours(now) else "rate_limited" if self._limited(now) else ""
        if reason:
            if act.last != reason:
                act.last = reason
                self._audit(now, act.id, reason)
            return
        self._send(act, now)

    def _send(self, act: Action, now: float) -> None:
        ttl_ms = round(self.cfg.command_ttl_s * 1000)
        now_ms = round(now * 1000)
        fields = new_command(act.gw, act.dev, act.action, {}, key=self._key, now_ms=now_ms, ttl_ms=ttl_ms)
        # published as signed, like `gridedge cmd`: re-encoding would drop the default `schema`,
        # which the signature covers; decoding it checks the contract shape
        body = json.dumps(fields, ensure_ascii=False).encode()
        command = m.decode(m.Command, body)
        self.outbox.append(Outgoing(topics.cmd_topic(act.gw, act.dev), body))
        self.sent_at.append(now)
        self.commands[command.id] = self._describe(act)
        while len(self.commands) > COMMANDS_KEPT:
            del self.commands[next(iter(self.commands))]
        del self.actions[act.id]
        self._audit(now, act.id, "sent", command=command.id, expires_at=command.expires_at, act=act)

    def _drop(self, act: Action, now: float, decision: str, **extra: Any) -> None:
        self.actions.pop(act.id, None)
        if act.needs_approval and act.approved is None and act.last == "awaiting_approval":
            self._clear_pending(act)
        self._audit(now, act.id, decision, act=act, **extra)

    def _clear_pending(self, act: Action) -> None:
        self.outbox.append(Outgoing(PENDING + act.id, b"", retain=True))

    def _in_hours(self, now: float) -> bool:
        local = datetime.fromtimestamp(now, UTC) + timedelta(seconds=self.cfg.utc_offset_s)
        if WEEKDAYS[local.weekday()] not in self.cfg.weekdays or local.date() in self.cfg.holidays:
            return False
        minute = local.hour * 60 + local.minute
        start, end = self._hours
        if start == end:
            return True
        return start <= minute < end if start < end else (minute >= start or minute < end)

    def _limited(self, now: float) -> bool:
        self.sent_at = [t for t in self.sent_at if t > now - 3600.0]
        minute = sum(1 for t in self.sent_at if t > now - 60.0)
        return minute >= self.cfg.max_per_minute or len(self.sent_at) >= self.cfg.max_per_hour

    # ---- audit --------------------------------------------------------------------------------------

    @staticmethod
    def _describe(act: Action) -> dict[str, Any]:
        return {"id": act.id, "action": act.action, "account": act.account, "gw": act.gw, "dev": act.dev,
                "created_at": act.created_at}  # fmt: skip

    def _audit(
        self,
        now: float,
        action_id: str,
        decision: str,
        act: Action | None = None,
        described: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        act = act or self.actions.get(action_id)
        record: dict[str, Any] = {"at": now, "decision": decision, "id": action_id}
        record |= self._describe(act) if act is not None else dict(described or {})
        record |= {k: v for k, v in extra.items() if v not in (None, "")}
        self.audit.append(record)
        log.info("autocontrol %s", json.dumps(record, sort_keys=True))
        self.outbox.append(Outgoing(AUDIT_TOPIC, ops.encode_operation(_audit_message(record))))
        # account is a tag so that decisions taken in the same millisecond stay separate points
        tags = {k: str(record[k]) for k in ("decision", "action", "account") if record.get(k)}
        fields = {k: str(v) for k, v in record.items() if k not in ("at", "created_at", *tags)}
        self.lines.append(point("autocontrol", tags, fields, round(now * 1000)))


def _audit_message(record: Mapping[str, Any]) -> ops.AutoControlAudit:
    """The audit record as the contract's model (times in ms, like everything gridedge publishes)."""
    created, expires = record.get("created_at"), record.get("expires_at")

    def text(key: str) -> str:
        return str(record.get(key) or "")

    return ops.AutoControlAudit(
        schema=m.SCHEMA_VERSION,
        ts=round(float(record["at"]) * 1000),
        decision=text("decision"),
        id=text("id"),
        action=text("action"),
        account=text("account"),
        gw=text("gw"),
        dev=text("dev"),
        created_ts=None if created is None else round(float(created) * 1000),
        by=text("by"),
        command=text("command"),
        expires_at=None if expires is None else int(expires),
        status=text("status"),
        reason=text("reason"),
    )
