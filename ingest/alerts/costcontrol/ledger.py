"""The prepaid account ledger of remote cost control: accounts, payments, tariff changes and the last
collected energy register per meter, in one SQLite file, so a restart continues where it stopped.

Layer: ingest alert state (synchronous SQLite, no network, no clock: every time is given). Must not:
import the engine, MQTT or InfluxDB, or decide alerts (rule.py does).

The **available balance** of an account = opening balance + payments - consumed cost, where consumed
cost is charged incrementally as readings arrive: each sample newer than the meter's last one adds
`(register - last register) x tariff in force`. So a tariff change applies from the next reading on,
never retroactively. A sample older than (or as old as) the last one is ignored (a spool replay); a
register that went *down* (meter exchanged) re-bases without a charge — the reading rules alert on it.
With time-of-use tariffs (t1..t4) and samples carrying `energy_import_t1..t4_kwh`, each register is
charged at its own rate; otherwise the total `energy_import_kwh` is charged at the flat tariff.

Several processes may share the file (the alert role and `gridedge ingest billing import`): WAL mode and
short transactions. Reads are cached in memory (accounts, registers, payment sums) while SQLite's
`PRAGMA data_version` says no other connection committed (looked at before every read, or once per
batch for the engine's ledger: `batched_reads`); any write here or there empties the cache.
The registers charged by readings are written in one transaction per engine batch, made durable by
`flush()` (the engine calls it before the alert state is saved and the MQTT messages acknowledged, so a
crash loses only unacknowledged readings, which the broker redelivers; a sample not newer than the
register is ignored, so nothing is charged twice). Measured (bench/alerts_throughput.py): a commit
(and fsync) per reading cost ~0.5 ms of the ~0.8 ms the alert engine spent per reading.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, cast

__all__ = ["Account", "Charge", "Ledger", "Mode"]

Mode = Literal["remote", "local"]
T = TypeVar("T")
TOTAL: Final = "energy_import_kwh"
TOU: Final = tuple(f"energy_import_t{i}_kwh" for i in range(1, 5))
REGISTERS: Final = (TOTAL, *TOU)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS accounts (
    account TEXT PRIMARY KEY, gw TEXT NOT NULL, dev TEXT NOT NULL, tariff REAL NOT NULL,
    tariffs TEXT NOT NULL DEFAULT '[]', customer_class TEXT NOT NULL, keep_power INTEGER NOT NULL,
    mode TEXT NOT NULL, opening REAL NOT NULL, created_at REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS accounts_meter ON accounts (gw, dev);
CREATE TABLE IF NOT EXISTS payments (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, amount REAL NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tariff_changes (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, tariff REAL NOT NULL, tariffs TEXT NOT NULL,
    at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS registers (
    account TEXT PRIMARY KEY, ts_ms INTEGER NOT NULL, registers TEXT NOT NULL,
    consumed_kwh REAL NOT NULL, consumed_cny REAL NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Account:
    account: str
    gw: str
    dev: str
    tariff: float  # CNY/kWh, flat
    tariffs: tuple[float, ...] = ()  # t1..t4 CNY/kWh when time-of-use
    customer_class: str = "residential"
    keep_power: bool = False
    mode: Mode = "remote"
    opening: float = 0.0  # opening balance, CNY
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Charge:
    """What one accepted sample did to an account."""

    account: str
    ts_ms: int
    kwh: float
    cny: float
    balance: float


@dataclass(slots=True)
class _Register:
    ts_ms: int
    values: dict[str, float] = field(default_factory=dict)
    consumed_kwh: float = 0.0
    consumed_cny: float = 0.0


class Ledger:
    """One SQLite ledger; `Ledger(":memory:")` for a throw-away one."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._cache: dict[tuple[str, ...], Any] = {}
        self._seen_version = -1
        # registers charged in the open batch, written at its flush: one row per meter and batch, not
        # an INSERT (and its JSON) per sample, which was a third of the ledger's time per reading
        self._unsaved: dict[str, _Register] = {}
        # True for the engine's ledger, flushed at every batch: data_version is looked at once per batch
        # (the first read after a flush) instead of at every read outside a write transaction, so what
        # another process commits is seen from the next batch on. A PRAGMA per reading of a meter
        # without an account was ~17 % of the engine's time per reading.
        self.batched_reads = False
        self._fresh = False  # batched_reads: data_version looked at since the last flush

    def flush(self) -> None:
        """Commit the registers charged since the last flush (no-op when there are none)."""
        if self._db.in_transaction:
            self._write_registers()
            self._db.execute("COMMIT")
        self._fresh = False

    def _write_registers(self) -> None:
        """Write the batch's charged registers into its transaction (before anything reads the table)."""
        if self._unsaved:
            rows = [
                (account, r.ts_ms, json.dumps(r.values), r.consumed_kwh, r.consumed_cny)
                for account, r in self._unsaved.items()
            ]
            self._db.executemany("INSERT OR REPLACE INTO registers VALUES (?,?,?,?,?)", rows)
            self._unsaved.clear()

    def _forget_if_changed(self) -> None:
        """Empty the cache when another connection committed since the last look."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._seen_version:
            self._cache.clear()
            self._seen_version = version

    def _cached(self, key: tuple[str, ...], load: Callable[..., T], *args: str) -> T:
        """`load(*args)`'s result, remembered until this or another connection writes the ledger."""
        if not self._fresh and not self._db.in_transaction:  # inside ours nobody else can commit
            self._forget_if_changed()
            self._fresh = self.batched_reads
        try:
            return cast(T, self._cache[key])
        except KeyError:
            value = self._cache[key] = load(*args)
            return value

    def close(self) -> None:
        self.flush()
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- accounts ---------------------------------------------------------------------------------

    def upsert_account(self, acc: Account) -> bool:
        """Create or update an account; False when nothing changed. The opening balance and start
        time of an existing account are kept (payments, not account updates, move money)."""
        old = self.account(acc.account)
        if old is not None:
            acc = Account(**{**_fields(acc), "opening": old.opening, "created_at": old.created_at})
            if acc == old:
                return False
        moved = old is not None and (old.gw, old.dev) != (acc.gw, acc.dev)
        with self._tx() as db:
            if moved:  # a meter exchange: the next sample of the new meter is its start reading
                db.execute("UPDATE registers SET registers='{}' WHERE account=?", (acc.account,))
            db.execute(
                "INSERT INTO accounts VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(account) DO UPDATE SET "
                "gw=excluded.gw, dev=excluded.dev, tariff=excluded.tariff, tariffs=excluded.tariffs, "
                "customer_class=excluded.customer_class, keep_power=excluded.keep_power, "
                "mode=excluded.mode",
                (
                    acc.account, acc.gw, acc.dev, acc.tariff, json.dumps(list(acc.tariffs)),
                    acc.customer_class, int(acc.keep_power), acc.mode, acc.opening, acc.created_at,
                ),
            )  # fmt: skip
        return True

    def account(self, account: str) -> Account | None:
        return self._cached(("account", account), self._load_account, account)

    def account_for_meter(self, gw: str, dev: str) -> Account | None:
        return self._cached(("meter", gw, dev), self._load_meter, gw, dev)

    def _load_account(self, account: str) -> Account | None:
        row = self._db.execute("SELECT * FROM accounts WHERE account=?", (account,)).fetchone()
        return None if row is None else _account(row)

    def _load_meter(self, gw: str, dev: str) -> Account | None:
        row = self._db.execute("SELECT * FROM accounts WHERE gw=? AND dev=?", (gw, dev)).fetchone()
        return None if row is None else _account(row)

    def accounts(self) -> list[Account]:
        return [_account(r) for r in self._db.execute("SELECT * FROM accounts ORDER BY account")]

    # ---- money ------------------------------------------------------------------------------------

    def apply_payment(self, payment_id: str, account: str, amount: float, at: float) -> bool:
        """Record a payment once: False when this payment id was already applied."""
        self._require(account)
        self._cache.clear()
        cur = self._db.execute(
            "INSERT OR IGNORE INTO payments VALUES (?,?,?,?)", (payment_id, account, amount, at)
        )
        return cur.rowcount == 1

    def last_payment(self, account: str) -> tuple[str, float, float] | None:
        """(id, amount, at) of the latest payment by payment time."""
        row = self._db.execute(
            "SELECT id, amount, at FROM payments WHERE account=? ORDER BY at DESC, rowid DESC LIMIT 1",
            (account,),
        ).fetchone()
        return None if row is None else (str(row[0]), float(row[1]), float(row[2]))

    def change_tariff(
        self, change_id: str, account: str, tariff: float, tariffs: tuple[float, ...], at: float
    ) -> bool:
        """Apply a tariff change once (by id) from the next reading on; False when a duplicate."""
        self._require(account)
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO tariff_changes VALUES (?,?,?,?,?)",
                (change_id, account, tariff, json.dumps(list(tariffs)), at),
            )
            if cur.rowcount != 1:
                return False
            db.execute(
                "UPDATE accounts SET tariff=?, tariffs=? WHERE account=?",
                (tariff, json.dumps(list(tariffs)), account),
            )
        return True

    def balance(self, account: str) -> float:
        return self._balance(self._require(account), self._register(account))

    def _balance(self, acc: Account, reg: _Register | None) -> float:
        paid = self._cached(("paid", acc.account), self._load_paid, acc.account)
        return acc.opening + paid - (reg.consumed_cny if reg else 0.0)

    def _load_paid(self, account: str) -> float:
        sql = "SELECT COALESCE(SUM(amount), 0) FROM payments WHERE account=?"
        return float(self._db.execute(sql, (account,)).fetchone()[0])

    def balances(self) -> dict[str, float]:
        """The available balance of every account, in one query (the rules' timer)."""
        self._write_registers()
        rows = self._db.execute(
            "SELECT a.account, a.opening + COALESCE(p.paid, 0) - COALESCE(r.consumed_cny, 0) "
            "FROM accounts a "
            "LEFT JOIN (SELECT account, SUM(amount) AS paid FROM payments GROUP BY account) p "
            "ON p.account = a.account LEFT JOIN registers r ON r.account = a.account"
        )
        return {str(acc): float(bal) for acc, bal in rows}

    def consumed_kwh(self, account: str) -> float:
        reg = self._register(account)
        return reg.consumed_kwh if reg else 0.0

    # ---- readings ---------------------------------------------------------------------------------

    def record_sample(self, gw: str, dev: str, ts_ms: int, values: Mapping[str, Any]) -> Charge | None:
        """Charge one sample of a meter; None when the meter has no account, the sample has no
        energy register, or it is not newer than the last one."""
        acc = self.account_for_meter(gw, dev)
        return None if acc is None else self.charge(acc, ts_ms, values)

    def charge(self, acc: Account, ts_ms: int, values: Mapping[str, Any]) -> Charge | None:
        """`record_sample` for the meter's account `acc` (looked up by the caller: account_for_meter)."""
        if not _is_number(values.get(TOTAL)):
            return None
        if values.keys().isdisjoint(TOU):  # no time-of-use registers: the total alone (most meters)
            regs = {TOTAL: float(values[TOTAL])}
        else:
            regs = {k: float(values[k]) for k in REGISTERS if k in values and _is_number(values[k])}
        self._batch()  # the register is read and written under the write lock: no update is lost
        reg = self._register(acc.account)
        if reg is None:  # the start reading: nothing consumed yet
            reg = _Register(ts_ms, regs)
            self._save_register(acc.account, reg)
            return Charge(acc.account, ts_ms, 0.0, 0.0, self._balance(acc, reg))
        if ts_ms <= reg.ts_ms:
            return None
        kwh, cny = _charge(acc, reg.values, regs)
        reg = _Register(ts_ms, {**reg.values, **regs}, reg.consumed_kwh + kwh, reg.consumed_cny + cny)
        self._save_register(acc.account, reg)
        return Charge(acc.account, ts_ms, kwh, cny, self._balance(acc, reg))

    def last_ts_ms(self, account: str) -> int | None:
        reg = self._register(account)
        return reg.ts_ms if reg else None

    # ---- private ----------------------------------------------------------------------------------

    def _require(self, account: str) -> Account:
        acc = self.account(account)
        if acc is None:
            raise KeyError(f"unknown account {account!r}")
        return acc

    def _register(self, account: str) -> _Register | None:
        # shared: never changed, replaced when saved
        return self._cached(("register", account), self._load_register, account)

    def _load_register(self, account: str) -> _Register | None:
        unsaved = self._unsaved.get(account)  # the cache was emptied (a payment) within a batch
        if unsaved is not None:
            return unsaved
        row = self._db.execute(
            "SELECT ts_ms, registers, consumed_kwh, consumed_cny FROM registers WHERE account=?",
            (account,),
        ).fetchone()
        if row is None:
            return None
        return _Register(int(row[0]), json.loads(row[1]), float(row[2]), float(row[3]))

    def _batch(self) -> None:
        """Open the write transaction `flush()` commits, unless it is open: from here until the flush
        no other process can commit, so what the cache holds stays true."""
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            self._forget_if_changed()  # a commit that slipped in since the last read

    def _save_register(self, account: str, reg: _Register) -> None:
        """Part of the batch `flush()` commits (record_sample opened it before reading the register)."""
        self._unsaved[account] = reg
        self._cache[("register", account)] = reg

    def _tx(self) -> _Transaction:
        self.flush()  # an account or tariff change is its own transaction, after the charged registers
        self._cache.clear()
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _charge(acc: Account, old: Mapping[str, float], new: Mapping[str, float]) -> tuple[float, float]:
    """(kWh, CNY) between two register sets; a register that went down re-bases without charge."""
    kwh = new[TOTAL] - old.get(TOTAL, new[TOTAL])
    if kwh <= 0:
        return 0.0, 0.0
    if len(acc.tariffs) == len(TOU) and all(t in new and t in old for t in TOU):
        deltas = [max(0.0, new[t] - old[t]) for t in TOU]
        return kwh, sum(d * rate for d, rate in zip(deltas, acc.tariffs, strict=True))
    return kwh, kwh * acc.tariff


def _is_number(value: object) -> bool:
    return isinstance(value, _NUMBERS) and not isinstance(value, bool)


_NUMBERS: Final = (int, float)


def _fields(acc: Account) -> dict[str, Any]:
    return {f.name: getattr(acc, f.name) for f in fields(acc)}


def _account(row: tuple[Any, ...]) -> Account:
    return Account(
        account=row[0], gw=row[1], dev=row[2], tariff=float(row[3]),
        tariffs=tuple(json.loads(row[4])), customer_class=row[5], keep_power=bool(row[6]),
        mode=row[7], opening=float(row[8]), created_at=float(row[9]),
    )  # fmt: skip
