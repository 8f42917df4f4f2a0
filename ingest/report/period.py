"""The reported period in the utility's local time (China Standard Time, UTC+8, no daylight saving since
1991: a fixed offset, so the report needs no time-zone database).

Layer: ingest reporting (pure). Must not: read the wall clock (`now` is given).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Final

from .errors import PeriodError

__all__ = ["LOCAL", "LOCAL_NAME", "Period", "local", "month_period", "parse_period", "rfc3339"]

LOCAL: Final = timezone(timedelta(hours=8), "CST")
LOCAL_NAME: Final = "China Standard Time (UTC+8)"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in UNIX seconds; `label` names it on the page."""

    start: float
    end: float
    label: str

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def contains(self, ts: float) -> bool:
        return self.start <= ts < self.end


def local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, LOCAL)


def rfc3339(ts: float) -> str:
    """An InfluxQL time literal (UTC, millisecond precision)."""
    return "'" + datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z'"


def month_period(text: str) -> Period:
    match = _MONTH.match(text)
    if not match or not 1 <= int(match[2]) <= 12:
        raise PeriodError(f"--month {text!r}: expected YYYY-MM, e.g. 2026-11")
    year, month = int(match[1]), int(match[2])
    first = datetime(year, month, 1, tzinfo=LOCAL)
    days = calendar.monthrange(year, month)[1]
    return Period(first.timestamp(), (first + timedelta(days=days)).timestamp(), f"{year}-{month:02d}")


def _moment(option: str, text: str) -> datetime:
    """A date (local midnight) or an ISO date-time (local unless it names its offset)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise PeriodError(
            f"{option} {text!r}: expected a date (2026-11-01) or a date-time (2026-11-01T08:00, "
            "local time unless an offset such as +00:00 is given)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=LOCAL)


def parse_period(month: str | None, start: str | None, end: str | None, now: float) -> Period:
    """--month, or --from [--to] (`--to` is exclusive and defaults to now)."""
    if month is not None:
        if start is not None or end is not None:
            raise PeriodError("--month cannot be combined with --from / --to")
        return month_period(month)
    if start is None:
        raise PeriodError("give --month YYYY-MM or --from DATE [--to DATE]")
    begin = _moment("--from", start)
    finish = _moment("--to", end) if end is not None else datetime.fromtimestamp(now, LOCAL)
    if finish <= begin:
        raise PeriodError(f"--to {finish.isoformat()} is not after --from {begin.isoformat()}")
    label = f"{_short(begin)} – {_short(finish)}"
    return Period(begin.timestamp(), finish.timestamp(), label)


def _short(when: datetime) -> str:
    when = when.astimezone(LOCAL)
    if when.time() == datetime.min.time():
        return when.date().isoformat()
    return when.strftime("%Y-%m-%d %H:%M:%S")


def month_days(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]
