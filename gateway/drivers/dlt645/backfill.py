"""DL/T 645 back-fill: after a gap in a meter's live polls (the meter was unreachable, or this gateway
was down), read the meter's own records of the gap and publish them with their original times:
daily freezes (`0506 xx nn`, n = 1..62) as samples with source `frozen`, power-down records
(`0311 00 nn`, n = 1..10) as `power_down` / `power_up` events with source `backfilled` (the ingest's
outage rule takes their `ts` as the meter's own record of supply loss and return).

Layer: gateway driver helper. `BackfillState` and its methods are pure planning (no I/O, no clock:
times are passed in); `Backfill` runs the planned reads through a read function the driver supplies
(at the lowest bus priority, a bounded number per poll) and persists the state atomically in
`state_dir/dlt645-backfill-<id>.json` before anything leaves the driver, so a restart neither repeats
nor loses a freeze. Must not: open the port, know any topic or payload, or fail a live poll (a read
that does not answer only ends this poll's back-fill; the plan is resumed next poll).

Why per record rather than per gap length:
- A freeze exists once per meter midnight, so any gap that spans a midnight (not only a gap of a day)
  misses that day's reading; the scan covers the freezes whose time lies in (last live poll, the poll
  that ended the gap], walking oldest first so the persisted watermark (newest freeze published) only
  grows and dedupes across restarts and overlapping gaps. A midnight passing during the scan shifts
  the meter's numbering by one: that is harmless, because each freeze is taken by its own time stamp.
- Power-down records are driven by the meter's power-down count (persisted): it is read after any
  missed poll, on the first poll of this process (the gateway itself may have been down) and hourly
  (an outage shorter than a poll interval is still recorded by the meter).
A meter first seen (no state) publishes nothing: what an earlier gateway (or a wiped state dir)
already published is unknown, and a duplicate freeze would be worse than none; its freeze watermark
and power-down count start from now.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from protocols.dlt645 import Item, Value, Version, canonical_values, lookup
from protocols.errors import ProtocolError
from protocols.messages import EventKind, Scalar

from ...errors import GatewayError
from ...statefile import write_atomically
from ..base import DeviceEvent, PollResult, Sample

CST: Final = dt.timezone(dt.timedelta(hours=8), "CST")  # meter clocks: China Standard Time, no DST
FREEZE_DEPTH: Final = 62
POWER_DOWN_DEPTH: Final = 10
FREEZE_PARTS: Final = ("energy_import", "energy_export")  # tariff blocks 050601nn, 050602nn
FREEZE_STEP_READS: Final = 1 + len(FREEZE_PARTS)
DAY_MS: Final = 86_400_000
STATE_VERSION: Final = 1
# last_live_ms alone is written at most this often (no fsync per poll): a stale value on restart only
# widens the gap, and the freeze watermark still keeps every freeze from being published twice
LIVE_SAVE_MS: Final = 600_000

Read = Callable[[Item], Awaitable[Mapping[str, Value]]]


@dataclass(frozen=True, slots=True)
class BackfillPolicy:
    gap_s: float  # no live poll for longer than this: scan the freezes of the gap
    power_gap_s: float  # no live poll for longer than this: check the power-down count
    reads_per_poll: int = 4  # back-fill requests per poll (live polls must never starve)
    power_check_s: float = 3600.0  # and check the count this often anyway

    @classmethod
    def for_interval(cls, interval_s: float) -> BackfillPolicy:
        # a freeze helps when live readings do not cover its midnight: three missed polls or 5 min
        return cls(gap_s=max(3 * interval_s, 300.0), power_gap_s=1.5 * interval_s)


@dataclass(slots=True)
class FreezeScan:
    """Freezes with time in (lower_ms, upper_ms] still to read; `next_n` walks down to 1."""

    lower_ms: int
    upper_ms: int
    next_n: int


Verdict = Literal["take", "skip", "done"]


def meter_ms(when: dt.datetime) -> int:
    """A meter's naive local time -> UTC epoch milliseconds."""
    return int(when.replace(tzinfo=CST).timestamp() * 1000)


