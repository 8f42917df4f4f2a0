"""DL/T 698.45 back-fill: after a gap in a meter's live polls (the meter was unreachable, or this
gateway was down), read the meter's daily freezes (5004) of the gap with GET-Record and publish them
as samples with source `frozen` and their own freeze time.

Layer: gateway driver helper. `FreezeScan` planning is pure (times are passed in); `Backfill` runs the
record reads through a function the driver supplies (lowest bus priority, a bounded number per poll)
and persists its watermark atomically in `state_dir/dlt698-backfill-<id>.json` before the samples
leave the driver, so a restart neither repeats nor loses a freeze. Must not: open the port, know any
topic or payload, or fail a live poll (a read that gets no answer only pauses the back-fill).

How (dlt698.md §4, §6 E5): the freezes of the gap are asked by time range (RSD selector 2 on the
freeze-time column 20210200, at most `CHUNK_DAYS` per request so a reply stays short); a meter that
refuses the selector is asked record by record (selector 9, the n-th latest freeze), oldest first, each
taken by its own time stamp. Either way only freezes newer than the watermark (newest freeze published)
and within the gap are taken. A meter first seen publishes nothing: what an earlier gateway already
published is unknown, and a duplicate freeze would be worse than none.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from protocols.dlt698 import FREEZE_TIME, Csd, DateTimeS, MeterRefused, Oad, RecordResult, Rsd, record_rows
from protocols.errors import ProtocolError
from protocols.messages import Scalar
from protocols.vocabulary import CANONICAL_NAMES

from ...errors import GatewayError
from ...statefile import write_atomically
from ..base import PollResult, Sample

CST: Final = dt.timezone(dt.timedelta(hours=8), "CST")  # meter clocks: China Standard Time, no DST
DAILY_FREEZE: Final = Oad(0x5004, 2)
COLUMNS: Final = (Csd(FREEZE_TIME), Csd(Oad(0x0010, 2)), Csd(Oad(0x0020, 2)))
DAY_MS: Final = 86_400_000
CHUNK_DAYS: Final = 3
FREEZE_DEPTH: Final = 62  # daily freezes a meter keeps (selector 9 never asks further back)
STATE_VERSION: Final = 1
# last_live_ms alone is written at most this often (no fsync per poll): a stale value after a restart
# only widens the gap, and the watermark still keeps every freeze from being published twice
LIVE_SAVE_MS: Final = 600_000

ReadRecords = Callable[[Rsd], Awaitable[RecordResult]]


def meter_ms(when: dt.datetime) -> int:
    """A meter's naive local time -> UTC epoch milliseconds."""
    return int(when.replace(tzinfo=CST).timestamp() * 1000)


def meter_time(ms: int) -> DateTimeS:
    return DateTimeS.of(dt.datetime.fromtimestamp(ms / 1000, CST).replace(tzinfo=None))


