"""The pure business-hall model behind `gridedge sim hall`: customers, the ticket dispenser, counters
with staff, and rating pads, advanced by `advance(now)` (domain.md "Business hall", hall-protocol.md).

Layer: simulator device model. Must not: do I/O, sleep, read the wall clock (time is the `now` given,
UNIX seconds that may be compressed) or touch the wire (firmware_sim.devices.hall turns the events
queued here into poll replies). Everything random comes from one seeded `random.Random`, and the model
advances in fixed steps of simulated time, so a seed and the same `now` sequence give the same day.

What it models (the master, not this model, owns the ticket queue; the model picks what a FIFO master
would pick, since CALL_NEXT carries no ticket number):
- arrivals: Poisson, `arrivals_per_hour` x month-start/end factor (days 1-3 and the last 3 days, the
  billing dates) x midday factor (11:00-13:00), only within opening hours; each customer has a business
  type and a patience (exponential); a customer whose patience runs out leaves the hall but keeps the
  ticket in the master's queue, so the counter later calls, recalls (at most `max_recalls` <= 5) and
  gives up (GIVE_UP) — the abandonment as the master sees it;
- counters: staff LOGIN at opening, CALL_NEXT, the customer walks up (or not), service time log-normal
  per business type, then FINISH, or TRANSFER to another business (re-queued at the back), PAUSE /
  RESUME breaks, LOGOUT at closing; unserved tickets are cleared at day end;
- rating pads: after the master's START_EVAL (`start_eval`), the customer standing at that counter
  rates 1-4 with `rating_weights` after a few seconds, or not at all (NO_RATING at the timeout); a
  START_EVAL at a counter where nobody stands always times out.
- DISPLAY: a keypad shown another waiting ticket than the model called swaps them (`displayed`), so
  the model follows the master's numbering when the master's poll order reorders CALL_NEXTs.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from protocols.errors import ConfigError
from protocols.hall import Evt

DISPENSER_ADDRESS: Final = 1
PAD_BASE: Final = 32  # field guide: keypad of counter k at 1+k, rating pad at 32+k
MAX_COUNTERS: Final = 31  # keypads 2..32, pads 33..63
MAX_RECALLS: Final = 5  # domain.md: recall at most 5 times
STEP_S: Final = 5.0  # model resolution in simulated seconds
BUSINESSES: Final = {1: 0.55, 2: 0.25, 3: 0.15, 4: 0.05}  # payment, account change, enquiry, new connection
SERVICE_MEAN_S: Final = {1: 180.0, 2: 480.0, 3: 240.0, 4: 900.0}
DEFAULT_RATING_WEIGHTS: Final = (0.6, 0.25, 0.1, 0.05)  # very satisfied .. dissatisfied


def keypad_address(counter: int) -> int:
    return 1 + counter


def pad_address(counter: int) -> int:
    return PAD_BASE + counter


@dataclass(frozen=True, slots=True)
class Raised:
    """One event the model raised: at simulated time `at`, on the device at `address`."""

    at: float
    address: int
    code: Evt
    fields: dict[str, int] = field(default_factory=dict)


@dataclass
class Customer:
    ticket: int
    business: int
    arrived: float
    leaves_at: float  # arrival + patience: gone from the hall after this
    called_at: float | None = None
    counter: int | None = None


@dataclass
class CounterState:
    number: int
    staff: int
    state: str = "out"  # out | idle | calling | serving | wrapup | paused
    customer: Customer | None = None
    until: float = 0.0  # when the current state's next step happens
    recalls: int = 0
    last_served: int | None = None  # ticket whose customer still stands at the counter (to rate)


@dataclass
class Evaluation:
    ticket: int
    deadline: float
    rates_at: float | None  # None: nobody rates


@dataclass(frozen=True, slots=True)
class HallParams:
    counters: int
    seed: int = 0
    arrivals_per_hour: float = 30.0
    open_hours: tuple[float, float] = (8.5, 17.5)  # local hours
    patience_mean_s: float = 1800.0
    max_recalls: int = 2
    rating_weights: tuple[float, ...] = DEFAULT_RATING_WEIGHTS
    rating_probability: float = 0.85
    rating_timeout_s: float = 30.0
    transfer_probability: float = 0.05
    pauses_per_hour: float = 0.3
    time_scale: float = 1.0  # hall seconds per second of the line's clock (a busy demo hall: 10)
    start_hour: float | None = None  # the hall's clock starts at this local hour today (None: now)

    def check(self) -> None:
        problems = []
        if not 1 <= self.counters <= MAX_COUNTERS:
            problems.append(f"hall: counters {self.counters} outside 1..{MAX_COUNTERS}")
        if not 0 <= self.max_recalls <= MAX_RECALLS:
            problems.append(f"hall: max recalls {self.max_recalls} outside 0..{MAX_RECALLS}")
        if len(self.rating_weights) != 4 or min(self.rating_weights) < 0 or sum(self.rating_weights) <= 0:
            problems.append(f"hall: rating weights {self.rating_weights} must be 4 non-negative numbers")
        if not self.time_scale > 0:
            problems.append(f"hall: time scale {self.time_scale} must be > 0")
        if self.arrivals_per_hour < 0:
            problems.append(f"hall: arrivals per hour {self.arrivals_per_hour} is negative")
        lo, hi = self.open_hours
        if not 0 <= lo < hi <= 24:
            problems.append(f"hall: opening hours {lo}-{hi} must satisfy 0 <= open < close <= 24")
        if problems:
            raise ConfigError(problems)


def arrival_rate(params: HallParams, when: dt.datetime) -> float:
    """Expected arrivals per hour at local time `when` (0 outside opening hours)."""
    hour = when.hour + when.minute / 60
    lo, hi = params.open_hours
    if not lo <= hour < hi:
        return 0.0
    last_day = (when.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    month_edge = when.day <= 3 or when.day > last_day.day - 3
    return params.arrivals_per_hour * (1.8 if month_edge else 1.0) * (1.5 if 11 <= hour < 13 else 1.0)


class HallModel:
    def __init__(self, params: HallParams, start_time: float) -> None:
        params.check()
        self.params = params
        self.rng = random.Random(f"hall:{params.seed}")
        self.origin = start_time  # line time at which the hall's clock reads `self.start`
        self.start = start_time
        if params.start_hour is not None:
            midnight = self._local(start_time).replace(hour=0, minute=0, second=0, microsecond=0)
            self.start = midnight.timestamp() + params.start_hour * 3600
        self.now = self.start
        self.day = self._local(self.start).date()
        self.next_ticket = 1
        self.queue: deque[Customer] = deque()
        self.counters = [
            CounterState(k, 1000 + k + 10 * self.rng.randrange(100)) for k in range(1, params.counters + 1)
        ]
        self.evaluations: dict[int, Evaluation] = {}
        self.outbox: dict[int, deque[Raised]] = {DISPENSER_ADDRESS: deque()}
        for c in self.counters:
            self.outbox[keypad_address(c.number)] = deque()
            self.outbox[pad_address(c.number)] = deque()
        self.log: list[Raised] = []
        self.cleared = 0  # unserved tickets dropped at day end
        self.forced_levels: deque[int] = deque()  # ratings a demo or test asked for (`force_rating`)

    # ---- driving ----------------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Step simulated time up to `now` (several devices call this with the same `now`: idempotent).
        With a `time_scale`, hall time runs that many times faster than `now` from the start; with a
        `start_hour` it starts at that hour of the day (a demo that always opens in the morning)."""
        now = self.start + (now - self.origin) * self.params.time_scale
        while self.now + STEP_S <= now:
            self.now += STEP_S
            self._step()

    def rush(self, customers: int) -> None:
        """`customers` walk in now (a coach party, the first day after a billing run)."""
        for _ in range(customers):
            self._arrive()

    def force_rating(self, level: int) -> None:
        """The next customer asked to rate gives `level` (1 very satisfied .. 4 dissatisfied)."""
        if level not in (1, 2, 3, 4):
            raise ValueError(f"rating level {level} outside 1..4")
        self.forced_levels.append(level)

    def take(self, address: int) -> Raised | None:
        """The oldest event raised for the device at `address` that it has not taken yet."""
        box = self.outbox.get(address)
        return box.popleft() if box else None

    def start_eval(self, counter: int, ticket: int) -> None:
        """The master asked the pad of `counter` to evaluate `ticket` (replaces a running evaluation)."""
        c = self.counters[counter - 1]
        deadline = self.now + self.params.rating_timeout_s
        # whoever stands at the counter rates the ticket the pad shows (the master's numbering wins)
        present = c.last_served is not None or (c.customer is not None and c.state == "serving")
        rates = present and (bool(self.forced_levels) or self.rng.random() < self.params.rating_probability)
        rates_at = self.now + self.rng.uniform(2.0, self.params.rating_timeout_s * 0.8) if rates else None
        self.evaluations[counter] = Evaluation(ticket, deadline, rates_at)

    def displayed(self, counter: int, ticket: int) -> bool:
        """The master shows `ticket` on the keypad of `counter`. CALL_NEXT carries no ticket, so a master
        polling devices in turn may number the calls differently from the model: the counter then
        takes the master's ticket, swapping customers with the queue or another counter (only the
        labels move; the counters' timers stay). True if swapped."""
        c = self.counters[counter - 1]
        if c.state not in ("calling", "serving") or c.customer is None or c.customer.ticket == ticket:
            return False
        mine = c.customer
        at = next((i for i, w in enumerate(self.queue) if w.ticket == ticket), None)
        if at is not None:
            theirs = self.queue[at]
            theirs.called_at, theirs.counter = mine.called_at, counter
            mine.called_at = mine.counter = None
            self.queue[at], c.customer = mine, theirs
            return True
        other = next(
            (o for o in self.counters if o.customer is not None and o.customer.ticket == ticket), None
        )
        if other is None or other.customer is None:
            return False
        theirs = other.customer
        mine.counter, theirs.counter = other.number, counter
        mine.called_at, theirs.called_at = theirs.called_at, mine.called_at
        other.customer, c.customer = mine, theirs
        return True

    def cancel_eval(self, counter: int) -> bool:
        return self.evaluations.pop(counter, None) is not None

    def waiting(self) -> int:
        return len(self.queue)

    # ---- one step ---------------------------------------------------------------------------------

    def _local(self, t: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(t)

    def quiet_reasons(self) -> list[str]:
        """Why the hall issues no ticket now, for a person watching a silent simulator (empty: it does
        not stay quiet for a reason of its own; customers arrive at random, so a minute without one is
        not a reason)."""
        reasons = []
        local = self._local(self.now)
        if not self._is_open():
            lo, hi = self.params.open_hours
            opening = local.replace(hour=int(lo), minute=round(lo % 1 * 60), second=0, microsecond=0)
            if opening <= local:
                opening += dt.timedelta(days=1)
            wait_h = (opening - local).total_seconds() / 3600 / self.params.time_scale
            reasons.append(
                f"hall closed: its clock reads {local:%Y-%m-%d %H:%M} (local time), opening hours "
                f"{_hhmm(lo)}-{_hhmm(hi)}; it opens {opening:%Y-%m-%d %H:%M}, in {wait_h:.1f} h of real "
                "time at this speed. No ticket until then: --start-at HH:MM starts the hall clock at a time "
                "of your choice, --hours widens the opening hours"
            )
        if self.params.arrivals_per_hour == 0:
            reasons.append("no customer arrives (--arrivals-per-hour 0): tickets only from `rush`")
        if self.params.rating_probability <= 0:
            reasons.append("nobody rates (--rating-probability 0): the rating pads stay quiet")
        return reasons

    def is_open(self) -> bool:
        return self._is_open()

    def _is_open(self) -> bool:
        local = self._local(self.now)
        hour = local.hour + local.minute / 60
        lo, hi = self.params.open_hours
        return lo <= hour < hi

    def _raise(self, address: int, code: Evt, **fields: int) -> None:
        event = Raised(self.now, address, code, fields)
        self.outbox[address].append(event)
        self.log.append(event)

    def _step(self) -> None:
        local = self._local(self.now)
        if local.date() != self.day:
            self.day = local.date()
            self.cleared += len(self.queue)
            self.queue.clear()
            self.next_ticket = 1
        self._arrivals(local)
        is_open = self._is_open()
        for c in self.counters:
            self._counter(c, is_open)
        for number, ev in list(self.evaluations.items()):
            self._evaluation(number, ev)

    def _arrivals(self, local: dt.datetime) -> None:
        lam = arrival_rate(self.params, local) * STEP_S / 3600
        for _ in range(_poisson(self.rng, lam)):
            self._arrive()

    def _arrive(self) -> None:
        business = self.rng.choices(list(BUSINESSES), weights=list(BUSINESSES.values()))[0]
        patience = self.rng.expovariate(1 / self.params.patience_mean_s)
        customer = Customer(self.next_ticket, business, self.now, self.now + patience)
        self.next_ticket = self.next_ticket % 9999 + 1
        self.queue.append(customer)
        self._raise(DISPENSER_ADDRESS, Evt.TICKET_ISSUED, business=business, ticket=customer.ticket)

    def _counter(self, c: CounterState, is_open: bool) -> None:
        kp = keypad_address(c.number)
        if c.state == "out":
            if is_open:
                c.state = "idle"
                self._raise(kp, Evt.LOGIN, staff=c.staff)
            return
        if self.now < c.until:
            return
        if c.state == "calling":
            self._calling(c, kp)
        elif c.state == "serving":
            self._finish(c, kp)
        elif c.state == "paused":
            c.state = "idle"
            self._raise(kp, Evt.RESUME)
        elif c.state in ("idle", "wrapup"):
            self._idle(c, kp, is_open)

    def _idle(self, c: CounterState, kp: int, is_open: bool) -> None:
        c.state = "idle"
        if not is_open and not self.queue:
            c.state, c.last_served = "out", None
            self._raise(kp, Evt.LOGOUT)
        elif self.rng.random() < self.params.pauses_per_hour * STEP_S / 3600:
            c.state, c.until = "paused", self.now + self.rng.uniform(300, 900)
            self._raise(kp, Evt.PAUSE)
        elif self.queue:
            customer = self.queue.popleft()
            customer.called_at, customer.counter = self.now, c.number
            # the customer just served may still be at the counter (rating) until the next one walks up
            c.state, c.customer, c.recalls = "calling", customer, 0
            c.until = self.now + self.rng.uniform(15, 45)
            self._raise(kp, Evt.CALL_NEXT)

    def _calling(self, c: CounterState, kp: int) -> None:
        customer = c.customer
        assert customer is not None
        if customer.leaves_at > (customer.called_at or self.now):  # still in the hall: walks up
            mean = SERVICE_MEAN_S[customer.business]
            c.state, c.until = "serving", self.now + self.rng.lognormvariate(math.log(mean) - 0.125, 0.5)
            c.last_served = None  # the previous customer has left: the next one is at the counter
        elif c.recalls < self.params.max_recalls:
            c.recalls += 1
            c.until = self.now + self.rng.uniform(20, 40)
            self._raise(kp, Evt.RECALL)
        else:
            c.state, c.customer, c.last_served = "idle", None, None
            self._raise(kp, Evt.GIVE_UP)

    def _finish(self, c: CounterState, kp: int) -> None:
        customer = c.customer
        assert customer is not None
        c.customer = None
        if self.rng.random() < self.params.transfer_probability:
            others = [b for b in BUSINESSES if b != customer.business]
            customer.business = self.rng.choice(others)
            customer.called_at = customer.counter = None
            customer.leaves_at = math.inf  # a transferred customer waits for the second counter
            self.queue.append(customer)
            c.state = "idle"
            self._raise(kp, Evt.TRANSFER, business=customer.business)
            return
        c.state, c.until, c.last_served = "wrapup", self.now + self.rng.uniform(10, 30), customer.ticket
        self._raise(kp, Evt.FINISH)

    def _evaluation(self, number: int, ev: Evaluation) -> None:
        pad = pad_address(number)
        if ev.rates_at is not None and self.now >= ev.rates_at:
            level = self.rng.choices((1, 2, 3, 4), weights=self.params.rating_weights)[0]
            if self.forced_levels:
                level = self.forced_levels.popleft()
            del self.evaluations[number]
            self._raise(pad, Evt.RATING, level=level, ticket=ev.ticket)
        elif self.now >= ev.deadline:
            del self.evaluations[number]
            self._raise(pad, Evt.NO_RATING, ticket=ev.ticket)


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method: fine for the small per-step means used here."""
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _hhmm(hour: float) -> str:
    minutes = round(hour * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
