"""The durable spool: every reading and event is on disk before it is published.

Layer: gateway core. SQLite in WAL mode on the gateway's SD card. A record gets the gateway's next `seq`
(monotonic across restarts, stored with the record in the same transaction) when it is written; it is
deleted only after the broker acknowledged it (PUBACK). The spool is bounded by bytes: past the bound
the oldest records are dropped, counted and reported (the drop counter is persistent too).

Fsync policy: `always` (the default) makes each commit durable before `add` returns, so a power cut
loses nothing already accepted; `normal` survives a crash of the gateway process but may lose the last
commits on power loss; `off` leaves it to the OS. All SQLite work runs on one dedicated thread, so the
event loop never blocks on the SD card.

A record is either a `sample` (an encoded `protocols.messages.Sample` of one device, plus the
device's protocol: the publisher builds the reading around it, several samples of one device in one
message) or a finished message (an event, a command result, a reading spooled by a format-0 gateway)
that is published as it is. The file format is `PRAGMA user_version`; a spool written by an older
gateway is taken over on open (its records are kept and published), one written by a newer one is
refused rather than misread.

Must not: know MQTT, or decide publish order (the publisher does, from `pending`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from .errors import SpoolError

T = TypeVar("T")

FsyncPolicy = Literal["always", "normal", "off"]
_SYNC = {"always": "FULL", "normal": "NORMAL", "off": "OFF"}

# Format 0 (up to a260772) had no `protocol` column and spooled every reading as a finished message
# (kind "reading"); those rows are still published as they are. Format 1 spools samples (kind "sample").
FORMAT = 1
SAMPLE = "sample"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS record (
    seq      INTEGER PRIMARY KEY,
    dev      TEXT NOT NULL,
    kind     TEXT NOT NULL,
    topic    TEXT NOT NULL,
    payload  BLOB NOT NULL,
    size     INTEGER NOT NULL,
    protocol TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS record_dev ON record (dev, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    dev: str
    kind: str  # SAMPLE, or the kind of a finished message: "event" | "result" | "reading" (format 0)
    topic: str
    payload: bytes
    protocol: str = ""  # of a SAMPLE's device


@dataclass(frozen=True, slots=True)
class Entry:
    """What a caller adds: the payload is built once the spool has assigned its seq."""

    dev: str
    kind: str
    topic: str
    build: Callable[[int], bytes]
    protocol: str = ""


@dataclass
class SpoolStats:
    depth: int = 0
    bytes: int = 0
    dropped: int = 0
    added: int = 0
    acked: int = 0


class Spool:
    """`spool = await Spool.open(path, max_bytes=..., fsync="always")`; `await spool.close()`."""

    def __init__(self, path: Path, max_bytes: int, fsync: FsyncPolicy) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.stats = SpoolStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._db: sqlite3.Connection | None = None
        self._next_seq = 1
        self._changed = asyncio.Event()

    @classmethod
    async def open(cls, path: str | Path, *, max_bytes: int, fsync: FsyncPolicy = "always") -> Spool:
        spool = cls(Path(path), max_bytes, fsync)
        await spool._call(spool._open)
        return spool

    async def close(self) -> None:
        try:
            await self._call(self._close)
        finally:
            self._executor.shutdown(wait=True)

    # ---- public API -------------------------------------------------------------------------------

    async def add(self, entries: Sequence[Entry]) -> list[int]:
        """Write entries in one transaction; return their seqs. Durable per the fsync policy."""
        if not entries:
            return []
        seqs = await self._call(self._add, entries)
        self._changed.set()
        return seqs

    async def allocate_seq(self) -> int:
        """A seq for a message that is not spooled (health, status): still unique and increasing."""
        return await self._call(self._allocate)

    async def pending(self, limit: int, after: int = 0) -> list[Record]:
        """Oldest records with seq > after, in seq order."""
        return await self._call(self._pending, limit, after)

    async def ack(self, seqs: Iterable[int]) -> None:
        """The broker has them: delete."""
        seqs = list(seqs)
        if seqs:
            await self._call(self._ack, seqs)

    async def wait_changed(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        except TimeoutError:
            return
        finally:
            self._changed.clear()

    # ---- thread side ------------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            raise SpoolError(f"spool {self.path}: {exc}") from exc

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={_SYNC[self.fsync]}")
        _upgrade(db, self.path)
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        self._db = db
        last_record = db.execute("SELECT COALESCE(MAX(seq), 0) FROM record").fetchone()[0]
        self._next_seq = max(last_record, self._meta("last_seq")) + 1
        self.stats.dropped = self._meta("dropped")
        depth, size = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM record").fetchone()
        self.stats.depth, self.stats.bytes = depth, size

    def _close(self) -> None:
        if self._db is not None:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._db = None

    def _meta(self, key: str) -> int:
        assert self._db is not None
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        assert self._db is not None
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _allocate(self) -> int:
        assert self._db is not None
        seq = self._next_seq
        self._db.execute("BEGIN")
        self._set_meta("last_seq", seq)
        self._db.execute("COMMIT")
        self._next_seq += 1
        return seq

    def _add(self, entries: Sequence[Entry]) -> list[int]:
        db = self._db
        assert db is not None
        seqs: list[int] = []
        rows = []
        added_bytes = 0
        for entry in entries:
            seq = self._next_seq + len(seqs)
            payload = entry.build(seq)
            rows.append((seq, entry.dev, entry.kind, entry.topic, payload, len(payload), entry.protocol))
            added_bytes += len(payload)
            seqs.append(seq)
        dropped = freed = 0
        try:
            db.execute("BEGIN")
            db.executemany("INSERT INTO record VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self._set_meta("last_seq", seqs[-1])
            over = self.stats.bytes + added_bytes - self.max_bytes
            if over > 0:
                dropped, freed = self._drop_oldest(over)
                self._set_meta("dropped", self.stats.dropped + dropped)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._next_seq = seqs[-1] + 1
        self.stats.added += len(rows)
        self.stats.depth += len(rows) - dropped
        self.stats.bytes += added_bytes - freed
        self.stats.dropped += dropped
        return seqs

    def _drop_oldest(self, need: int) -> tuple[int, int]:
        assert self._db is not None
        dropped = freed = 0
        cursor = self._db.execute("SELECT seq, size FROM record ORDER BY seq")
        last = 0
        for seq, size in cursor:
            if freed >= need:
                break
            dropped += 1
            freed += size
            last = seq
        if dropped:
            self._db.execute("DELETE FROM record WHERE seq <= ?", (last,))
        return dropped, freed

    def _pending(self, limit: int, after: int) -> list[Record]:
        assert self._db is not None
        cur = self._db.execute(
            "SELECT seq, dev, kind, topic, payload, protocol FROM record WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        )
        return [
            Record(seq, dev, kind, topic, bytes(payload), protocol)
            for seq, dev, kind, topic, payload, protocol in cur
        ]

    def _ack(self, seqs: list[int]) -> None:
        db = self._db
        assert db is not None
        try:
            db.execute("BEGIN")
            freed = 0
            deleted = 0
            for seq in seqs:
                row = db.execute("DELETE FROM record WHERE seq = ? RETURNING size", (seq,)).fetchone()
                if row is not None:
                    deleted += 1
                    freed += row[0]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.stats.acked += deleted
        self.stats.depth -= deleted
        self.stats.bytes -= freed


def _upgrade(db: sqlite3.Connection, path: Path) -> None:
    """Create the tables, or bring a spool of an older format to FORMAT in one transaction (its records
    and counters kept); refuse one of a newer format, which this build would misread."""
    found = db.execute("PRAGMA user_version").fetchone()[0]
    if found > FORMAT:
        raise SpoolError(
            f"spool {path}: written by a newer gridedge (spool format {found}; this build reads up to "
            f"{FORMAT}): move it aside or run the newer version until it is empty"
        )
    if found == FORMAT:
        db.executescript(_SCHEMA)
        return
    columns = {row[1] for row in db.execute("PRAGMA table_info(record)")}
    db.execute("BEGIN IMMEDIATE")
    try:
        if columns and "protocol" not in columns:  # format 0 with records: keep them as they are
            db.execute("ALTER TABLE record ADD COLUMN protocol TEXT NOT NULL DEFAULT ''")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {FORMAT}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
