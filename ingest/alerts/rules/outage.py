"""Outage rules: meter supply lost, area and phase outages, gateway offline, communication faults and the
repair-promise (SLA) clock.

Layer: ingest alert rules (pure). Must not: do I/O, read the wall clock (time is the `now` given), or
import the engine, stores or outputs.

How a meter is judged at `now` (docs/domain.md, "Silence is not an outage"):
- `tripped`: its last known relay (Reading value `relay`, or a `relay_change` event's `data.relay`) is
  "open" — an arrears trip: never an outage, a supply loss or a communication fault;
- `unknown`: its gateway's retained status is offline — the gateway's Last Will is the alert then;
- `down`: a live `power_down` event and no `power_up` / healthy reading since;
- `low`: its latest live sample has every voltage (`voltage_{a,b,c}_v`) under `supply_threshold` x
  the topology's `nominal_v`;
- `silent`: nothing heard from it for `silence_s` (a gateway coming back online restarts that clock;
  a meter never heard at all is `unknown`, so a topology listing meters not yet installed raises nothing);
- `ok` otherwise (a meter that answers without voltage values is powered: it could not answer).

Per transformer area, on every message and tick: if every meter of a phase is dark (down/low/silent,
at least `phase_min_meters` of them) while another phase's meters report voltage -> `phase_outage`;
else if at least `area_share` of the area's eligible meters are dark -> ONE `area_outage` (both pending
`judgement_delay_s`). The members of an open outage get no `meter_supply_lost` / `comm_fault`. Other
dark meters: `meter_supply_lost` (down/low, pending `judgement_delay_s`) or, when silent while a
neighbour is lit, `comm_fault` (pending `comm_fault_delay_s`, so that meters falling silent one poll
apart in a real outage become one area outage instead: the delay counts from when the silence is
judged — `silence_s` after the last answer, when the neighbours' last answers still look lit — or,
for a member still silent when its outage ends, from that end; the alert's start is the last answer).

An outage stays open until `restored_share` of its meters are back, then waits up to `backfill_wait_s`
for the returning meters' power-down records before resolving: `Event` `power_down` / `power_up` (live
or `source: backfilled`), whose `ts` is the meter's own record of the supply loss and return. The
resolving signal carries `started_at` / `ended_at` = the median of those records (within
`backfill_lookback_s` before the outage opened), else the first dark time / when restoration was seen.

SLA (`outage_sla_at_risk`, same subject as its outage): the restoration clock and, with `sla_arrival`,
the arrival clock (ingest/alerts/slaclocks.py): the crew is on site at the first operator's `arrived`
action on the outage (or its at-risk alert). It fires when either is past `sla_at_risk_share` of its
promise, names which (label `promise`: arrival, restoration or both) and stays until the outage ends
once a promise is broken or missed (a late arrival is a miss even after the crew is there).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from protocols import messages as m

from ...topology import Topology
from .. import sla, slaclocks
from ..actions import Action, action_of
from ..model import (
    Inbound,
    RuleContext,
    RuleSet,
    Severity,
    Signal,
    area_subject,
    gateway_subject,
    meter_subject,
    phase_subject,
)
from .outage_model import Meter, Outage, OutageConfig, Status

__all__ = ["RULESET", "OutageConfig", "OutageRule"]

_PHASES = ("A", "B", "C")
_OUTAGES = ("area_outage", "phase_outage")
_RECORDS_KEPT = 8
Key = tuple[str, str]
_RESOLVED = {  # resolve messages; the engine fills {{duration}} in
    "meter_supply_lost": "meter {} supply restored after {{duration}}",
    "gateway_offline": "gateway {} back online after {{duration}}",
    "comm_fault": "meter {} heard again after {{duration}}",
}


def _key(k: Key) -> str:
    return meter_subject(*k)


class OutageRule:
    ids: tuple[str, ...] = (
        "meter_supply_lost",
        "area_outage",
        "phase_outage",
        "gateway_offline",
        "comm_fault",
        "outage_sla_at_risk",
    )

    def __init__(self, cfg: OutageConfig, topology: Topology) -> None:
        self._cfg = cfg
        self._topo = topology
        self._meters: dict[str, Meter] = {}
        self._offline: dict[str, float] = {}  # gateway -> since
        self._outages: dict[str, Outage] = {}  # subject -> open outage
        self._reported: set[tuple[str, str]] = set()  # (rule, subject) last reported active

    def set_topology(self, topology: Topology) -> None:
        """A reloaded topology (SIGHUP): areas and members are looked up in it from now on."""
        self._topo = topology

    # ---- input ---------------------------------------------------------------------------------------

    def on_message(self, inbound: Inbound, now: float) -> Iterable[Signal]:
        msg = inbound.message
        if isinstance(msg, m.Status):
            return self._on_status(msg.gw or inbound.gw, msg.state, now)
        action = action_of(inbound) if not inbound.gw else None
        if action is not None:
            return self._on_action(action, now)
        key = (inbound.gw, inbound.dev)
        info = self._topo.device(*key)
        if info is None or not info.area or not isinstance(msg, m.Reading | m.Event):
            return []
        meter = self._meters.setdefault(_key(key), Meter())
        if isinstance(msg, m.Reading):
            self._on_reading(meter, msg, self._threshold(info.customer_class) * info.nominal_v, now)
        else:
            self._on_event(meter, msg)
        return self._evaluate_area(info.area, now)

    def on_tick(self, now: float) -> Iterable[Signal]:
        signals: list[Signal] = []
        for area in sorted({info.area for info in self._topo.devices.values() if info.area}):
            signals += self._evaluate_area(area, now)
        return signals

    def _on_status(self, gw: str, state: str, now: float) -> list[Signal]:
        subject = gateway_subject(gw)
        signals: list[Signal] = []
        if state == "offline":
            self._offline.setdefault(gw, now)
            areas = self._topo.gateway_areas(gw)
            text = f"gateway {gw} offline (Last Will)"
            if areas:
                text += f"; possible area outage: {', '.join(areas)}"
            labels = {"gw": gw, "areas": ",".join(areas)}
            signals.append(
                self._signal("gateway_offline", subject, now, text, labels, severity=Severity.CRITICAL)
            )
        else:
            if self._offline.pop(gw, None) is not None:
                # its meters could not be heard while it was away: restart their silence clocks
                for (g, dev), info in self._topo.devices.items():
                    if g == gw and info.area:
                        meter = self._meters.setdefault(_key((g, dev)), Meter())
                        meter.last_seen = max(meter.last_seen or now, now)
            signals += self._inactive("gateway_offline", subject, now)
        for area in self._topo.gateway_areas(gw):
            signals += self._evaluate_area(area, now)
        return signals

    def _on_action(self, action: Action, now: float) -> list[Signal]:
        """An operator's `arrived` on an open outage (or its at-risk alert): the arrival clock stops."""
        outage = self._outages.get(action.subject)
        if action.verb != "arrived" or outage is None or action.rule not in (*_OUTAGES, "outage_sla_at_risk"):
            return []
        at = action.at if action.at is not None else now
        outage.arrived_at = at if outage.arrived_at is None else min(outage.arrived_at, at)
        return self._evaluate_area(outage.area, now)

    def _on_reading(self, meter: Meter, msg: m.Reading, threshold_v: float, now: float) -> None:
        meter.last_seen = now
        samples = sorted(msg.samples(), key=lambda s: s.ts)
        for sample in samples:
            relay = sample.values.get("relay")
            if isinstance(relay, str):
                meter.relay = relay
        live = [s for s in samples if s.source == "live"]
        if not live:
            return
        latest = live[-1]
        volts = {p: latest.values.get(f"voltage_{p.lower()}_v") for p in _PHASES}
        present = {p: float(v) for p, v in volts.items() if isinstance(v, int | float)}
        meter.phase_low = sorted(p for p, v in present.items() if v < threshold_v)
        if present and len(meter.phase_low) == len(present):
            meter.low_since = meter.low_since if meter.low_since is not None else latest.ts / 1000
        else:
            meter.low_since = None
            meter.down_since = None

    def _on_event(self, meter: Meter, msg: m.Event) -> None:
        ts = msg.ts / 1000
        if msg.event is m.EventKind.RELAY_CHANGE:
            relay = msg.data.get("relay")
            if isinstance(relay, str):
                meter.relay = relay
        elif msg.event is m.EventKind.POWER_DOWN:
            meter.downs = sorted({*meter.downs, ts})[-_RECORDS_KEPT:]
            if msg.source != "backfilled" and meter.down_since is None:
                meter.down_since = ts
        elif msg.event is m.EventKind.POWER_UP:
            meter.ups = sorted({*meter.ups, ts})[-_RECORDS_KEPT:]
            if msg.source != "backfilled":
                meter.down_since = None

    def _threshold(self, customer_class: str) -> float:
        return self._cfg.supply_threshold_by_class.get(customer_class, self._cfg.supply_threshold)

    # ---- judgement -----------------------------------------------------------------------------------

    def _status(self, key: Key, now: float) -> Status:
        meter = self._meters.get(_key(key)) or Meter()
        if meter.relay == "open":
            return Status("tripped")
        if key[0] in self._offline:
            return Status("unknown")
        if meter.down_since is not None:
            return Status("down", meter.down_since)
        if meter.low_since is not None:
            return Status("low", meter.low_since)
        if meter.last_seen is None:
            return Status("unknown")  # never heard (not installed yet?): its silence means nothing
        seen = meter.last_seen
        if now - seen >= self._cfg.silence_s_by_gateway.get(key[0], self._cfg.silence_s):
            return Status("silent", seen)
        return Status("ok")

    def _phase_groups(self, eligible: list[Key], states: Mapping[Key, Status]) -> dict[str, list[bool]]:
        """Per phase, one dark/lit flag per meter on it (three-phase meters count on each phase)."""
        groups: dict[str, list[bool]] = {p: [] for p in _PHASES}
        for key in eligible:
            phase = self._phase_of(key)
            if phase in _PHASES:
                groups[phase].append(states[key].dark)
            elif phase == "ABC":
                low = (self._meters.get(_key(key)) or Meter()).phase_low
                for p in _PHASES:
                    groups[p].append(states[key].dark or p in low)
        return groups

    def _dark_phases(self, area: str, eligible: list[Key], states: Mapping[Key, Status]) -> list[str]:
        """Phases all dark while every other phase is (`restored_share`) lit; [] if that is not so —
        meters falling dark or coming back one by one in an area outage must not look like one."""
        cfg = self._cfg
        groups = {p: flags for p, flags in self._phase_groups(eligible, states).items() if flags}
        dark, lit = [], []
        for p, flags in groups.items():
            n_dark, is_open = sum(flags), phase_subject(area, p) in self._outages
            if (is_open and n_dark / len(flags) > 1 - cfg.restored_share) or (
                len(flags) >= cfg.phase_min_meters and n_dark == len(flags)
            ):
                dark.append(p)
            elif 1 - n_dark / len(flags) >= cfg.restored_share:
                lit.append(p)
        return dark if dark and len(dark) + len(lit) == len(groups) and lit else []

    def _outage_groups(
        self, area: str, eligible: list[Key], states: Mapping[Key, Status]
    ) -> dict[str, list[Key]]:
        """Subject -> meters it covers, for every outage that holds now in `area`."""
        cfg = self._cfg
        dark_phases = [] if area_subject(area) in self._outages else self._dark_phases(area, eligible, states)
        if dark_phases:
            return {
                phase_subject(area, p): [k for k in eligible if self._phase_of(k) == p] for p in dark_phases
            }
        dark = sum(states[k].dark for k in eligible)
        share = dark / len(eligible) if eligible else 0.0
        if area_subject(area) in self._outages:
            holds = share > 1 - cfg.restored_share
        else:
            holds = len(eligible) >= cfg.area_min_meters and share >= cfg.area_share
        return {area_subject(area): list(eligible)} if holds else {}

    def _evaluate_area(self, area: str, now: float) -> list[Signal]:
        members = self._topo.area_members(area)
        states = {k: self._status(k, now) for k in members}
        eligible = [k for k in members if states[k].kind not in ("tripped", "unknown")]
        holding = self._outage_groups(area, eligible, states)
        # its gateway is offline: nothing can be judged, so an open outage stays as it is
        frozen = not eligible and any(s.kind == "unknown" for s in states.values())
        signals: list[Signal] = []
        for subject, keys in holding.items():
            signals += self._hold_outage(subject, area, keys, states, now)
        covered: set[Key] = set()
        for subject, outage in list(self._outages.items()):
            if outage.area != area:
                continue
            if subject not in holding and not frozen:
                # a phase outage that grew into an area outage ends now; others wait for the records
                superseded = area_subject(area) in holding
                signals += self._restore_outage(subject, outage, now, wait=not superseded)
            if subject in self._outages:
                whole = outage.rule == "area_outage"
                covered.update(k for k in members if whole or self._phase_of(k) == outage.phase)
        signals += self._sla_signals(area, now)
        lit = {k for k in eligible if states[k].kind == "ok"}
        for key in members:
            signals += self._meter_signals(
                key, area, states[key], now, covered=key in covered, neighbours_lit=bool(lit - {key})
            )
        return signals

    def _phase_of(self, key: Key) -> str:
        info = self._topo.device(*key)
        return info.phase if info else ""

    def _meter_signals(
        self, key: Key, area: str, status: Status, now: float, *, covered: bool, neighbours_lit: bool
    ) -> list[Signal]:
        subject, labels = _key(key), {"gw": key[0], "dev": key[1], "area": area}
        lost = not covered and status.kind in ("down", "low")
        silent = not covered and status.kind == "silent" and neighbours_lit
        comm_from = self._comm_from(key, status, now, silent=silent)
        out: list[Signal] = []
        if lost:
            how = "power-down event" if status.kind == "down" else "voltage under threshold"
            text = f"meter {subject} lost supply ({how})"
            delay = self._cfg.judgement_delay_s
            out.append(
                self._signal(
                    "meter_supply_lost", subject, now, text, labels, pending_s=delay, started_at=status.since
                )
            )
        else:
            out += self._inactive("meter_supply_lost", subject, now)
        if silent and comm_from is not None:
            text = f"meter {subject} silent since {status.since:.0f} while its neighbours report: comm fault"
            # the alert starts at the last answer, the delay at the judgement (engine: started + pending)
            delay = comm_from + self._cfg.comm_fault_delay_s - status.since
            out.append(
                self._signal(
                    "comm_fault", subject, now, text, labels, pending_s=delay, started_at=status.since
                )
            )
        else:
            out += self._inactive("comm_fault", subject, now)
        return out

    def _comm_from(self, key: Key, status: Status, now: float, *, silent: bool) -> float | None:
        """When the comm_fault condition of `key` began, remembered while it holds (None when not).

        Not the meter's last answer: the silence is only judged `silence_s` later, while the neighbours'
        last answers (a poll apart) still look lit — counting `comm_fault_delay_s` from the last answer
        would fire at once, before a real outage darkens the area. So the delay counts from the judgement
        or, for a meter whose silence an outage (or dark neighbours) explained until now, from now.
        """
        meter = self._meters.get(_key(key))
        if meter is None:
            return None
        if status.kind != "silent":
            meter.excused, meter.comm_from = False, None
        elif not silent:
            meter.excused, meter.comm_from = True, None
        elif meter.comm_from is None:
            judged = status.since + self._cfg.silence_s_by_gateway.get(key[0], self._cfg.silence_s)
            meter.comm_from = now if meter.excused else judged
        return meter.comm_from

    # ---- outages -------------------------------------------------------------------------------------

    def _hold_outage(
        self, subject: str, area: str, keys: list[Key], states: Mapping[Key, Status], now: float
    ) -> list[Signal]:
        dark = [k for k in keys if states[k].dark]
        since = min((states[k].since for k in dark), default=now)
        outage = self._outages.get(subject)
        if outage is None:
            rule = "area_outage" if subject == area_subject(area) else "phase_outage"
            phase = "" if rule == "area_outage" else subject.rsplit("-", 1)[-1]
            outage = self._outages[subject] = Outage(rule, area, phase, now, since)
        outage.restored_at = None
        outage.started_at = min(outage.started_at, since)
        outage.members = sorted({*outage.members, *map(_key, dark)})
        region = self._topo.area(area).region
        what = "area outage" if outage.rule == "area_outage" else f"phase {outage.phase} outage"
        # the most meters dark so far, not the current count: the message must not change (and be
        # re-published) with every meter that comes back
        text = f"{what} in {area} ({region}): {len(outage.members)} of {len(keys)} meters dark"
        labels = {"area": area, "region": region, **({"phase": outage.phase} if outage.phase else {})}
        extra = {"pending_s": self._cfg.judgement_delay_s, "started_at": outage.started_at}
        return [
            self._signal(
                outage.rule,
                subject,
                now,
                text,
                labels,
                severity=Severity.CRITICAL,
                value=float(len(dark)),
                **extra,
            )
        ]

    def _restore_outage(self, subject: str, outage: Outage, now: float, *, wait: bool) -> list[Signal]:
        if outage.restored_at is None:
            outage.restored_at = now
        floor = outage.opened_at - self._cfg.backfill_lookback_s
        downs: list[float] = []
        ups: list[float] = []
        for key in outage.members:
            meter = self._meters.get(key) or Meter()
            down = max((t for t in meter.downs if floor <= t <= outage.restored_at), default=None)
            up = min((t for t in meter.ups if t >= (down or outage.started_at)), default=None)
            downs += [] if down is None else [down]
            ups += [] if up is None else [up]
        complete = len(ups) == len(outage.members)
        if wait and not complete and now - outage.restored_at < self._cfg.backfill_wait_s:
            return []  # still waiting for the power-down records: the alert stays as it is
        del self._outages[subject]
        started = statistics.median(downs) if downs else outage.started_at
        ended = statistics.median(ups) if ups else outage.restored_at
        text = f"{outage.rule.replace('_', ' ')} in {outage.area} restored after {{duration}}"
        sig = Signal(
            outage.rule, subject, False, now, resolve_message=text, started_at=started, ended_at=ended
        )
        self._reported.discard((outage.rule, subject))
        return [sig, *self._inactive("outage_sla_at_risk", subject, now)]

    def _sla_signals(self, area: str, now: float) -> list[Signal]:
        out: list[Signal] = []
        for subject, outage in self._outages.items():
            if outage.area != area:
                continue
            clocks = [c for c in self._clocks(outage, now) if c.alarming]
            if not clocks:
                out += self._inactive("outage_sla_at_risk", subject, now)
                continue
            region = self._topo.area(outage.area).region
            worst = Severity.CRITICAL if any(c.state != "at_risk" for c in clocks) else Severity.WARNING
            text = (
                f"{outage.rule.replace('_', ' ')} in {outage.area} ({self._cfg.sla_preset}, {region}): "
                + slaclocks.describe(clocks)
            )
            labels: dict[str, str] = {
                "area": outage.area,
                "region": region,
                "outage": outage.rule,
                "promise": ",".join(c.name for c in clocks),
                **{c.name: c.state for c in clocks},
            }
            value = max(c.ratio for c in clocks)
            extra = {"severity": worst, "value": value, "started_at": outage.started_at}
            out.append(self._signal("outage_sla_at_risk", subject, now, text, labels, **extra))
        return out

    def _clocks(self, outage: Outage, now: float) -> list[slaclocks.Clock]:
        """The outage's SLA clocks: arrival (with `sla_arrival`) and restoration."""
        promise = sla.promise(self._cfg.sla_preset, self._topo.area(outage.area).region)
        share, start, restored = self._cfg.sla_at_risk_share, outage.started_at, outage.restored_at
        clocks = [slaclocks.restoration_clock(start, now, restored, promise, share)]
        if self._cfg.sla_arrival:
            clocks.insert(
                0,
                slaclocks.arrival_clock(
                    start,
                    now,
                    arrived_at=outage.arrived_at,
                    restored_at=restored,
                    promise=promise,
                    share=share,
                ),
            )
        return clocks

    # ---- signals and memory --------------------------------------------------------------------------

    def _signal(
        self, rule: str, subject: str, now: float, text: str, labels: Mapping[str, str], **extra: Any
    ) -> Signal:
        """An active signal, remembered so that its end is reported."""
        self._reported.add((rule, subject))
        clear = self._cfg.clear_s if rule in ("meter_supply_lost", "comm_fault") else 0.0
        return Signal(rule, subject, True, now, message=text, clear_s=clear, labels=labels, **extra)

    def _inactive(self, rule: str, subject: str, now: float) -> list[Signal]:
        if (rule, subject) not in self._reported:
            return []
        self._reported.discard((rule, subject))
        text = _RESOLVED.get(rule)
        return [Signal(rule, subject, False, now, resolve_message=text.format(subject) if text else None)]

    def snapshot(self) -> dict[str, Any]:
        return {
            "meters": {k: asdict(v) for k, v in self._meters.items()},
            "offline": dict(self._offline),
            "outages": {k: asdict(v) for k, v in self._outages.items()},
            "reported": sorted([list(r) for r in self._reported]),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self._meters = {k: Meter(**v) for k, v in state.get("meters", {}).items()}
        self._offline = dict(state.get("offline", {}))
        self._outages = {k: Outage(**v) for k, v in state.get("outages", {}).items()}
        self._reported = {(r[0], r[1]) for r in state.get("reported", [])}


def _build(cfg: OutageConfig, ctx: RuleContext) -> list[OutageRule]:
    return [OutageRule(cfg, ctx.topology)]


RULESET = RuleSet("outage", OutageConfig, _build, topics=())