def midnights_between(after_ms: int, until_ms: int) -> int:
    """How many meter midnights (00:00 CST) lie in (after_ms, until_ms]."""
    offset = 8 * 3600 * 1000
    return max(0, (until_ms + offset) // DAY_MS - (after_ms + offset) // DAY_MS)


@dataclass(frozen=True, slots=True)
class BackfillPolicy:
    gap_s: float  # no live poll for longer than this: read the freezes of the gap
    reads_per_poll: int = 2  # record requests per poll (live polls must never starve)

    @classmethod
    def for_interval(cls, interval_s: float) -> BackfillPolicy:
        return cls(gap_s=max(3 * interval_s, 300.0))


@dataclass(slots=True)
class FreezeScan:
    """Freezes with time in (floor, upper_ms] still to read; `cursor_ms` is how far a range walk got,
    `next_n` the selector-9 record to read next as numbered at `numbered_ms` (0: not started)."""

    cursor_ms: int
    upper_ms: int
    next_n: int = 0
    numbered_ms: int = 0


@dataclass(slots=True)
class BackfillState:
    last_live_ms: int | None = None
    done_ms: int | None = None  # newest freeze published (the watermark)
    scan: FreezeScan | None = None

    def live_poll(self, now_ms: int, policy: BackfillPolicy) -> None:
        """A live poll succeeded at `now_ms`: plan the freezes of the gap before it, if any."""
        last, self.last_live_ms = self.last_live_ms, now_ms
        if last is None:  # first sight: start from now
            self.done_ms = max(self.done_ms or now_ms, now_ms)
            return
        if now_ms - last > policy.gap_s * 1000:
            cursor = last if self.scan is None else min(self.scan.cursor_ms, last)
            self.scan = FreezeScan(cursor, now_ms)

    def floor(self) -> int:
        assert self.scan is not None
        return max(self.scan.cursor_ms, self.done_ms or self.scan.cursor_ms)

    def wanted(self, freeze_ms: int) -> bool:
        return self.scan is not None and self.floor() < freeze_ms <= self.scan.upper_ms

    def taken(self, freeze_ms: int) -> None:
        self.done_ms = max(self.done_ms or freeze_ms, freeze_ms)

    def to_json(self, *, live: bool = True) -> str:
        doc = asdict(self)
        if not live:
            doc.pop("last_live_ms")
        return json.dumps({"version": STATE_VERSION, **doc}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BackfillState:
        doc = json.loads(text)
        if doc.pop("version", None) != STATE_VERSION:
            raise ValueError("unknown back-fill state version")
        scan = doc.pop("scan")
        return cls(**doc, scan=FreezeScan(**scan) if scan else None)


class _Stop(Exception):
    """The meter did not answer a back-fill read: resume next poll."""


class Backfill:
    """The daily-freeze back-fill of one DL/T 698.45 meter, run by its driver after each live poll."""

    def __init__(
        self, device_id: str, read: ReadRecords, state_dir: Path, policy: BackfillPolicy, log: logging.Logger
    ) -> None:
        self.id = device_id
        self._read = read
        self.policy = policy
        self.log = log
        self.path = Path(state_dir) / f"dlt698-backfill-{device_id}.json"
        self.state = self._load()
        self._saved = self.state.to_json(live=False)
        self._saved_live = self.state.last_live_ms or 0
        self.by_last = False  # the meter refused selector 2: walk with selector 9
        self._reads = 0

    @property
    def pending(self) -> bool:
        return self.state.scan is not None

    async def after_poll(self, now_ms: int, result: PollResult) -> None:
        self.state.live_poll(now_ms, self.policy)
        self._reads = 0
        try:
            while self.state.scan is not None and self._reads < self.policy.reads_per_poll:
                if self.by_last:
                    await self._by_last(now_ms, result)
                else:
                    await self._by_range(result)
        except _Stop:
            pass
        await self._save()

    async def _by_range(self, result: PollResult) -> None:
        scan = self.state.scan
        assert scan is not None
        start = self.state.floor()
        end = min(start + CHUNK_DAYS * DAY_MS, scan.upper_ms)
        # [start + 1 s, end + 1 s): the freeze at `start` is published, the one at `end` is wanted
        rsd = Rsd.time_range(FREEZE_TIME, meter_time(start + 1000), meter_time(end + 1000))
        records = await self._get(rsd)
        if records is None:
            return
        self._take(records, result)
        scan.cursor_ms = end
        if end >= scan.upper_ms:
            self.state.scan = None

    async def _by_last(self, now_ms: int, result: PollResult) -> None:
        """Selector 9: the oldest freeze still wanted is the n-th latest, n counted in meter midnights
        (one more, for a meter clock a little ahead); each freeze is judged by its own time."""
        scan = self.state.scan
        assert scan is not None
        if scan.next_n:  # a meter midnight since the last poll shifted the numbering by one
            n = scan.next_n + midnights_between(scan.numbered_ms, now_ms)
        else:
            n = midnights_between(self.state.floor(), now_ms) + 1
        n = min(n, FREEZE_DEPTH)
        while n >= 1 and self._reads < self.policy.reads_per_poll:
            records = await self._get(Rsd.last(n))
            rows = [] if records is None else self._freeze_rows(records)
            if any(t > scan.upper_ms for t, _ in rows):
                n = 0  # newer than the gap: live polls covered the rest
                break
            if records is not None:
                self._take(records, result)
            n -= 1
        scan.next_n, scan.numbered_ms = n, now_ms
        if n < 1:
            self.state.scan = None

    def _freeze_rows(self, records: RecordResult) -> list[tuple[int, dict[str, Scalar]]]:
        rows = []
        for row in record_rows(records):
            stamp = row.get("freeze_time")
            if isinstance(stamp, dt.datetime):
                values = {
                    k: v for k, v in row.items() if k in CANONICAL_NAMES and isinstance(v, float | int | str)
                }
                rows.append((meter_ms(stamp), values))
        return rows

    def _take(self, records: RecordResult, result: PollResult) -> None:
        for freeze_ms, values in sorted(self._freeze_rows(records), key=lambda r: r[0]):
            if self.state.wanted(freeze_ms) and values:
                result.samples.append(Sample(seq=0, ts=freeze_ms, values=values, source="frozen"))
                self.state.taken(freeze_ms)

    async def _get(self, rsd: Rsd) -> RecordResult | None:
        """The records, None when the meter has none (a DAR); _Stop when it did not answer."""
        self._reads += 1
        try:
            return await self._read(rsd)
        except MeterRefused as exc:
            if rsd.selector == 2 and not self.by_last:
                self.log.info("%s: no time-range record reads (%s): reading freezes one by one", self.id, exc)
                self.by_last = True
            else:
                self.log.info("%s: back-fill read: %s", self.id, exc)
            return None
        except ProtocolError as exc:
            self.log.info("%s: back-fill read: %s", self.id, exc)
            return None
        except GatewayError as exc:
            self.log.info("%s: back-fill paused: %s", self.id, exc)
            raise _Stop from exc

    def _load(self) -> BackfillState:
        try:
            return BackfillState.from_json(self.path.read_text())
        except FileNotFoundError:
            return BackfillState()
        except (OSError, ValueError, TypeError, KeyError) as exc:
            self.log.warning(
                "%s: back-fill state %s unreadable (%s): starting afresh", self.id, self.path, exc
            )
            return BackfillState()

    async def _save(self) -> None:
        essential, live = self.state.to_json(live=False), self.state.last_live_ms or 0
        if essential == self._saved and live - self._saved_live < LIVE_SAVE_MS:
            return
        try:
            await asyncio.to_thread(write_atomically, self.path, self.state.to_json())
        except OSError as exc:  # a full or read-only disk must not stop the live polls
            self.log.warning("%s: back-fill state not saved (a restart may repeat freezes): %s", self.id, exc)
            return
        self._saved, self._saved_live = essential, live
