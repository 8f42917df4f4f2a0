"""Reading health (抄核收 checks): missed readings and whether back-fill recovered them, register went
down, runaway, stopped register, zero consumption for N days, day-on-day swing, meter clock drift.

Layer: ingest alert rules (pure). Must not: do I/O, read the wall clock (times are the `now` given and
the samples' own `ts`), or own the alert life cycle (the engine does: rules report raw conditions).

Register checks look only at `energy_import_kwh` samples newer than the last one seen for the meter,
in time order, so a spool replay or a back-filled daily freeze (`Reading.samples()`, source `frozen` /
`backfilled`) extends the history instead of being compared backwards. Missed readings are judged on
the timer: a meter is silent when its newest sample is older than its window (interval x factor).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from protocols import messages as m

from ...topology import Topology
from ..model import (
    Inbound,
    RuleContext,
    RuleSet,
    SampleView,
    Severity,
    Signal,
    always,
    in_time_order,
    meter_subject,
)
from .reading_model import METER_FIELDS, Meter, ReadingConfig

__all__ = ["RULESET", "ReadingConfig", "ReadingHealth"]

ENERGY: Final = "energy_import_kwh"
POWER: Final = "power_active_kw"
SKEW: Final = "meter_clock_skew_s"
CURRENTS: Final = ("current_a_a", "current_b_a", "current_c_a")
DAY: Final = 86400.0


@dataclass(slots=True)
class _Obs:
    """One energy sample of one meter, as the register checks see it."""

    subject: str
    gw: str
    dev: str
    at: float  # sample time (s)
    kwh: float
    power: float | None
    values: Mapping[str, m.Scalar]
    rule: ReadingHealth
    labels: dict[str, str] | None = None  # built with the first signal (most samples raise none)

    def wants(self, rule: str, active: bool) -> bool:
        return self.rule.wants(rule, self.subject, active)

    def signal(self, rule: str, active: bool, **kw: Any) -> Signal:
        if self.labels is None:
            self.labels = self.rule._labels(self.gw, self.dev)
        return Signal(rule=rule, subject=self.subject, active=active, at=self.at, labels=self.labels, **kw)


def _num(values: Mapping[str, m.Scalar], key: str) -> float | None:
    v = values.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _amps(values: Mapping[str, m.Scalar]) -> list[float]:
    return [a for a in (_num(values, c) for c in CURRENTS) if a is not None]


def _when(ts: float) -> str:
    # a stable wording (no running counters) so a firing alert is not re-published on every sample
    return _minute(int(ts // 60))


@functools.lru_cache(maxsize=4096)
def _minute(minute: int) -> str:  # formatting was ~5 % of the engine's time per reading: remembered
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _mins(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 7200 else f"{seconds / 60:.0f} min"


class ReadingHealth:
    ids = (
        "missed_reading",
        "register_decrease",
        "register_runaway",
        "register_stopped",
        "zero_consumption",
        "consumption_swing",
        "clock_drift",
    )

    def __init__(self, cfg: ReadingConfig, ctx: RuleContext) -> None:
        self.cfg = cfg
        self.topology = ctx.topology
        self.wants = ctx.wants or always
        self.meters: dict[str, Meter] = {}
        self.first_tick: float | None = None
        self._changed: set[str] = set()  # meters to write at the next commit (Partitioned)
        self._removed: set[str] = set()
        self._recheck = False  # the topology changed: look for newly listed (or dropped) meters

    def set_topology(self, topology: Topology) -> None:
        self.topology = topology
        self._recheck = True

    # ---- interface

    def on_message(self, inbound: Inbound, now: float) -> Iterable[Signal]:
        msg = inbound.message
        if not isinstance(msg, m.Reading) or self._is_hall(msg.gw, msg.dev):
            return []
        subject = meter_subject(msg.gw, msg.dev)
        meter = self.meters.get(subject)
        if meter is None:
            meter = self.meters[subject] = Meter()
        self._changed.add(subject)
        samples = in_time_order(msg)
        out = self._arrived(subject, meter, samples, msg.gw, msg.dev)
        for sample in samples:
            out.extend(self._sample(subject, meter, sample, msg.gw, msg.dev))
        return out

    def on_tick(self, now: float) -> Iterable[Signal]:
        out = self._expected(now)
        for subject, meter in self.meters.items():
            since = meter.last_ts if meter.last_ts is not None else (meter.expected_since or now)
            window = self._window(subject)
            silent = now - since
            if meter.missing != (silent > window):
                meter.missing = silent > window
                self._changed.add(subject)
            if not self.wants("missed_reading", subject, meter.missing):
                continue  # quiet meter, no alert: nothing to build (20,000 meters at every tick)
            gw, _, dev = subject.partition("/")
            heard = "ever" if meter.last_ts is None else f"since {_when(since)}"
            out.append(
                self._signal(
                    "missed_reading",
                    subject,
                    meter.missing,
                    now,
                    self._labels(gw, dev),
                    value=round(silent, 1),
                    started_at=since if meter.missing else None,
                    pending_s=window,  # fires at once here, but counts again from a cause's end (inhibit)
                    message=f"no reading from {subject} {heard} (window {_mins(window)})",
                )
            )
        return out

    def _expected(self, now: float) -> list[Signal]:
        """Topology meters that never reported are watched from the first tick (a restart keeps that
        time), and those listed by a reloaded topology from the tick after the reload. Never-heard
        meters the topology no longer lists are dropped (their alert resolves)."""
        first = self.first_tick is None
        self.first_tick = now if self.first_tick is None else self.first_tick
        if not (first or self._recheck) or not self.cfg.expect_topology_meters:
            return []
        self._recheck = False
        listed = {
            meter_subject(gw, dev)
            for (gw, dev), info in self.topology.devices.items()
            if (info.area or info.account) and not info.hall
        }
        for subject in listed - self.meters.keys():
            self.meters[subject] = Meter(expected_since=now)
            self._changed.add(subject)
        gone = [s for s, meter in self.meters.items() if meter.last_ts is None and s not in listed]
        out = []
        for subject in gone:
            del self.meters[subject]
            self._changed.discard(subject)
            self._removed.add(subject)
            gw, _, dev = subject.partition("/")
            out.append(self._signal("missed_reading", subject, False, now, self._labels(gw, dev)))
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"first_tick": self.first_tick}  # the meters are parts (take_changes)

    def take_changes(self) -> tuple[dict[str, dict[str, Any]], set[str]]:
        meters = self.meters
        # fields by name, not asdict() (recursive, with a deep copy: 0.1 ms a meter, 8 % of the engine)
        changed = {k: {f: getattr(meters[k], f) for f in METER_FIELDS} for k in self._changed if k in meters}
        removed, self._changed, self._removed = self._removed, set(), set()
        return changed, removed

    def restore(self, state: Mapping[str, Any]) -> None:
        self.first_tick = state.get("first_tick")
        # state written before the meters were parts held them all here: written as parts next commit
        self.meters = {k: Meter(**v) for k, v in state.get("meters", {}).items()}
        self._changed, self._removed = set(self.meters), set()
        self._recheck = True  # the topology may have changed while we were stopped

    def restore_parts(self, parts: Mapping[str, Mapping[str, Any]]) -> None:
        self.meters.update({k: Meter(**v) for k, v in parts.items()})
        for subject, meter in self.meters.items():  # state written before expected_since existed
            if meter.last_ts is None and meter.expected_since is None:
                meter.expected_since = self.first_tick
                self._changed.add(subject)

    # ---- helpers

    def _is_hall(self, gw: str, dev: str) -> bool:
        info = self.topology.device(gw, dev)
        return bool(info and info.hall)

    def _class(self, gw: str, dev: str) -> str:
        info = self.topology.device(gw, dev)
        return info.customer_class if info else "residential"

    def _labels(self, gw: str, dev: str) -> dict[str, str]:
        return {"gw": gw, "dev": dev, **self.topology.tags(gw, dev), "customer_class": self._class(gw, dev)}

    def _window(self, subject: str) -> float:
        gw, _, dev = subject.partition("/")
        cfg = self.cfg
        interval = cfg.interval_by_device.get(subject) or cfg.interval_by_class.get(self._class(gw, dev))
        return (interval or cfg.interval_s) * cfg.window_factor

    @staticmethod
    def _signal(
        rule: str, subject: str, active: bool, at: float, labels: dict[str, str], **kw: Any
    ) -> Signal:
        return Signal(rule=rule, subject=subject, active=active, at=at, labels=labels, **kw)

    # ---- missed_reading: a reading ends the silence; say whether back-fill filled the hole

    def _arrived(
        self, subject: str, meter: Meter, samples: Sequence[SampleView], gw: str, dev: str
    ) -> list[Signal]:
        newest = samples[-1].ts / 1000
        start, was_missing = meter.last_ts, meter.missing
        meter.last_ts = newest if start is None else max(start, newest)
        if not was_missing or newest <= (start or 0):
            return []
        meter.missing = False
        labels = self._labels(gw, dev)
        window = self._window(subject)
        begin = start if start is not None else (self.first_tick or newest)
        in_gap = [s for s in samples if s.ts / 1000 > begin]
        hole, prev = 0.0, begin
        for s in in_gap:
            hole, prev = max(hole, s.ts / 1000 - prev), s.ts / 1000
        filled = [s for s in in_gap if s.source in ("frozen", "backfilled")]
        gap = newest - begin
        if hole <= window and filled:
            text = f"readings resumed; back-fill recovered the {_mins(gap)} gap ({len(filled)} samples)"
        elif hole <= window:
            text = f"readings resumed; late samples recovered the {_mins(gap)} gap"
        else:
            text = (
                f"readings resumed after {_mins(gap)}; not recovered: {len(filled)} back-filled samples, "
                f"largest hole {_mins(hole)}"
            )
        # the engine keeps the last active report's message on resolve: report the outcome, then the end
        final = self._signal(
            "missed_reading",
            subject,
            True,
            newest,
            labels,
            message=text,
            value=round(hole, 1),
            pending_s=window,
        )
        end = self._signal("missed_reading", subject, False, newest, labels, ended_at=in_gap[0].ts / 1000)
        return [final, end]

    # ---- register checks, one energy sample at a time

    def _sample(self, subject: str, meter: Meter, s: SampleView, gw: str, dev: str) -> list[Signal]:
        out: list[Signal] = []
        values = s.values
        kwh = _num(values, ENERGY)
        obs = _Obs(subject, gw, dev, s.ts / 1000, kwh or 0.0, _num(values, POWER), values, self)
        if SKEW in values and s.source == "live":
            skew = _num(values, SKEW)
            if skew is not None:
                out.extend(self._clock(obs, skew))
        if kwh is None or (meter.e_ts is not None and obs.at <= meter.e_ts):
            return out
        if meter.e_ts is None:
            meter.base_kwh, meter.increase_ts = kwh, obs.at
        else:
            out.extend(self._step(meter, obs))
        out.extend(self._daily(meter, obs))
        meter.e_ts, meter.e_kwh, meter.e_power = obs.at, kwh, obs.power
        return out

    def _step(self, meter: Meter, obs: _Obs) -> list[Signal]:
        cfg, prev, kwh = self.cfg, meter.e_kwh, obs.kwh
        dt = obs.at - (meter.e_ts or obs.at)
        down = kwh < prev - cfg.decrease_tolerance_kwh
        out = []
        if obs.wants("register_decrease", down):
            out.append(
                obs.signal(
                    "register_decrease",
                    down,
                    severity=Severity.MAJOR,
                    clear_s=cfg.reading_clear_s,
                    value=round(prev - kwh, 3),
                    message=f"register of {obs.subject} went down from {prev:.2f} to {kwh:.2f} kWh",
                )
            )
        powers = [p for p in (meter.e_power, obs.power) if p is not None]
        if powers and 0 < dt <= cfg.runaway_max_gap_s:
            allowed = max(powers) * dt / 3600 * cfg.runaway_factor + cfg.runaway_floor_kwh
            if obs.wants("register_runaway", kwh - prev > allowed):
                out.append(
                    obs.signal(
                        "register_runaway",
                        kwh - prev > allowed,
                        severity=Severity.MAJOR,
                        clear_s=cfg.reading_clear_s,
                        value=round(kwh - prev, 3),
                        message=f"register of {obs.subject} rose {kwh - prev:.2f} kWh in {_mins(dt)}; "
                        f"power allows at most {allowed:.2f} kWh",
                    )
                )
        if down:
            meter.base_kwh = kwh
        elif kwh > meter.base_kwh + cfg.decrease_tolerance_kwh:
            meter.base_kwh, meter.increase_ts = kwh, obs.at
        out += self._stopped(meter, obs, changed=kwh != prev)
        out += self._zero(meter, obs)
        return out

    def _stopped(self, meter: Meter, obs: _Obs, *, changed: bool) -> list[Signal]:
        cfg, power = self.cfg, obs.power
        loaded = (power is not None and power > cfg.stopped_min_power_kw) or any(
            a > cfg.stopped_min_current_a for a in _amps(obs.values)
        )
        if changed or not loaded:
            meter.load_since = None
        elif meter.load_since is None:
            meter.load_since = obs.at
        held = 0.0 if meter.load_since is None else obs.at - meter.load_since
        if not obs.wants("register_stopped", held >= cfg.stopped_window_s):
            return []
        load = f"{power:.2f} kW" if power is not None else f"{max(_amps(obs.values), default=0):.1f} A"
        return [
            obs.signal(
                "register_stopped",
                held >= cfg.stopped_window_s,
                value=round(held, 1),
                started_at=meter.load_since,
                message=f"register of {obs.subject} unchanged at {obs.kwh:.2f} kWh under load ({load}) "
                f"since {_when(meter.load_since or obs.at)}",
            )
        ]

    def _zero(self, meter: Meter, obs: _Obs) -> list[Signal]:
        days = (obs.at - meter.increase_ts) / DAY
        if not obs.wants("zero_consumption", days >= self.cfg.zero_days):
            return []
        return [
            obs.signal(
                "zero_consumption",
                days >= self.cfg.zero_days,
                severity=Severity.INFO,
                value=round(days, 2),
                pending_s=self.cfg.zero_days * DAY,  # as above: the hold a cause's end restarts
                started_at=meter.increase_ts if days >= self.cfg.zero_days else None,
                message=f"no consumption on {obs.subject} since {_when(meter.increase_ts)} "
                f"(register {meter.base_kwh:.2f} kWh)",
            )
        ]

    def _daily(self, meter: Meter, obs: _Obs) -> list[Signal]:
        """Day-on-day use from the first register value of each local day (the 00:00 freeze)."""
        day = int((obs.at + self.cfg.utc_offset_s) // DAY)
        if meter.day is None:
            meter.day, meter.day_kwh = day, obs.kwh
        if day <= meter.day:
            return []
        use = obs.kwh - meter.day_kwh if day == meter.day + 1 else -1.0
        out = []
        if use >= 0 and meter.prev_day == meter.day - 1:
            out += self._swing(obs, meter.prev_use, use)
        meter.prev_day, meter.prev_use = (meter.day, use) if use >= 0 else (None, 0.0)
        meter.day, meter.day_kwh = day, obs.kwh
        return out

    def _swing(self, obs: _Obs, base: float, use: float) -> list[Signal]:
        cls = self._class(obs.gw, obs.dev)  # the labels' customer_class
        limit = self.cfg.swing_threshold.get(cls, self.cfg.swing_default)
        judged = base >= self.cfg.swing_min_base_kwh and base > 0
        change = (use - base) / base if judged else 0.0
        if not obs.wants("consumption_swing", abs(change) > limit):
            return []
        return [
            obs.signal(
                "consumption_swing",
                abs(change) > limit,
                value=round(change * 100, 1),
                message=f"{obs.subject} used {use:.2f} kWh vs {base:.2f} kWh the day before "
                f"({change:+.0%}; threshold {limit:.0%} for {cls})",
            )
        ]

    def _clock(self, obs: _Obs, skew: float) -> list[Signal]:
        cfg = self.cfg
        if not obs.wants("clock_drift", abs(skew) > cfg.clock_warning_s):
            return []
        severity = Severity.CRITICAL if abs(skew) > cfg.clock_critical_s else Severity.WARNING
        limit = cfg.clock_critical_s if severity is Severity.CRITICAL else cfg.clock_warning_s
        return [
            obs.signal(
                "clock_drift",
                abs(skew) > cfg.clock_warning_s,
                severity=severity,
                value=skew,
                message=f"meter clock of {obs.subject} is {'ahead' if skew > 0 else 'behind'} by more "
                f"than {limit:.0f} s",
            )
        ]


def _build(cfg: ReadingConfig, ctx: RuleContext) -> list[Any]:
    return [ReadingHealth(cfg, ctx)]


RULESET: Final = RuleSet(name="reading", config=ReadingConfig, build=_build)
