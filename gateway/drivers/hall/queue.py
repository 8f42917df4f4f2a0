"""The business hall's queue state machine: key presses in, ticket life-cycle events and device pushes out.

Layer: gateway driver logic, pure. Must not: do I/O, read the clock (every call takes `ts_ms`, the
acquisition time of the key press) or know the wire (the hall driver turns `Push`es into frames and
persists `snapshot()`).

Life cycle of a ticket (domain.md "Business hall"):

    issued (business) -> waiting -> called (counter, staff) -> [recalled <= max_recall | suspended ->
    called back | transferred -> waiting in another business] -> serving -> served -> rated | no rating
                                   \\-> abandoned (no-show after recalls, or unserved at day end)

No key marks the customer stepping up, so the service is taken to start at the last call or recall
before the counter's next FINISH / TRANSFER / SUSPEND; `service_started` is emitted then, timestamped
with that call. `wait_s` is the time from entering the queue (issue, or transfer) to that call;
`service_s` from it to FINISH. CALL_NEXT carries no ticket: the hall calls the oldest waiting ticket of a
business the counter handles (all when the counter lists none). CALL_NEXT while a ticket is being
served finishes it first, as queue machines do.

Counter states published: serving (a ticket is called or served), idle, paused, offline (its keypad
does not answer, or no staff is logged in: `reason` says which).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from protocols.hall import LEVEL_LABELS, Event, Evt, Level
from protocols.messages import EventKind, Scalar

SCHEMA: Final = 1


@dataclass(frozen=True, slots=True)
class Out:
    """One event for MQTT (`kind`, `data`), timestamped `ts_ms`."""

    ts_ms: int
    kind: EventKind
    data: dict[str, Scalar | None]


@dataclass(frozen=True, slots=True)
class Push:
    """Something the master must send a device: a keypad display, or a rating pad's start/cancel."""

    what: str  # "display" | "start_eval" | "cancel_eval"
    counter: int
    ticket: int = 0
    waiting: int = 0
    staff: int = 0


@dataclass
class Ticket:
    number: int
    business: int
    issued_ms: int
    queued_ms: int  # entered its current queue (issue or transfer)
    state: str = "waiting"  # waiting | called | suspended | served | abandoned
    counter: int | None = None
    staff: int | None = None
    first_called_ms: int | None = None
    called_ms: int | None = None  # last call, recall or call-back
    recalls: int = 0
    transfers: int = 0


@dataclass
class CounterState:
    number: int
    staff: int | None
    businesses: tuple[int, ...] = ()
    state: str = "idle"  # idle | serving | paused | offline
    reason: str = ""
    ticket: int | None = None  # called or being served
    logged_in: bool = False
    device_online: bool = True
    suspended: list[int] = field(default_factory=list)
    calling_since: int | None = None  # CALL_NEXT found nobody: the next fitting ticket comes here


@dataclass
class Stats:
    issued: int = 0
    served: int = 0
    abandoned: int = 0
    transferred: int = 0
    rated: int = 0
    unknown_ticket: int = 0  # key presses naming a ticket the queue does not know
    call_empty: int = 0  # CALL_NEXT with nobody waiting
    ignored: int = 0  # keys that make no sense in the counter's state (e.g. RECALL when idle)


