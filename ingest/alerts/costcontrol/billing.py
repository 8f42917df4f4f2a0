"""Billing input of remote cost control: payments, tariff changes and accounts, from MQTT or a CSV file,
validated once and written into the ledger.

Layer: ingest alert input (validation + ledger writes; the CSV import also reads a file). Must not:
decide alerts, publish, touch the network, or import the rule or the ingest service's config (the
`gridedge ingest billing import` command line is ingest/billing_cli.py, above both). Every refusal is a
`ContractError` naming the field.

MQTT (`gridedge/v1/billing/{account}/{kind}`, JSON object; `ts` is UNIX milliseconds, default: now):

    payment  {"id": "P-1", "amount_cny": 100.0, "ts": 1700000000000}        id: applied once
    tariff   {"tariff_cny_kwh": 0.56, "tariffs": [0.8, 0.6, 0.4, 0.3], "id": "T-1", "ts": ...}
    account  {"meter": "gw-demo-01/000000000001", "customer_class": "residential",
              "keep_power": false, "mode": "remote", "tariff_cny_kwh": 0.56, "opening_balance_cny": 0}

CSV (`gridedge ingest billing import FILE.csv`, UTF-8, header row; empty cells = not given):

    kind          payment | tariff | account
    account       account id (as in the topology's `account`)
    id            payment id (required, idempotent) / tariff change id (default ACCOUNT@TS)
    ts            ISO 8601 (no offset = China time, +08:00) or UNIX milliseconds; default: now
    amount_cny    payment amount (> 0)
    tariff_cny_kwh, tariffs (t1..t4 separated by "/"), meter (GW/DEV), customer_class, keep_power
    (true/false), mode (remote/local), opening_balance_cny

An account's meter defaults to the topology device whose `account` matches, its class to that
device's `customer_class`. An account record's tariff (and opening balance) only counts when it creates
the account: tariff changes are dated `tariff` records, so re-importing a file is harmless.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from protocols.errors import ContractError
from protocols.messages import check_id
from protocols.operations import AccountRecord, Payment, TariffChange
from protocols.topics import PREFIX

from ...topology import Topology
from .ledger import Account, Ledger

__all__ = [
    "KINDS",
    "ImportReport",
    "apply_billing",
    "import_csv",
    "parse_billing_topic",
]

Kind = Literal["payment", "tariff", "account"]
KINDS: Final[tuple[Kind, ...]] = ("payment", "tariff", "account")
Outcome = Literal["applied", "duplicate"]
CST: Final = dt.timezone(dt.timedelta(hours=8), "CST")
_AT_RE: Final = re.compile(r"^(?P<reason>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.S)


# the billing records are part of the MQTT contract (protocols/operations.py): one model per record
_TYPES: Final[dict[str, type[Payment | TariffChange | AccountRecord]]] = {
    "payment": Payment,
    "tariff": TariffChange,
    "account": AccountRecord,
}


def parse_billing_topic(topic: str, data: Mapping[str, Any] | None = None) -> tuple[str, Kind]:
    """(account, kind) of `gridedge/v1/billing/{account}/{kind}`, or of `gridedge/v1/billing/{kind}`
    with the account in the payload's `account` field (the form protocols.topics accepts today);
    ContractError('topic') otherwise."""
    parts = topic.split("/")
    shape = f"{PREFIX}/billing/ACCOUNT/(payment|tariff|account)"
    if len(parts) not in (4, 5) or "/".join(parts[:3]) != f"{PREFIX}/billing" or parts[-1] not in KINDS:
        raise ContractError("topic", f"{topic!r}: billing topics are {shape}")
    kind: Kind = parts[-1]
    account = parts[3] if len(parts) == 5 else (data or {}).get("account")
    if not isinstance(account, str):
        raise ContractError("$.account", f"required on {topic} (or publish to {shape})")
    _check_account(account)
    return account, kind


def apply_billing(
    ledger: Ledger,
    account: str,
    kind: str,
    data: Mapping[str, Any],
    *,
    now: float,
    topology: Topology | None = None,
    strict: bool = True,
) -> Outcome:
    """Validate one payment / tariff / account record and write it; ContractError names the field.
    `strict=False` lets text cells convert to numbers and booleans (the CSV import)."""
    _check_account(account)
    if kind not in _TYPES:
        raise ContractError("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    record = _convert(data, _TYPES[kind], strict)
    at = now if record.ts is None else _check_ts(record.ts)
    if isinstance(record, Payment):
        return _payment(ledger, account, record, at)
    if isinstance(record, TariffChange):
        return _tariff(ledger, account, record, at)
    assert isinstance(record, AccountRecord)
    return _account(ledger, account, record, at, topology or Topology.empty())


def _payment(ledger: Ledger, account: str, p: Payment, at: float) -> Outcome:
    if not p.id:
        raise ContractError("$.id", "a payment needs its id (payments are applied once per id)")
    _positive("$.amount_cny", p.amount_cny)
    _known(ledger, account)
    return "applied" if ledger.apply_payment(p.id, account, p.amount_cny, at) else "duplicate"


def _tariff(ledger: Ledger, account: str, t: TariffChange, at: float) -> Outcome:
    _positive("$.tariff_cny_kwh", t.tariff_cny_kwh)
    tariffs = _tou(t.tariffs)
    _known(ledger, account)
    change_id = t.id or f"{account}@{int(at * 1000)}"
    applied = ledger.change_tariff(change_id, account, t.tariff_cny_kwh, tariffs, at)
    return "applied" if applied else "duplicate"


def _account(ledger: Ledger, account: str, a: AccountRecord, at: float, topology: Topology) -> Outcome:
    old = ledger.account(account)
    gw, dev = _meter(a.meter, account, topology, old)
    info = topology.device(gw, dev)
    # an account record's tariff is the opening one: later changes are dated `tariff` records, so
    # re-importing an old account row never undoes them
    tariff = old.tariff if old else a.tariff_cny_kwh
    if tariff is None:
        raise ContractError("$.tariff_cny_kwh", f"required to create account {account!r}")
    if a.tariff_cny_kwh is not None:
        _positive("$.tariff_cny_kwh", a.tariff_cny_kwh)
    tariffs = _tou(a.tariffs or [])
    opening = a.opening_balance_cny if a.opening_balance_cny is not None else 0.0
    if not math.isfinite(opening):
        raise ContractError("$.opening_balance_cny", "must be a finite number")
    new = Account(
        account=account,
        gw=gw,
        dev=dev,
        tariff=tariff,
        tariffs=old.tariffs if old else tariffs,
        customer_class=a.customer_class
        or (old.customer_class if old else (info.customer_class if info else "residential")),
        keep_power=a.keep_power if a.keep_power is not None else (old.keep_power if old else False),
        mode=a.mode or (old.mode if old else "remote"),
        opening=opening,
        created_at=at,
    )
    other = ledger.account_for_meter(gw, dev)
    if other is not None and other.account != account:
        raise ContractError("$.meter", f"meter {gw}/{dev} already belongs to account {other.account!r}")
    return "applied" if ledger.upsert_account(new) else "duplicate"


def _meter(given: str, account: str, topology: Topology, old: Account | None) -> tuple[str, str]:
    if given:
        gw, sep, dev = given.partition("/")
        if not sep:
            raise ContractError("$.meter", f"{given!r} must be GATEWAY/DEVICE")
        check_id("$.meter", gw)
        check_id("$.meter", dev)
        return gw, dev
    if old is not None:
        return old.gw, old.dev
    found = [key for key, info in topology.devices.items() if info.account == account]
    if len(found) != 1:
        why = "is not in the topology" if not found else f"has {len(found)} meters in the topology"
        raise ContractError("$.meter", f"required: account {account!r} {why}")
    return found[0]


def _convert(
    data: Mapping[str, Any], type_: type[Payment | TariffChange | AccountRecord], strict: bool
) -> Any:
    if not isinstance(data, Mapping):
        raise ContractError("$", f"expected a JSON object, got {type(data).__name__}")
    try:
        return msgspec.convert(dict(data), type_, strict=strict)
    except msgspec.ValidationError as exc:
        match = _AT_RE.match(str(exc))
        reason = match.group("reason") if match else str(exc)
        path = (match.group("path") if match else None) or "$"
        missing = re.search(r"missing required field `([^`]+)`", reason)
        if missing:
            path, reason = f"{path}.{missing.group(1)}", "required field is missing"
        raise ContractError(path, reason) from None


def _check_account(account: str) -> None:
    check_id("account", account)


def _known(ledger: Ledger, account: str) -> None:
    if ledger.account(account) is None:
        raise ContractError("account", f"unknown account {account!r} (create it with an account record)")


def _positive(path: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ContractError(path, f"must be a positive number, got {value!r}")


def _tou(values: list[float]) -> tuple[float, ...]:
    if values and len(values) != 4:
        raise ContractError("$.tariffs", f"time-of-use tariffs are t1..t4 (4 values), got {len(values)}")
    for i, v in enumerate(values):
        _positive(f"$.tariffs[{i}]", v)
    return tuple(values)


def _check_ts(ts_ms: int) -> float:
    if ts_ms < 946_684_800_000:
        raise ContractError("$.ts", f"timestamp {ts_ms} is before 2000-01-01 (milliseconds expected)")
    return ts_ms / 1000.0


# ---- CSV import ------------------------------------------------------------------------------------

CSV_COLUMNS: Final = (
    "kind", "account", "id", "ts", "amount_cny", "tariff_cny_kwh", "tariffs", "meter",
    "customer_class", "keep_power", "mode", "opening_balance_cny",
)  # fmt: skip


@dataclass(slots=True)
class ImportReport:
    applied: int = 0
    duplicate: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (row number, why)

    def summary(self) -> str:
        return f"applied {self.applied}, duplicate {self.duplicate}, rejected {len(self.rejected)}"


def import_csv(
    path: str | Path, ledger: Ledger, *, now: float, topology: Topology | None = None
) -> ImportReport:
    """Apply every row; a bad row is reported by its row number (the header is row 1) and skipped."""
    report = ImportReport()
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        unknown = sorted(set(reader.fieldnames or ()) - set(CSV_COLUMNS))
        if unknown or "kind" not in (reader.fieldnames or ()):
            why = f"unknown column(s) {', '.join(unknown)}" if unknown else "no `kind` column"
            report.rejected.append((1, f"header: {why} (columns: {', '.join(CSV_COLUMNS)})"))
            return report
        for row in reader:
            try:
                outcome = _apply_row(row, ledger, now, topology)
            except ContractError as exc:
                report.rejected.append((reader.line_num, f"{exc.field}: {exc.reason}"))
                continue
            if outcome == "applied":
                report.applied += 1
            else:
                report.duplicate += 1
    return report


def _apply_row(
    row: Mapping[str, str | None], ledger: Ledger, now: float, topology: Topology | None
) -> Outcome:
    cells = {k: v.strip() for k, v in row.items() if k is not None and isinstance(v, str) and v.strip()}
    kind = cells.pop("kind", "")
    account = cells.pop("account", "")
    if not account:
        raise ContractError("account", "required")
    if "ts" in cells:
        cells["ts"] = str(_csv_ts(cells["ts"]))
    if "tariffs" in cells:
        cells["tariffs"] = [t for t in re.split(r"[/;|]", cells["tariffs"]) if t.strip()]  # type: ignore[assignment]
    try:
        return apply_billing(ledger, account, kind, cells, now=now, topology=topology, strict=False)
    except ContractError as exc:
        raise ContractError(exc.field.replace("$.", ""), exc.reason) from None


def _csv_ts(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ContractError("ts", f"{text!r} is neither ISO 8601 nor UNIX milliseconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=CST)
    return int(when.timestamp() * 1000)