def midnights_between(after_ms: int, until_ms: int) -> int:
    """How many meter midnights (00:00 CST) lie in (after_ms, until_ms]."""
    offset = 8 * 3600 * 1000
    return max(0, (until_ms + offset) // DAY_MS - (after_ms + offset) // DAY_MS)


@dataclass(slots=True)
class BackfillState:
    last_live_ms: int | None = None
    freeze_done_ms: int | None = None  # newest freeze published (the watermark)
    scan: FreezeScan | None = None
    power_down_count: int | None = None  # the meter's count the records below are read up to
    power_down_done_ms: int | None = None  # start of the newest power-down record published
    power_down_todo: int = 0  # records n = todo..1 still to read
    power_check_due: bool = False
    next_power_check_ms: int = 0
    fresh: bool = field(default=True)  # nothing known about this meter yet (not persisted)

    # ---- planning (pure) ------------------------------------------------------------------------

    def live_poll(self, now_ms: int, policy: BackfillPolicy, *, first_in_process: bool) -> None:
        """A live poll succeeded at `now_ms`: plan the back-fill of the gap before it, if any."""
        last, self.last_live_ms = self.last_live_ms, now_ms
        if self.fresh:
            self.fresh = False
            self.power_check_due = True  # the baseline count
            return
        gap_ms = now_ms - last if last is not None else 0
        if first_in_process or gap_ms > policy.power_gap_s * 1000 or now_ms >= self.next_power_check_ms:
            self.power_check_due = True
        if last is not None and gap_ms > policy.gap_s * 1000:
            self.plan_freezes(last, now_ms)
        elif self.scan is not None:
            self.renumber(now_ms)

    def plan_freezes(self, gap_start_ms: int, now_ms: int) -> None:
        lower = gap_start_ms if self.scan is None else min(self.scan.lower_ms, gap_start_ms)
        self.scan = FreezeScan(lower, now_ms, 0)
        self.renumber(now_ms)

    def renumber(self, now_ms: int) -> None:
        """Point the scan at the oldest freeze still needed, counted back from `now_ms`. Done at every
        poll because a meter midnight between two polls shifts the numbering (freeze n becomes n + 1):
        an index kept from the previous poll would then skip a freeze."""
        assert self.scan is not None
        floor = max(self.scan.lower_ms, self.freeze_done_ms or self.scan.lower_ms)
        # one more than our count of midnights since: a meter clock a little ahead of ours
        self.scan.next_n = min(midnights_between(floor, now_ms) + 1, FREEZE_DEPTH)

    def freeze_verdict(self, freeze_ms: int | None) -> Verdict:
        """What to do with freeze `scan.next_n` whose time was read (None: the meter has none)."""
        scan = self.scan
        assert scan is not None
        if freeze_ms is not None and freeze_ms > scan.upper_ms:
            return "done"  # newer than the gap: live polls covered it
        floor = max(scan.lower_ms, self.freeze_done_ms or scan.lower_ms)
        if freeze_ms is None or freeze_ms <= floor:
            return "skip"
        return "take"

    def freeze_advance(self, taken_ms: int | None) -> None:
        assert self.scan is not None
        if taken_ms is not None:
            self.freeze_done_ms = max(self.freeze_done_ms or taken_ms, taken_ms)
        self.scan.next_n -= 1
        if self.scan.next_n < 1:
            self.scan = None

    def power_count(self, count: int, now_ms: int, policy: BackfillPolicy) -> None:
        """The meter's power-down count was read: plan the records it gained since last known."""
        self.power_check_due = False
        self.next_power_check_ms = now_ms + int(policy.power_check_s * 1000)
        known, self.power_down_count = self.power_down_count, count
        if known is None or count < known:  # first sight, or a cleared / replaced meter: baseline
            self.power_down_todo = 0
            return
        self.power_down_todo = min(self.power_down_todo + count - known, POWER_DOWN_DEPTH)

    def power_record_ok(self, start_ms: int) -> bool:
        """Not published yet (the count can also grow by clearing records, or lag a restart)."""
        return self.power_down_done_ms is None or start_ms > self.power_down_done_ms

    # ---- persistence ----------------------------------------------------------------------------

    def to_json(self, *, live: bool = True) -> str:
        doc = asdict(self)
        doc.pop("fresh")
        if not live:
            doc.pop("last_live_ms")
        return json.dumps({"version": STATE_VERSION, **doc}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BackfillState:
        doc = json.loads(text)
        if doc.pop("version", None) != STATE_VERSION:
            raise ValueError("unknown back-fill state version")
        scan = doc.pop("scan")
        state = cls(**doc, fresh=False)
        state.scan = FreezeScan(**scan) if scan else None
        return state


def freeze_values(n: int, decoded: Mapping[str, Value]) -> dict[str, Scalar]:
    """`daily_freeze_3_energy_import_t1_kwh` -> canonical `energy_import_t1_kwh` (fill left out)."""
    prefix = f"daily_freeze_{n}_"
    return canonical_values({k.removeprefix(prefix): v for k, v in decoded.items()})


def power_down_events(record: Mapping[str, Any]) -> list[DeviceEvent]:
    """One power-down record (start + end, meter time) -> `power_down` at its start, `power_up` at its end."""
    start, end = record.get("start"), record.get("end")
    if not isinstance(start, dt.datetime) or not isinstance(end, dt.datetime):
        return []
    start_ms, end_ms = meter_ms(start), meter_ms(end)
    duration = round((end_ms - start_ms) / 1000, 1)
    down = {"end_ts": end_ms, "duration_s": duration}
    up = {"start_ts": start_ms, "duration_s": duration}
    return [
        DeviceEvent(start_ms, EventKind.POWER_DOWN, down, source="backfilled"),
        DeviceEvent(end_ms, EventKind.POWER_UP, up, source="backfilled"),
    ]


class _Stop(Exception):
    """The meter did not answer a back-fill read: resume next poll."""


class Backfill:
    """The back-fill of one DL/T 645-2007 meter, driven by its driver after each successful poll."""

    def __init__(
        self, device_id: str, read: Read, state_dir: Path, policy: BackfillPolicy, log: logging.Logger
    ) -> None:
        self.id = device_id
        self._read = read
        self.policy = policy
        self.log = log
        self.path = Path(state_dir) / f"dlt645-backfill-{device_id}.json"
        self.state = self._load()
        self._saved = self._essential()
        self._saved_live = self.state.last_live_ms or 0
        self._first = True
        self._reads = 0

    @property
    def pending(self) -> bool:
        s = self.state
        return s.scan is not None or s.power_down_todo > 0 or s.power_check_due

    async def after_poll(self, now_ms: int, result: PollResult) -> None:
        """Plan from this successful live poll, run up to `reads_per_poll` reads, add what they give."""
        self.state.live_poll(now_ms, self.policy, first_in_process=self._first)
        self._first = False
        self._reads = 0
        try:
            await self._power_downs(now_ms, result)
            await self._freezes(result)
        except _Stop:
            pass
        await self._save()

    async def _power_downs(self, now_ms: int, result: PollResult) -> None:
        s = self.state
        if s.power_check_due and self._budget(1):
            values = await self._get(lookup("power_down_count", Version.V2007))
            count = values.get("power_down_count") if values else None
            if isinstance(count, int):
                s.power_count(count, now_ms, self.policy)
            else:
                s.power_check_due = False  # a meter without the count: try again at the next check
                s.next_power_check_ms = now_ms + int(self.policy.power_check_s * 1000)
        while s.power_down_todo > 0 and self._budget(1):
            n = s.power_down_todo
            name = f"power_down_{n}"
            record = (await self._get(lookup(name, Version.V2007)) or {}).get(name)
            events = power_down_events(record) if isinstance(record, dict) else []
            if events and s.power_record_ok(events[0].ts_ms):
                result.events += events
                s.power_down_done_ms = events[0].ts_ms
            s.power_down_todo = n - 1

    async def _freezes(self, result: PollResult) -> None:
        s = self.state
        while s.scan is not None and self._budget(FREEZE_STEP_READS):
            n = s.scan.next_n
            name = f"daily_freeze_{n}_time"
            stamp = (await self._get(lookup(name, Version.V2007)) or {}).get(name)
            freeze_ms = meter_ms(stamp) if isinstance(stamp, dt.datetime) else None
            verdict = s.freeze_verdict(freeze_ms)
            if verdict == "done":
                s.scan = None
            elif verdict == "skip":
                s.freeze_advance(None)
            else:
                assert freeze_ms is not None
                values: dict[str, Scalar] = {}
                for part in FREEZE_PARTS:
                    decoded = await self._get(lookup(f"daily_freeze_{n}_{part}", Version.V2007))
                    values.update(freeze_values(n, decoded or {}))
                if values:
                    result.samples.append(Sample(seq=0, ts=freeze_ms, values=values, source="frozen"))
                s.freeze_advance(freeze_ms)

    def _budget(self, reads: int) -> bool:
        return self._reads + reads <= max(self.policy.reads_per_poll, FREEZE_STEP_READS)

    async def _get(self, item: Item) -> Mapping[str, Value] | None:
        """Decoded values, None when the meter refused the item; _Stop when it did not answer."""
        self._reads += 1
        try:
            return await self._read(item)
        except ProtocolError as exc:  # refused ("no requested data") or undecodable: no such record
            self.log.info("%s: back-fill read of %s: %s", self.id, item, exc)
            return None
        except GatewayError as exc:
            self.log.info("%s: back-fill paused: %s", self.id, exc)
            raise _Stop from exc

    # ---- persistence ----------------------------------------------------------------------------

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

    def _essential(self) -> str:
        return self.state.to_json(live=False)

    async def _save(self) -> None:
        essential, live = self._essential(), self.state.last_live_ms or 0
        if essential == self._saved and live - self._saved_live < LIVE_SAVE_MS:
            return
        try:
            await asyncio.to_thread(write_atomically, self.path, self.state.to_json())
        except OSError as exc:  # a full or read-only disk must not stop the live polls
            self.log.warning("%s: back-fill state not saved (a restart may repeat records): %s", self.id, exc)
            return
        self._saved, self._saved_live = essential, live