class HallQueue:
    def __init__(
        self,
        hall: str,
        counters: Mapping[int, tuple[int | None, tuple[int, ...]]],  # counter -> (staff, businesses)
        *,
        businesses: Mapping[int, str] | None = None,
        max_recall: int = 5,
        day_end: str = "18:00",
        tz: dt.tzinfo | None = None,
    ) -> None:
        self.hall = hall
        self.max_recall = max_recall
        self.day_end = dt.time.fromisoformat(day_end)
        self.tz = tz
        self.businesses = dict(businesses or {})
        self.counters = {k: CounterState(k, staff, tuple(b)) for k, (staff, b) in counters.items()}
        self.tickets: dict[int, Ticket] = {}
        self.order: list[int] = []  # waiting tickets, oldest first
        self.day: str = ""  # local date of the last day end handled
        self.stats = Stats()
        self.pushes: list[Push] = []

    # ---- inputs ---------------------------------------------------------------------------------

    def dispenser(self, event: Event, ts_ms: int) -> list[Out]:
        if event.code != Evt.TICKET_ISSUED or event.ticket is None or event.business is None:
            self.stats.ignored += 1
            return []
        old = self.tickets.get(event.ticket)
        if old is not None and old.state in ("waiting", "called", "suspended"):
            # the number came round again (wrap, or a dispenser reset): the old one is gone
            out = self._abandon(old, ts_ms, "renumbered")
        else:
            out = []
        ticket = Ticket(event.ticket, event.business, ts_ms, ts_ms)
        self.tickets[ticket.number] = ticket
        self.order.append(ticket.number)
        self.stats.issued += 1
        data = self._base(ticket.number) | {"business": event.business}
        if event.business in self.businesses:
            data["business_name"] = self.businesses[event.business]
        out.append(Out(ts_ms, EventKind.TICKET_ISSUED, data | {"waiting": len(self.order)}))
        # a counter that called while nobody was waiting (or before we polled the dispenser) gets it
        calling = [c for c in self.counters.values() if c.calling_since is not None and self._fits(c, ticket)]
        if calling:
            c = min(calling, key=lambda c: c.calling_since or 0)
            at, c.calling_since = c.calling_since or ts_ms, None
            self.order.remove(ticket.number)
            out += self._call(c, ticket, max(at, ts_ms))
        return out

    @staticmethod
    def _fits(c: CounterState, ticket: Ticket) -> bool:
        return not c.businesses or ticket.business in c.businesses

    def keypad(self, counter: int, event: Event, ts_ms: int) -> list[Out]:
        c = self.counters[counter]
        handler = _KEYPAD.get(event.code)
        c.calling_since = None  # any key ends a call that found nobody
        if handler is None:
            self.stats.ignored += 1
            return []
        return handler(self, c, event, ts_ms)

    def pad(self, counter: int, event: Event, ts_ms: int) -> list[Out]:
        c = self.counters[counter]
        if event.ticket is None or event.code not in (Evt.RATING, Evt.NO_RATING):
            self.stats.ignored += 1
            return []
        ticket = self.tickets.get(event.ticket)
        staff = ticket.staff if ticket is not None and ticket.counter == counter else c.staff
        data = self._base(event.ticket) | {"counter": counter, "staff": staff}
        if ticket is None:
            self.stats.unknown_ticket += 1
            data["unknown_ticket"] = True
        if event.code == Evt.NO_RATING:
            return [Out(ts_ms, EventKind.RATING_TIMEOUT, data)]
        assert event.level is not None
        self.stats.rated += 1
        level = Level(event.level)
        return [Out(ts_ms, EventKind.RATING, data | {"level": int(level), "label": LEVEL_LABELS[level]})]

    def keypad_online(self, counter: int, online: bool, ts_ms: int) -> list[Out]:
        c = self.counters[counter]
        if c.device_online == online:
            return []
        c.device_online = online
        return [self._counter_state(c, ts_ms)]

    def tick(self, ts_ms: int) -> list[Out]:
        """Day end: abandon every unserved ticket once per day, at `day_end` local time (or at the first
        tick after it, e.g. when the gateway was off at that time)."""
        local = dt.datetime.fromtimestamp(ts_ms / 1000, self.tz)
        due = local.date() if local.time() >= self.day_end else local.date() - dt.timedelta(days=1)
        if self.day and self.day >= due.isoformat():
            return []
        first, self.day = not self.day, due.isoformat()
        if first:
            return []
        out: list[Out] = []
        for ticket in list(self.tickets.values()):
            if ticket.state in ("waiting", "suspended") or (
                ticket.state == "called" and ticket.first_called_ms is None
            ):
                out += self._abandon(ticket, ts_ms, "day_end")
        for c in self.counters.values():
            c.suspended.clear()
        self.tickets = {n: t for n, t in self.tickets.items() if t.state == "called"}
        return out

    # ---- what the devices should show -----------------------------------------------------------

    def waiting_for(self, counter: int) -> int:
        c = self.counters[counter]
        return sum(1 for n in self.order if self._fits(c, self.tickets[n]))

    def display(self, counter: int) -> Push:
        c = self.counters[counter]
        return Push("display", counter, ticket=c.ticket or 0, waiting=min(self.waiting_for(counter), 0xFFFF))

    # ---- keypad keys ----------------------------------------------------------------------------

    def _call_next(self, c: CounterState, event: Event, ts_ms: int) -> list[Out]:
        out = self._finish_current(c, ts_ms, implicit=True) if c.ticket is not None else []
        number = next((n for n in self.order if self._fits(c, self.tickets[n])), None)
        if number is None:
            self.stats.call_empty += 1
            c.calling_since = ts_ms
            if c.state not in {"idle", "offline"}:
                c.state = "idle"
                out.append(self._counter_state(c, ts_ms))
            return out
        self.order.remove(number)
        return out + self._call(c, self.tickets[number], ts_ms)

    def _call(self, c: CounterState, t: Ticket, ts_ms: int, *, call_back: bool = False) -> list[Out]:
        t.state, t.counter, t.staff, t.called_ms, t.recalls = "called", c.number, c.staff, ts_ms, 0
        if t.first_called_ms is None:
            t.first_called_ms = ts_ms
        c.ticket, c.state, c.reason = t.number, "serving", ""
        data = self._base(t.number) | {
            "counter": c.number,
            "staff": c.staff,
            "business": t.business,
            "waited_s": _seconds(ts_ms - t.queued_ms),
        }
        if call_back:
            data["call_back"] = True
        return [Out(ts_ms, EventKind.TICKET_CALLED, data), self._counter_state(c, ts_ms)]

    def _recall(self, c: CounterState, event: Event, ts_ms: int) -> list[Out]:
        t = self._current(c)
        if t is None:
            return []
        if t.recalls >= self.max_recall:
            self.stats.ignored += 1  # the master allows at most max_recall recalls
            return []
        t.recalls += 1
        t.called_ms = ts_ms
        data = self._base(t.number) | {"counter": c.number, "staff": c.staff, "recall": t.recalls}
        return [Out(ts_ms, EventKind.TICKET_RECALLED, data)]

    def _finish(self, c: CounterState, event: Event, ts_ms: int) -> list[Out]:
        if self._current(c) is None:
            return []
        return self._finish_current(c, ts_ms, implicit=False)

    def _finish_current(self, c: CounterState, ts_ms: int, *, implicit: bool) -> list[Out]:
        t = self.tickets.get(c.ticket) if c.ticket is not None else None
        c.ticket = None
        if t is None:
            return []
        out = self._started(c, t)
        t.state = "served"
        self.stats.served += 1
        data = self._base(t.number) | {
            "counter": c.number,
            "staff": t.staff,
            "business": t.business,
            "wait_s": _seconds(self._start_ms(t) - t.queued_ms),
            "service_s": _seconds(ts_ms - self._start_ms(t)),
        }
        if implicit:
            data["implicit"] = True
        out.append(Out(ts_ms, EventKind.SERVICE_FINISHED, data))
        self.pushes.append(Push("start_eval", c.number, ticket=t.number, staff=t.staff or 0))
        c.state = "idle"
        out.append(self._counter_state(c, ts_ms))
        return out

    def _give_up(self, c: CounterState, event: Event, ts_ms: int) -> list[Out]:
        t = self._current(c)
        if t is None:
            return []
        c.ticket, c.state = None, "idle"
        return [*self._abandon(t, ts_ms, "no_show", counter=c.number), self._counter_state(c, ts_ms)]

    def _suspend(self, c: CounterState, event: Event, ts_ms: int) -> list[Out]:
        t = self._current(c)
        if t is None:
            return []
        out = self._started(c, t)
        t.state = "suspended"
        c.suspended.append(t.number)
        c.ticket, c.state = None, "idle"
        data = self._base(t.number) | {"counter": c.number, "staff": c.staff}
        return [*out, Out(ts_ms, EventKind.TICKET_SUSPENDED, data), self._counter_state(c, ts_ms)]

    def _call_back(self, c: CounterState, event: Event, ts_ms: int) -> list[Out]:
        t = self.tickets.get(event.ticket or 0)
        if t is None or t.state != "suspended":
            self.stats.unknown_ticket += 1
            return []
        out = self._finish_current(c, ts_ms, implicit=True) if c.ticket is not None else []
        for other in self.counters.values():
            if t.number in other.suspended:
                other.suspended.remove(t.number)
        return out + self._call(c, t, ts_ms, call_back=True)

    def _transfer(self, c: CounterState, event: Event, ts_ms: int) -> list[Out]:
        t = self._current(c)
        if t is None or event.business is None:
            return []
        out = self._started(c, t)
        service_s = _seconds(ts_ms - self._start_ms(t))
        previous = t.business
        t.business, t.state, t.queued_ms = event.business, "waiting", ts_ms
        t.counter = t.called_ms = t.first_called_ms = None
        t.transfers += 1
        self.order.append(t.number)
        self.stats.transferred += 1
        c.ticket, c.state = None, "idle"
        data = self._base(t.number) | {
            "counter": c.number,
            "staff": c.staff,
            "business": event.business,
            "from_business": previous,
            "service_s": service_s,
        }
        return [*out, Out(ts_ms, EventKind.TICKET_TRANSFERRED, data), self._counter_state(c, ts_ms)]

    def _pause(self, c: CounterState, event: Event, ts_ms: int) -> list[Out]:
        out = self._finish_current(c, ts_ms, implicit=True) if c.ticket is not None else []
        out = [o for o in out if o.kind is not EventKind.COUNTER_STATE]  # one state change: paused
        c.state = "paused"
        return [*out, self._counter_state(c, ts_ms)]

    def _resume(self, c: CounterState, event: Event, ts_ms: int) -> list[Out]:
        if c.state != "paused":
            self.stats.ignored += 1
            return []
        c.state = "idle"
        return [self._counter_state(c, ts_ms)]

    def _login(self, c: CounterState, event: Event, ts_ms: int) -> list[Out]:
        c.staff, c.logged_in = event.staff, True
        if c.state != "paused":
            c.state = "serving" if c.ticket is not None else "idle"
        data: dict[str, Scalar | None] = {"hall": self.hall, "counter": c.number, "staff": c.staff}
        return [Out(ts_ms, EventKind.STAFF_LOGIN, data), self._counter_state(c, ts_ms)]

    def _logout(self, c: CounterState, event: Event, ts_ms: int) -> list[Out]:
        out = self._finish_current(c, ts_ms, implicit=True) if c.ticket is not None else []
        data: dict[str, Scalar | None] = {"hall": self.hall, "counter": c.number, "staff": c.staff}
        c.logged_in, c.state = False, "idle"
        out.append(Out(ts_ms, EventKind.STAFF_LOGOUT, data))
        out.append(self._counter_state(c, ts_ms, reason="logout"))
        return out

    # ---- helpers --------------------------------------------------------------------------------

    def take_pushes(self) -> list[Push]:
        out, self.pushes = self.pushes, []
        return out

    def _current(self, c: CounterState) -> Ticket | None:
        t = self.tickets.get(c.ticket) if c.ticket is not None else None
        if t is None:
            self.stats.ignored += 1
        return t

    def _start_ms(self, t: Ticket) -> int:
        return t.called_ms if t.called_ms is not None else t.queued_ms

    def _started(self, c: CounterState, t: Ticket) -> list[Out]:
        start = self._start_ms(t)
        data = self._base(t.number) | {
            "counter": c.number,
            "staff": t.staff,
            "business": t.business,
            "wait_s": _seconds(start - t.queued_ms),
        }
        return [Out(start, EventKind.SERVICE_STARTED, data)]

    def _abandon(self, t: Ticket, ts_ms: int, reason: str, counter: int | None = None) -> list[Out]:
        if t.number in self.order:
            self.order.remove(t.number)
        t.state = "abandoned"
        self.stats.abandoned += 1
        data = self._base(t.number) | {
            "reason": reason,
            "business": t.business,
            "waited_s": _seconds(ts_ms - t.queued_ms),
        }
        if counter is not None:
            data |= {"counter": counter, "recalls": t.recalls}
        return [Out(ts_ms, EventKind.TICKET_ABANDONED, data)]

    def _counter_state(self, c: CounterState, ts_ms: int, reason: str = "") -> Out:
        state, why = c.state, reason
        if not c.device_online:
            state, why = "offline", "device"
        elif not c.logged_in and c.staff is None:
            state, why = "offline", "no_staff"
        elif reason == "logout":
            state = "offline"
        data: dict[str, Scalar | None] = {
            "hall": self.hall,
            "counter": c.number,
            "state": state,
            "staff": c.staff,
            "ticket": c.ticket,
        }
        if why:
            data["reason"] = why
        return Out(ts_ms, EventKind.COUNTER_STATE, data)

    def _base(self, ticket: int) -> dict[str, Scalar | None]:
        return {"hall": self.hall, "ticket": ticket}

    # ---- persistence ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "day": self.day,
            "order": list(self.order),
            "tickets": [asdict(t) for t in self.tickets.values()],
            "counters": [asdict(c) for c in self.counters.values()],
            "pushes": [asdict(p) for p in self.pushes],
            "stats": asdict(self.stats),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        if state.get("schema") != SCHEMA:
            raise ValueError(f"hall {self.hall}: state schema {state.get('schema')!r}, expected {SCHEMA}")
        self.day = state["day"]
        self.tickets = {t["number"]: Ticket(**t) for t in state["tickets"]}
        self.order = [n for n in state["order"] if n in self.tickets]
        for saved in state["counters"]:
            if saved["number"] in self.counters:  # a counter removed from the config is dropped
                configured = self.counters[saved["number"]]
                fields = saved | {"businesses": configured.businesses, "suspended": list(saved["suspended"])}
                if not fields["logged_in"]:
                    fields["staff"] = configured.staff
                self.counters[saved["number"]] = CounterState(**fields)
        self.pushes = [Push(**p) for p in state["pushes"]]
        self.stats = Stats(**state["stats"])


_KEYPAD: Final = {
    Evt.CALL_NEXT: HallQueue._call_next,
    Evt.RECALL: HallQueue._recall,
    Evt.FINISH: HallQueue._finish,
    Evt.GIVE_UP: HallQueue._give_up,
    Evt.SUSPEND: HallQueue._suspend,
    Evt.CALL_BACK: HallQueue._call_back,
    Evt.TRANSFER: HallQueue._transfer,
    Evt.PAUSE: HallQueue._pause,
    Evt.RESUME: HallQueue._resume,
    Evt.LOGIN: HallQueue._login,
    Evt.LOGOUT: HallQueue._logout,
}


def _seconds(ms: int) -> float:
    return round(max(ms, 0) / 1000, 3)
