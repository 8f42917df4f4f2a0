"""Remote cost control (远程费控): the prepaid balance ladder, reconnection after payment, meter-reported
balance against the computed one, and relay misoperation.

Layer: ingest alert rules. Pure apart from the ledger (a local SQLite file, synchronous, see
ledger.py): no network, no wall clock (time is the `now` given), no asyncio.

Rule ids and subjects:
- `balance_low` (account/{id}): computed available balance below the class's reminder threshold
  (severity info) or warning threshold (severity warning); superseded by `arrears`.
- `arrears` (account/{id}): computed balance < 0. Never from a meter display alone (domain.md): only
  the ledger's balance (opening + payments - collected energy x tariff) counts.
- `reconnect_overdue` (account/{id}): a payment lifted an account out of arrears and the meter's relay
  has not been read back closed within the deadline (sgcc 24 h, csg 12 h, or configured); a closed
  relay resolves it, the alert value is then the payment -> closed time in seconds.
- `balance_divergence` ({gw}/{dev}): a local-cost-control meter's own `balance_cny` (minus
  `overdraft_cny`) differs from the computed balance by more than max(abs, rel x |balance|).
- `relay_misoperation` ({gw}/{dev}): relay reads open (or is commanded open) while current / power
  flows, or actual and commanded relay state disagree for longer than the settle time (readings,
  `relay_change` events and command read-backs in CommandResult.state all carry the relay state).

Messages are stable while a condition lasts (the engine re-publishes a firing alert whose message
changes); the changing figure (balance, difference, hours) is the Signal's `value`.

Keep-power accounts still get these alerts (labelled keep_power=true) but never a trip: the rules
here only inform; the optional automatic trip policy is ingest/alerts/autocontrol.py (off by default).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, Final, Literal

from protocols import messages as m
from protocols.errors import ContractError

from ...topology import Topology
from ..model import (
    Inbound,
    RuleContext,
    RuleSet,
    Severity,
    Signal,
    account_subject,
    always,
    in_time_order,
    meter_subject,
)
from .billing import apply_billing, parse_billing_topic
from .config import CostControlConfig, LadderThresholds
from .ledger import Account, Ledger

__all__ = ["RULESET", "CostControlConfig", "CostControlRule", "LadderThresholds"]

Level = Literal["ok", "reminder", "warning", "arrears"]
_CURRENTS: Final = ("current_a_a", "current_b_a", "current_c_a")
_NUMBERS: Final = (int, float)  # a tuple: `int | float` is built anew at every isinstance


class CostControlRule:
    ids = ("balance_low", "arrears", "reconnect_overdue", "balance_divergence", "relay_misoperation")

    def __init__(self, cfg: CostControlConfig, ctx: RuleContext, ledger: Ledger | None = None) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.wants = ctx.wants or always
        self.ledger = ledger if ledger is not None else Ledger(ctx.state_dir / cfg.ledger_path)
        self.ledger.batched_reads = True  # the engine flushes it at every batch (Flushes)
        self._level: dict[str, Level] = {}  # account -> last reported ladder level
        self._reconnect: dict[str, dict[str, Any]] = {}  # account -> {since, payment, closed_at}
        self._relay: dict[str, dict[str, Any]] = {}  # meter subject -> {relay, commanded, since}
        self._changed: set[tuple[str, str]] = set()  # (kind, key) to write at the next commit
        self._removed: set[tuple[str, str]] = set()
        self.rejected = 0  # billing payloads refused (each also raised as a ContractError)

    def set_topology(self, topology: Topology) -> None:
        self.ctx = replace(self.ctx, topology=topology)

    # ---- the Rule protocol ------------------------------------------------------------------------

    def on_message(self, inbound: Inbound, now: float) -> Iterable[Signal]:
        msg = inbound.message
        if isinstance(msg, m.Reading):
            return self._reading(inbound.gw, inbound.dev, msg, now)
        if isinstance(msg, m.Event) and msg.event is m.EventKind.RELAY_CHANGE:
            state = {"relay": msg.data.get("relay")}
            return self._relay_state(inbound.gw, inbound.dev, msg.ts, state, now, acc=self._account(inbound))
        if isinstance(msg, m.CommandResult) and msg.state:
            state = dict(msg.state)
            return self._relay_state(inbound.gw, inbound.dev, msg.ts, state, now, acc=self._account(inbound))
        if "/billing/" in inbound.topic:
            return self._billing(inbound.topic, msg, now)
        return []

    def on_tick(self, now: float) -> Iterable[Signal]:
        signals: list[Signal] = []
        balances = self.ledger.balances()
        for acc in self.ledger.accounts():
            signals += self._ladder(acc, balances.get(acc.account, 0.0), now)
        return signals

    def flush(self) -> None:
        """The registers charged in this batch, durable before the engine acknowledges the readings."""
        self.ledger.flush()

    def snapshot(self) -> dict[str, Any]:
        return {}  # all of it is parts, one per account / meter (take_changes)

    def _tables(self) -> dict[str, dict[str, Any]]:
        return {"level": self._level, "reconnect": self._reconnect, "relay": self._relay}

    def take_changes(self) -> tuple[dict[str, dict[str, Any]], set[str]]:
        tables = self._tables()
        changed = {
            f"{kind}:{key}": {"v": tables[kind][key]} for kind, key in self._changed if key in tables[kind]
        }
        removed = {f"{kind}:{key}" for kind, key in self._removed}
        self._changed, self._removed = set(), set()
        return changed, removed

    def restore(self, state: Mapping[str, Any]) -> None:
        # state written before it was parts (an earlier version): taken over, written as parts next commit
        self._level = dict(state.get("level", {}))
        self._reconnect = {k: dict(v) for k, v in state.get("reconnect", {}).items()}
        self._relay = {k: dict(v) for k, v in state.get("relay", {}).items()}
        self._changed = {
            (kind, key) for kind in ("level", "reconnect", "relay") for key in state.get(kind, {})
        }
        self._removed = set()

    def restore_parts(self, parts: Mapping[str, Mapping[str, Any]]) -> None:
        tables = self._tables()
        for name, part in parts.items():
            kind, _, key = name.partition(":")
            if kind in tables:
                value = part["v"]
                tables[kind][key] = dict(value) if isinstance(value, dict) else value

    # ---- inputs -----------------------------------------------------------------------------------

    def _billing(self, topic: str, payload: Any, now: float) -> list[Signal]:
        if isinstance(payload, bytes | str):
            payload = json.loads(payload)
        try:
            if not isinstance(payload, Mapping):
                raise ContractError("$", "a billing payload must be a JSON object")
            account, kind = parse_billing_topic(topic, payload)
            record = {k: v for k, v in payload.items() if k != "account"}
            apply_billing(self.ledger, account, kind, record, now=now, topology=self.ctx.topology)
        except Exception:
            self.rejected += 1
            raise
        acc = self.ledger.account(account)
        return [] if acc is None else self._ladder(acc, self.ledger.balance(account), now)

    def _reading(self, gw: str, dev: str, reading: m.Reading, now: float) -> list[Signal]:
        signals: list[Signal] = []
        acc = self.ledger.account_for_meter(gw, dev)
        balance: float | None = None  # after the last charge (nothing else moves it within a reading)
        for sample in in_time_order(reading):
            values = sample.values
            charge = None if acc is None else self.ledger.charge(acc, sample.ts, values)
            if charge is not None:
                balance = charge.balance
                if "balance_cny" in values:
                    signals += self._divergence(acc, values, charge.balance, now)
            if "relay" in values or "relay_commanded" in values:
                signals += self._relay_state(gw, dev, sample.ts, values, now, acc=acc)
        if acc is not None:
            balance = self.ledger.balance(acc.account) if balance is None else balance
            signals += self._ladder(acc, balance, now)
        return signals

    # ---- the balance ladder and reconnection ------------------------------------------------------

    def _ladder(self, acc: Account, balance: float, now: float) -> list[Signal]:
        t = self.cfg.thresholds(self.ctx.topology.site(acc.gw), acc.customer_class)
        level: Level = (
            "arrears" if balance < 0
            else "warning" if balance < t.warning_cny
            else "reminder" if balance < t.reminder_cny
            else "ok"
        )  # fmt: skip
        previous = self._level.get(acc.account, "ok")
        if self._level.get(acc.account) != level:
            self._level[acc.account] = level
            self._changed.add(("level", acc.account))
        subject = account_subject(acc.account)
        low = level in ("reminder", "warning")
        signals = []
        if self.wants("balance_low", subject, low):
            threshold = t.warning_cny if level == "warning" else t.reminder_cny
            low_severity = Severity.WARNING if level == "warning" else Severity.INFO
            signals.append(
                Signal("balance_low", subject, low, now, low_severity, balance,
                       f"{acc.account}: available balance below {threshold:g} CNY ({level})",
                       clear_s=self.cfg.balance_clear_s, labels=self._labels(acc))
            )  # fmt: skip
        if self.wants("arrears", subject, level == "arrears"):
            keep = " (keep-power: no trip)" if acc.keep_power else ""
            signals.append(
                Signal("arrears", subject, level == "arrears", now, Severity.MAJOR, balance,
                       f"{acc.account}: in arrears (available balance below 0){keep}",
                       clear_s=self.cfg.balance_clear_s, labels=self._labels(acc))
            )  # fmt: skip
        if previous == "arrears" and level != "arrears":
            self._start_reconnect(acc, now)
        return signals + self._reconnect_check(acc, now)

    def _start_reconnect(self, acc: Account, now: float) -> None:
        last = self.ledger.last_payment(acc.account)
        since = last[2] if last is not None and last[2] <= now else now
        self._reconnect[acc.account] = {"since": since, "payment": last[0] if last else "", "closed_at": None}
        self._changed.add(("reconnect", acc.account))
        relay = self._relay.get(meter_subject(acc.gw, acc.dev), {})
        if relay.get("relay") == "closed" and relay.get("ts", 0.0) >= since:
            self._reconnect[acc.account]["closed_at"] = relay["ts"]

    def _reconnect_check(self, acc: Account, now: float) -> list[Signal]:
        clock = self._reconnect.get(acc.account)
        if clock is None:
            return []
        since = float(clock["since"])
        deadline = self.cfg.reconnect_deadline(self.ctx.topology.site(acc.gw))
        subject = account_subject(acc.account)
        labels = {**self._labels(acc), "payment": str(clock["payment"])}
        closed_at = clock["closed_at"]
        if closed_at is not None:
            del self._reconnect[acc.account]
            self._changed.discard(("reconnect", acc.account))
            self._removed.add(("reconnect", acc.account))
            taken = float(closed_at) - since
            return [
                Signal("reconnect_overdue", subject, False, now, Severity.WARNING, taken,
                       f"{acc.account}: relay closed {taken / 3600:.1f} h after payment",
                       ended_at=float(closed_at), labels=labels)
            ]  # fmt: skip
        overdue = now - since >= deadline
        return [
            Signal("reconnect_overdue", subject, overdue, now, Severity.MAJOR, now - since,
                   f"{acc.account}: relay not confirmed closed within {deadline / 3600:g} h of "
                   f"payment {clock['payment'] or '(unknown id)'}",
                   started_at=since + deadline if overdue else None, labels=labels)
        ]  # fmt: skip

    # ---- meter-side checks ------------------------------------------------------------------------

    def _divergence(
        self, acc: Account | None, values: Mapping[str, Any], computed: float, now: float
    ) -> list[Signal]:
        reported = values.get("balance_cny")
        if acc is None or acc.mode != "local" or not isinstance(reported, int | float):
            return []
        overdraft = values.get("overdraft_cny")
        meter_balance = float(reported) - (float(overdraft) if isinstance(overdraft, int | float) else 0.0)
        diff = abs(meter_balance - computed)
        tolerance = max(self.cfg.divergence_abs_cny, self.cfg.divergence_rel * abs(computed))
        if not self.wants("balance_divergence", meter_subject(acc.gw, acc.dev), diff > tolerance):
            return []
        return [
            Signal("balance_divergence", meter_subject(acc.gw, acc.dev), diff > tolerance, now,
                   Severity.WARNING, diff,
                   f"{acc.account}: meter-reported balance differs from the computed one beyond "
                   f"max({self.cfg.divergence_abs_cny:g} CNY, {self.cfg.divergence_rel:.0%})",
                   pending_s=self.cfg.divergence_pending_s, labels=self._labels(acc))
        ]  # fmt: skip

    def _account(self, inbound: Inbound) -> Account | None:
        return self.ledger.account_for_meter(inbound.gw, inbound.dev)

    def _relay_state(
        self, gw: str, dev: str, ts_ms: int, values: Mapping[str, Any], now: float, *, acc: Account | None
    ) -> list[Signal]:
        """`acc`: the meter's account (ledger.account_for_meter), looked up once per message."""
        subject = meter_subject(gw, dev)
        state = self._relay.get(subject)
        if state is None:
            state = self._relay[subject] = {}
        ts = ts_ms / 1000.0
        if ts < state.get("ts", 0.0):
            return []  # an older sample (spool replay) says nothing about the relay now
        state["ts"] = ts
        self._changed.add(("relay", subject))
        if (relay := values.get("relay")) in ("open", "closed"):
            state["relay"] = relay
        if (commanded := values.get("relay_commanded")) in ("open", "closed"):
            state["commanded"] = commanded
        signals = self._misoperation(subject, state, values, acc, now)
        if acc is not None and state.get("relay") == "closed":
            clock = self._reconnect.get(acc.account)
            if clock is not None and clock["closed_at"] is None and ts >= float(clock["since"]):
                clock["closed_at"] = ts
                self._changed.add(("reconnect", acc.account))
                signals += self._reconnect_check(acc, now)
        return signals

    def _misoperation(
        self, subject: str, state: dict[str, Any], values: Mapping[str, Any], acc: Account | None, now: float
    ) -> list[Signal]:
        relay, commanded = state.get("relay"), state.get("commanded")
        flow = self._flowing(values)  # judged on this sample only: a stale current says nothing
        opened = "open" in (relay, commanded)
        if flow is not None and flow[0] and opened:
            cause, why, pending = "flow", f"relay {relay}, commanded {commanded}, but {flow[1]} flows", 0.0
            value: float | None = flow[2]
        elif relay is not None and commanded is not None and relay != commanded:
            cause, why = "mismatch", f"commanded {commanded} but relay reads {relay}"
            pending, value = self.cfg.relay_settle_s, None
        elif opened and flow is None and state.get("cause") == "flow":
            return []  # still open and this sample carries no current: no new evidence
        else:
            state.pop("cause", None)
            if not self.wants("relay_misoperation", subject, False):
                return []
            return [self._misop_signal(subject, False, now, acc)]
        state["cause"] = cause
        self.wants("relay_misoperation", subject, True)
        return [self._misop_signal(subject, True, now, acc, why=why, pending=pending, value=value)]

    def _flowing(self, values: Mapping[str, Any]) -> tuple[bool, str, float] | None:
        """(flows?, which quantity, its value) from this sample; None when it has no current or power."""
        seen: list[str] = []
        for name in _CURRENTS:
            v = values.get(name)
            if isinstance(v, _NUMBERS):
                if abs(v) > self.cfg.relay_current_a:
                    return True, name, float(v)
                seen.append(name)
        p = values.get("power_active_kw")
        if isinstance(p, _NUMBERS):
            if abs(p) > self.cfg.relay_power_kw:
                return True, "power_active_kw", float(p)
            seen.append("power_active_kw")
        return (False, "", 0.0) if seen else None

    def _misop_signal(
        self,
        subject: str,
        active: bool,
        now: float,
        acc: Account | None,
        *,
        why: str = "",
        pending: float = 0.0,
        value: float | None = None,
    ) -> Signal:
        labels = self._labels(acc) if acc is not None else {}
        message = f"{subject}: {why}" if why else ""
        return Signal(
            "relay_misoperation", subject, active, now, Severity.MAJOR, value, message,
            pending_s=pending, labels=labels,
        )  # fmt: skip

    # ---- helpers ----------------------------------------------------------------------------------

    def _labels(self, acc: Account) -> dict[str, str]:
        tags = self.ctx.topology.tags(acc.gw, acc.dev)
        return {
            **{k: v for k, v in tags.items() if k in ("site", "area", "phase")},
            "gw": acc.gw,
            "dev": acc.dev,
            "account": acc.account,
            "customer_class": acc.customer_class,
            "keep_power": "true" if acc.keep_power else "false",
            "mode": acc.mode,
        }


def build(cfg: CostControlConfig, ctx: RuleContext) -> list[CostControlRule]:
    return [CostControlRule(cfg, ctx)]


RULESET: Final = RuleSet("costcontrol", CostControlConfig, build, topics=("gridedge/v1/billing/#",))
